"""Headers, cookies, CSRF, error pages and stored XSS, over every route and record screen.

Routes come from ``app.url_map`` and record screens from app/views/registry.py, so what later
issues add is checked without editing this file.
"""

from __future__ import annotations

import logging
import re

import pytest
import sqlalchemy as sa
from flask import abort, url_for
from flask_appbuilder import ModelView
from sqlalchemy import String, Text

from app.extensions import csrf, db
from app.views.registry import RECORD_SCREENS
from config import ProductionConfig
from tests.conftest import Auth, bearer_headers, login_as, required_permission

MISSING_PK = 987654
SKIPPED_GET_METHODS = {"download", "delete", "action"}
NONCE_RE = re.compile(r"script-src 'self' 'nonce-([A-Za-z0-9_-]+)'")
SCRIPT_TAG_RE = re.compile(r"<script\b[^>]*>", re.I)
EVENT_HANDLER_RE = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
REFERENCE_RE = re.compile(r"Reference <code>([0-9A-F]{10})</code>")
ECHO = "Echo-Sentinel-7Qz"
PAYLOAD = """<script>alert(1)</script>"'><img src=x onerror=alert(1)>"""
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
RAW = ("<script>alert(1)", "<img src=x")


def sample_value(app, rule, argument: str, method: str):
    views = {view.endpoint: view for view in app.appbuilder.baseviews}
    if argument == "pk":
        if method != "GET":
            return MISSING_PK
        view = views.get(rule.endpoint.partition(".")[0])
        record = db.session.query(view.datamodel.obj).first() if view else None
        return view.datamodel.get_pk_value(record) if record is not None else None
    return {
        "version": "v1",
        "locale": "en",
        "name": "no-such-action",
        "filename": "none.txt",
        "branch_id": MISSING_PK,
    }.get(argument, "x")


def urls_for(app, method: str, api: bool):
    """(rule, url) for every rule answering ``method``, under /api/ or not, with sample values."""
    found = []
    with app.app_context(), app.test_request_context():
        for rule in app.url_map.iter_rules():
            if method not in rule.methods or rule.endpoint in ("static", "appbuilder.static"):
                continue
            if rule.rule.startswith("/api/") != api:
                continue
            if method == "GET" and rule.endpoint.partition(".")[2] in SKIPPED_GET_METHODS:
                continue
            values = {arg: sample_value(app, rule, arg, method) for arg in rule.arguments}
            if None in values.values():
                continue
            found.append((rule, url_for(rule.endpoint, **values)))
    return found


# -- headers on every GET route ------------------------------------------------------------------


def check_headers(response, url: str) -> list[str]:
    problems = []
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    for part in ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'"):
        if part not in csp:
            problems.append(f"{url}: CSP lacks {part!r}")
    if not NONCE_RE.search(csp):
        problems.append(f"{url}: CSP has no script nonce")
    if headers.get("X-Content-Type-Options") != "nosniff":
        problems.append(f"{url}: no nosniff")
    if headers.get("X-Frame-Options") != "DENY":
        problems.append(f"{url}: no X-Frame-Options DENY")
    if headers.get("Referrer-Policy") not in ("same-origin", "no-referrer"):
        problems.append(f"{url}: Referrer-Policy {headers.get('Referrer-Policy')}")
    if "no-store" not in headers.get("Cache-Control", "") and not url.startswith("/branding/"):
        problems.append(f"{url}: Cache-Control {headers.get('Cache-Control')!r}")
    return problems


def check_scripts(body: str, nonce: str, url: str) -> tuple[list[str], int]:
    problems, scripts = [], SCRIPT_TAG_RE.findall(body)
    for tag in scripts:
        if f'nonce="{nonce}"' not in tag:
            problems.append(f"{url}: script without this response's nonce: {tag}")
    for handler in EVENT_HANDLER_RE.findall(body):
        problems.append(f"{url}: inline event handler: {handler}")
    if "javascript:" in body.lower():
        problems.append(f"{url}: javascript: URL")
    return problems, len(scripts)


def test_every_get_route_sends_the_security_headers(app, capsys):
    browser = login_as(app, "admin")
    api = app.test_client()
    token = bearer_headers(app, "admin")
    checked, pages, scripts, problems = 0, 0, 0, []
    routes = [(url, browser, {}) for _, url in urls_for(app, "GET", api=False)]
    routes += [(url, api, token) for _, url in urls_for(app, "GET", api=True)]
    routes += [("/health", app.test_client(), {}), ("/login/", app.test_client(), {})]
    for url, client, headers in routes:
        response = client.get(url, headers=headers)
        checked += 1
        if response.status_code >= 500:
            problems.append(f"{url}: {response.status_code}")
        problems += check_headers(response, url)
        if response.mimetype == "text/html" and response.status_code == 200:
            pages += 1
            nonce = NONCE_RE.search(response.headers["Content-Security-Policy"]).group(1)
            found, count = check_scripts(response.get_data(as_text=True), nonce, url)
            problems += found
            scripts += count
    assert pages >= 10
    assert not problems, "\n".join(problems)
    with capsys.disabled():
        print(
            f"\n[headers] {checked} GET routes checked; {pages} HTML pages, {scripts} script "
            "tags, all with the response's nonce"
        )


def test_static_files_stay_cacheable_and_nosniff(client):
    response = client.get("/static/css/clinic.css")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_nonce_changes_with_every_response(client):
    first = client.get("/login/").headers["Content-Security-Policy"]
    second = client.get("/login/").headers["Content-Security-Policy"]
    assert NONCE_RE.search(first).group(1) != NONCE_RE.search(second).group(1)


def test_hsts_in_production_only(make_app, client):
    assert "Strict-Transport-Security" not in client.get("/login/").headers
    assert ProductionConfig.HSTS_SECONDS >= 180 * 24 * 3600
    app = make_app(HSTS_SECONDS=ProductionConfig.HSTS_SECONDS)
    response = app.test_client().get("/login/", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"] == f"max-age={ProductionConfig.HSTS_SECONDS}"


# -- cookies -------------------------------------------------------------------------------------


def session_set_cookie(response) -> str:
    cookies = [value for key, value in response.headers.items() if key == "Set-Cookie"]
    session = [cookie for cookie in cookies if cookie.startswith("session=")]
    assert session, f"no session cookie set: {cookies}"
    assert not any(cookie.startswith("remember_token=") for cookie in cookies)
    return session[-1]


def test_session_cookie_flags_on_login(app):
    cookie = session_set_cookie(Auth(app.test_client()).login("reception"))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Expires=" in cookie, "a permanent session with the idle timeout as its lifetime"


def test_session_cookie_is_secure_in_production(make_app):
    assert ProductionConfig.SESSION_COOKIE_SECURE is True
    app = make_app(SESSION_COOKIE_SECURE=True)
    client = app.test_client()
    page = client.get("/login/", base_url="https://localhost")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True))
    response = client.post(
        "/login/",
        base_url="https://localhost",
        data={"username": "reception", "password": "correct-horse-battery-staple",
              "csrf_token": token.group(1)},
    )
    cookie = session_set_cookie(response)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


# -- CSRF and REST writes ------------------------------------------------------------------------


def test_every_form_post_needs_a_csrf_token(app, capsys):
    client = login_as(app, "admin")
    data = {field: ECHO for field in ("name", "username", "first_name", "password", "code")}
    refused, problems = [], []
    for rule, url in urls_for(app, "POST", api=False):
        response = client.post(url, data=data)
        body = response.get_data(as_text=True)
        if response.status_code != 400 or "The form expired" not in body:
            problems.append(f"POST {url}: {response.status_code}")
        elif ECHO in body:
            problems.append(f"POST {url}: the refused form's data is shown back")
        elif not REFERENCE_RE.search(body):
            problems.append(f"POST {url}: no reference id")
        else:
            refused.append(rule.rule)
    assert not problems, "\n".join(problems)
    assert {"/login/", "/logout/", "/users/add", "/resetmypassword/form"} <= set(refused)
    with capsys.disabled():
        print(f"\n[csrf] {len(refused)} form routes refused without token")


def test_get_never_deletes(app):
    client = login_as(app, "admin")
    with app.app_context():
        pk = app.appbuilder.sm.find_user(username="reception2").id
    client.get(f"/users/delete/{pk}")
    with app.app_context():
        assert app.appbuilder.sm.get_user_by_id(pk) is not None


def test_rest_writes_refuse_a_session_cookie_alone(app, capsys):
    """401 to a signed-in browser's cookie; 403 where the API has no such method for anyone."""
    client = login_as(app, "admin")
    views = {view.endpoint: view for view in app.appbuilder.baseviews}
    refused, shut, problems = 0, 0, []
    for method in ("POST", "PUT", "DELETE"):
        for rule, url in urls_for(app, method, api=True):
            if rule.endpoint.startswith("SecurityApi."):
                continue  # the sign-in doors themselves
            view_name, _, view_method = rule.endpoint.partition(".")
            view = views[view_name]
            pair = required_permission(view, view_method)
            expected = 403 if pair and pair[0] not in view.base_permissions else 401
            response = client.open(url, method=method, json={})
            if response.status_code != expected:
                problems.append(f"{method} {url}: {response.status_code}, not {expected}")
            elif expected == 401:
                refused += 1
            else:
                shut += 1
    assert refused and not problems, "\n".join(problems)
    with capsys.disabled():
        print(
            f"[csrf] {refused} REST writes refused with only a session cookie (401); "
            f"{shut} methods no API offers (403)"
        )


# -- error pages ---------------------------------------------------------------------------------


def assert_error_page(response, status: int, title: str) -> str:
    body = response.get_data(as_text=True)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert title in body
    assert REFERENCE_RE.search(body), "no reference id"
    assert "Traceback" not in body
    return body


def test_404_403_405_pages(app):
    assert_error_page(app.test_client().get("/no/such/page"), 404, "Page not found")
    assert_error_page(
        login_as(app, "reception").get("/users/list/"), 403, "You do not have access"
    )
    assert_error_page(app.test_client().get("/logout/"), 405, "That action is not possible here")


def test_api_errors_are_json_with_a_reference(app):
    response = app.test_client().get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.is_json
    assert re.fullmatch(r"[0-9A-F]{10}", response.get_json()["reference"])


@pytest.fixture(scope="module")
def failing_app(make_app):
    """An app with test-only routes that fail, answering as production does (no propagation)."""
    app = make_app(PROPAGATE_EXCEPTIONS=False)

    def fail():
        raise RuntimeError(f"database said: Key (name)=({ECHO}) already exists")

    app.add_url_rule("/test-only/fail", "test_fail", csrf.exempt(fail), methods=["GET", "POST"])
    app.add_url_rule("/api/v1/test-only/fail", "test_api_fail", fail)
    app.add_url_rule("/test-only/forbidden", "test_forbidden", lambda: abort(403))
    app.add_url_rule("/test-only/locked", "test_locked", lambda: abort(423))
    return app


def test_500_page_and_log_carry_a_reference_but_no_data(failing_app, caplog):
    client = failing_app.test_client()
    with caplog.at_level(logging.INFO, logger="app"):
        response = client.post(f"/test-only/fail?patient={ECHO}", data={"note": ECHO})
    body = assert_error_page(response, 500, "Something went wrong")
    assert ECHO not in body
    reference = REFERENCE_RE.search(body).group(1)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert reference in logged and "RuntimeError" in logged and "fail" in logged
    assert ECHO not in logged, "the log holds request or error data"


def test_500_under_api_is_json(failing_app):
    response = failing_app.test_client().get("/api/v1/test-only/fail")
    assert response.status_code == 500
    assert response.is_json and response.get_json()["reference"]
    assert ECHO not in response.get_data(as_text=True)


def test_abort_403_and_423_render_our_pages(failing_app):
    client = failing_app.test_client()
    assert_error_page(client.get("/test-only/forbidden"), 403, "You do not have access")
    assert_error_page(client.get("/test-only/locked"), 423, "Sign-in is locked for now")


# -- stored XSS ----------------------------------------------------------------------------------


def text_columns(model) -> list:
    return [
        column
        for column in sa.inspect(model).columns
        if isinstance(column.type, (String, Text)) and not column.primary_key
    ]


def fill_with_payload(record, screen, number: int) -> int:
    """Write the payload into every text column but the screen's fixed ones; count them.

    Each value starts with the screen's ``number``, so unique columns stay unique.
    """
    filled, payload = 0, f"{number}{PAYLOAD}"
    for column in text_columns(screen.model):
        key = sa.inspect(screen.model).get_property_by_column(column).key
        if key in screen.fixed:
            setattr(record, key, screen.fixed[key])
            continue
        length = getattr(column.type, "length", None)
        setattr(record, key, payload[:length] if length else payload)
        filled += 1
    return filled


def payload_record(screen, number: int) -> tuple[int, int]:
    """(pk, fields filled) of a record with the payload in its text columns.

    A new record copies the other columns of the model's first record (unique ones left empty
    where they may be); a model that holds one record only (the organisation) has it changed.
    """
    model = screen.model
    mapper = sa.inspect(model)
    source = db.session.query(model).order_by(*mapper.primary_key).first()
    record = model()
    for attribute in mapper.column_attrs:
        column = attribute.columns[0]
        # Fresh timestamps: lists that show the newest first (lab orders) show the payload.
        if column.primary_key or source is None or attribute.key in ("created_at", "updated_at"):
            continue
        unique = column.unique or any(
            isinstance(c, sa.UniqueConstraint) and column.key in c.columns.keys()
            for c in column.table.constraints
        )
        setattr(record, attribute.key, None if unique and column.nullable else getattr(source, attribute.key))
    filled = fill_with_payload(record, screen, number)
    db.session.add(record)
    if source is not None:
        for relationship in mapper.relationships:
            if relationship.secondary is not None:  # roles, branches, permissions
                setattr(record, relationship.key, list(getattr(source, relationship.key)))
    try:
        db.session.commit()
    except (sa.exc.IntegrityError, sa.orm.exc.FlushError):  # e.g. a primary key copied from no one
        db.session.rollback()
        record = source
        fill_with_payload(record, screen, number)
        db.session.commit()
    return mapper.primary_key_from_instance(record)[0], filled


def test_every_record_screen_is_in_the_registry(app):
    registered = {endpoint for screen in RECORD_SCREENS for endpoint in screen.endpoints}
    missing = []
    for view in app.appbuilder.baseviews:
        if not isinstance(view, ModelView):
            continue
        for method in ("list", "show"):
            endpoint = f"{view.endpoint}.{method}"
            if endpoint in app.view_functions and endpoint not in registered:
                missing.append(f"{endpoint} ({view.datamodel.obj.__name__})")
    for screen in RECORD_SCREENS:
        for endpoint in screen.endpoints:
            assert endpoint in app.view_functions, f"registry names a missing page {endpoint}"
    assert not missing, "add these screens to app/views/registry.py: " + ", ".join(missing)


def test_stored_script_is_escaped_on_every_record_screen(app, capsys):
    client = login_as(app, "admin")
    fields, pages, problems = 0, 0, []
    for number, screen in enumerate(RECORD_SCREENS):
        with app.app_context():
            pk, filled = payload_record(screen, number)
        fields += filled
        with app.test_request_context():
            urls = [url_for(screen.list_endpoint)]
            urls += [url_for(e, pk=pk) for e in (screen.show_endpoint, screen.print_endpoint) if e]
        for url in urls:
            response = client.get(url)
            body = response.get_data(as_text=True)
            pages += 1
            if response.status_code != 200:
                problems.append(f"{url}: {response.status_code}")
            elif filled and ESCAPED not in body:  # a model without text columns (working hours)
                problems.append(f"{url}: the payload does not show (escaped) at all")
            problems += [f"{url}: raw {raw!r}" for raw in RAW if raw in body]
    assert not problems, "\n".join(problems)
    with capsys.disabled():
        print(f"\n[xss] {fields} fields × {pages} pages checked")


def test_search_terms_are_not_kept_in_the_session_cookie(app):
    """FAB's back-navigation history lives in the signed (readable) session cookie."""
    client = login_as(app, "admin")
    client.get("/staff/list/?_flt_0_first_name=Annabelle")
    with client.session_transaction() as session:
        history = str(session.get("page_history"))
    assert "/staff/list/" in history
    assert "Annabelle" not in history


def test_no_api_info_lists_the_patient_register_or_patients_records(app):
    """``_info`` offers relationship choices; patients and their child rows are never among them
    (that would be an unlogged read of the register, across branches)."""
    from app.models.patients import Patient
    from app.views.base import ClinicModelApi

    with app.app_context():
        mrns = set(db.session.scalars(sa.select(Patient.mrn).where(Patient.mrn.is_not(None))))
        apis = [api for api in app.appbuilder.baseviews if isinstance(api, ClinicModelApi)]
    assert len(apis) >= 6
    client = app.test_client()
    headers = bearer_headers(app, "admin")
    checked = 0
    for api in apis:
        response = client.get(f"/api/v1/{api.resource_name}/_info", headers=headers)
        if response.status_code != 200:
            continue
        checked += 1
        body = response.get_data(as_text=True)
        leaked = [mrn for mrn in mrns if mrn in body]
        assert not leaked, f"/api/v1/{api.resource_name}/_info lists patients: {leaked[:3]}"
    assert checked >= 6


@pytest.mark.parametrize(
    "target, kept",
    [("/appointments/day?date=2026-11-23", True), ("/leads/board", True),
     ("//evil.example/x", False), ("/\\evil.example", False), ("https://evil.example/", False),
     ("javascript:alert(1)", False), ("leads/board", False), ("", False), (None, False)],
)
def test_a_forms_next_is_kept_only_when_it_is_a_path_on_this_site(target, kept):
    from app.views.forms import local_path

    assert local_path(target) == (target if kept else None)


def test_the_api_refuses_text_longer_than_its_column(app):
    """SQLite ignores String(n) and Text has no size: the API itself keeps text to a size."""
    from app.views.base import API_TEXT_LIMIT

    with app.app_context():
        patient = db.session.scalar(sa.text("SELECT id FROM patient ORDER BY id LIMIT 1"))
    client = app.test_client()
    headers = bearer_headers(app, "reception")
    long_note = {"patient": patient, "channel": "call", "direction": "out", "outcome": "reached",
                 "summary": "x" * (API_TEXT_LIMIT + 1)}
    response = client.post("/api/v1/communications/", json=long_note, headers=headers)
    assert response.status_code == 422
    assert "summary" in response.get_json()["message"], response.get_json()
    too_long_name = {"first_name": "y" * 81, "last_name": "Shah", "sex": "female"}
    response = client.post("/api/v1/patients/", json=too_long_name, headers=headers)
    assert response.status_code == 422
    assert "first_name" in response.get_json()["message"], response.get_json()
