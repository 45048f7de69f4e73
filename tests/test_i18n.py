"""Languages: the Spanish catalogue is complete and the screens switch language through /lang/<locale>.

The catalogue tests keep future strings honest: every string the code and templates mark for
translation must be in each language's ``messages.po``, translated and not fuzzy. After adding
strings, run from the repository root::

    .venv/bin/pybabel extract -F translations/babel.cfg -k _l -k lazy_gettext -k _ -k gettext \\
        -o translations/messages.pot .
    .venv/bin/pybabel update -i translations/messages.pot -d translations

then translate the new entries (and remove any ``#, fuzzy`` flag once checked: ``pybabel update``
guesses from similar strings, and ``make translations`` compiles with ``--use-fuzzy``).
Flask-AppBuilder strings missing from FAB's own catalogue are listed in translations/fab_strings.py.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from app.extensions import db
from app.models.org import Branch
from config import TestConfig
from tests.conftest import Auth, csrf_token_from

pytestmark = pytest.mark.sqlite_subset

ROOT = Path(__file__).resolve().parents[1]
TRANSLATIONS = ROOT / "translations"
#: Every offered language except the default (English, the language of the source strings).
TRANSLATED_LOCALES = sorted(
    code for code in TestConfig.LANGUAGES if code != TestConfig.BABEL_DEFAULT_LOCALE
)
#: The keywords `pybabel extract` is run with (see the module docstring).
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}


def po_path(locale: str) -> Path:
    return TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po"


def read_catalogue(locale: str) -> Catalog:
    with po_path(locale).open("rb") as handle:
        return read_po(handle, locale=locale)


@pytest.fixture(scope="session", autouse=True)
def compiled_catalogues():
    """Compile each ``messages.po`` whose ``.mo`` is missing or older (``make test`` does it too).

    The ``.mo`` files are git-ignored build output; a fresh clone running plain ``pytest`` gets
    them here. Written to a temporary file first, so a concurrent run never reads half a file.
    """
    for locale in TRANSLATED_LOCALES:
        po = po_path(locale)
        if not po.exists():
            continue  # reported by test_every_offered_language_has_a_catalogue
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        catalogue = read_catalogue(locale)
        fd, tmp = tempfile.mkstemp(dir=po.parent, prefix=".messages-", suffix=".mo")
        try:
            with os.fdopen(fd, "wb") as handle:
                write_mo(handle, catalogue)
            os.chmod(tmp, 0o644)  # like pybabel's output, not mkstemp's 0600
            os.replace(tmp, mo)
        finally:
            Path(tmp).unlink(missing_ok=True)


# -- the catalogues ----------------------------------------------------------------------------


def test_every_offered_language_has_a_catalogue():
    assert TRANSLATED_LOCALES, "config LANGUAGES offers only the default language"
    missing = [locale for locale in TRANSLATED_LOCALES if not po_path(locale).exists()]
    assert not missing, f"no translations/<locale>/LC_MESSAGES/messages.po for {missing}"


@pytest.mark.parametrize("locale", TRANSLATED_LOCALES)
def test_catalogue_has_no_untranslated_or_fuzzy_entries(locale):
    catalogue = read_catalogue(locale)
    assert not catalogue.fuzzy, f"the {locale} catalogue's header is marked fuzzy"
    untranslated, fuzzy = [], []
    for message in catalogue:
        if not message.id:
            continue  # the header
        strings = message.string if isinstance(message.string, (list, tuple)) else [message.string]
        if not all(strings):
            untranslated.append(message.id)
        if message.fuzzy:
            fuzzy.append(message.id)
    assert not untranslated and not fuzzy, (
        f"{locale}: untranslated {untranslated}, fuzzy (unchecked) {fuzzy}"
    )


@pytest.mark.parametrize("locale", TRANSLATED_LOCALES)
def test_catalogue_keeps_placeholders_intact(locale):
    """Babel's checks: a translation uses the same %(name)s placeholders as its source."""
    problems = [
        (message.id, [str(error) for error in errors])
        for message, errors in read_catalogue(locale).check()
    ]
    assert not problems, problems


def _source_messages() -> set[str | tuple[str, ...]]:
    """Every message id `pybabel extract` finds with translations/babel.cfg."""
    with (TRANSLATIONS / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    ids: set[str | tuple[str, ...]] = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        ids.add(message)
    return ids


def test_extraction_covers_python_and_nested_templates():
    """babel.cfg reaches app/**.py and templates in nested folders (FAB overrides, security)."""
    with (TRANSLATIONS / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    seen = {
        filename
        for filename, *_ in extract_from_dir(str(ROOT), method_map, options_map, keywords=KEYWORDS)
    }
    for expected in (
        "app/views/settings.py",
        "app/security/views.py",
        "app/templates/clinic/home.html",
        "app/templates/clinic/security/login.html",
        "app/templates/appbuilder/general/model/list.html",
        "translations/fab_strings.py",
    ):
        assert expected in seen, f"{expected} is not extracted by translations/babel.cfg"


@pytest.mark.parametrize("locale", TRANSLATED_LOCALES)
def test_every_source_string_is_in_the_catalogue(locale):
    catalogue = read_catalogue(locale)
    missing = []
    for message_id in _source_messages():
        key = message_id[0] if isinstance(message_id, tuple) else message_id
        entry = catalogue.get(key)
        if entry is None or entry.fuzzy or not entry.string:
            missing.append(key)
    assert not missing, (
        f"strings not translated in translations/{locale}: {sorted(missing)} "
        "(extract, update and translate: see tests/test_i18n.py)"
    )


# -- the screens -------------------------------------------------------------------------------


def switch_language(client, locale: str):
    """Choose a language as the switcher's link does; FAB answers with a redirect."""
    response = client.get(f"/lang/{locale}")
    assert response.status_code == 302
    return response


def current_language_link(body: str) -> str:
    """The switcher link marked as the current language."""
    links = re.findall(r'<a class="cd-lang__link".*?</a>', body, re.S)
    assert links, "no language switcher on the page"
    current = [link for link in links if 'aria-current="true"' in link]
    assert len(current) == 1, links
    return current[0]


def signed_in(app, username: str):
    client = app.test_client()
    response = Auth(client).login(username)
    assert response.status_code == 302, "sign-in failed"
    return client


def post_form(client, path: str, data: dict):
    page = client.get(path).get_data(as_text=True)
    return client.post(path, data={**data, "csrf_token": csrf_token_from(page)})


def test_login_page_defaults_to_english_and_offers_each_language(client):
    body = client.get("/login/").get_data(as_text=True)
    assert re.search(r"<h1[^>]*>Sign in</h1>", body)
    for code, language in TestConfig.LANGUAGES.items():
        link = re.search(rf'<a class="cd-lang__link" href="/lang/{code}".*?</a>', body, re.S)
        assert link, f"no link to /lang/{code}"
        assert f'lang="{code}"' in link.group(0)
        assert f'<span class="cd-lang__name">{language["name"]}</span>' in link.group(0)
    assert ">English<" in current_language_link(body)


def test_login_page_in_spanish(client):
    switch_language(client, "es")
    body = client.get("/login/").get_data(as_text=True)
    assert re.search(r"<h1[^>]*>Iniciar sesión</h1>", body)
    assert re.search(r'<label for="username">Nombre de usuario</label>', body)
    assert re.search(r'<label for="password">Contraseña</label>', body)
    assert re.search(r'<button type="submit"[^>]*>Iniciar sesión</button>', body)
    assert "¿Ha olvidado su contraseña?" in body
    assert 'aria-label="Idioma"' in body
    assert ">Español<" in current_language_link(body)
    assert "Sign in" not in body and "Password" not in body


def test_failed_login_message_is_in_spanish(client):
    switch_language(client, "es")
    response = Auth(client).login("no-such-user", "not-the-password")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "El nombre de usuario y la contraseña no coinciden. Inténtelo de nuevo." in body
    assert "do not match" not in body


def test_signed_in_receptionist_switches_to_spanish(app):
    client = signed_in(app, "reception")
    response = switch_language(client, "es")
    assert response.headers["Location"].startswith(("/", "http://localhost/"))
    body = client.get("/").get_data(as_text=True)
    assert "Le damos la bienvenida, Rahul" in body
    assert "Sus sedes" in body
    for label in ("Inicio", "Equipo", "Personal", "Cerrar sesión", "Mi perfil"):
        assert re.search(rf">\s*{label}\s*<", body), f"no {label!r} in the Spanish page"
    assert 'aria-label="Navegación principal"' in body
    assert ">Español<" in current_language_link(body)
    for english in ("Good to see you", "Your branches", "Sign out", "Main navigation"):
        assert english not in body
    # FAB's own screens too, including strings FAB's Spanish catalogue lacks (fab_strings.py)
    staff = client.get("/staff/list/").get_data(as_text=True)
    assert re.search(r"<h1>\s*Personal\s*</h1>", staff)
    assert "Buscar y filtrar" in staff
    assert '<span class="sr-only">Ver</span>' in staff


def test_branch_form_validation_error_is_in_spanish(app):
    client = signed_in(app, "owner")
    switch_language(client, "es")
    with app.app_context():
        downtown = db.session.scalar(sa.select(Branch).where(Branch.code == "DT"))
        data = {
            "name": downtown.name,
            "code": downtown.code,
            "address": downtown.address or "",
            "phone": "12",
            "email": downtown.email or "",
            "country": downtown.country,
            "time_zone": downtown.time_zone,
            "currency": downtown.currency,
            "tax_id": downtown.tax_id or "",
            "fy_start_month": str(downtown.fy_start_month),
            "letterhead_text": downtown.letterhead_text or "",
            "is_active": "y",
        }
        branch_id, stored_phone = downtown.id, downtown.phone
    response = post_form(client, f"/settings/branches/edit/{branch_id}", data)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Introduzca un número de teléfono con su prefijo" in body
    assert "Enter a phone number" not in body
    assert "Teléfono" in body and "Zona horaria" in body
    with app.app_context():
        assert db.session.get(Branch, branch_id).phone == stored_phone


def test_switching_back_to_english(app):
    client = signed_in(app, "reception")
    switch_language(client, "es")
    assert "Le damos la bienvenida" in client.get("/").get_data(as_text=True)
    switch_language(client, "en")
    body = client.get("/").get_data(as_text=True)
    assert "Good to see you, Rahul" in body
    assert re.search(r">\s*Sign out\s*<", body)
    assert ">English<" in current_language_link(body)
    assert "Le damos la bienvenida" not in body and "Cerrar sesión" not in body


def test_unknown_language_is_refused(client):
    assert client.get("/lang/xx").status_code == 404
    body = client.get("/login/").get_data(as_text=True)
    assert ">English<" in current_language_link(body)


def test_the_page_language_follows_the_chosen_locale(client):
    assert '<html lang="en">' in client.get("/login/").get_data(as_text=True)
    client.get("/lang/es")
    assert '<html lang="es">' in client.get("/login/").get_data(as_text=True)
