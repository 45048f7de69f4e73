"""Rules for the organisation and its branches: valid regional settings, logos, staff branches."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import available_timezones

import phonenumbers
from babel import Locale
from babel.numbers import list_currencies

from app.extensions import db
from app.models.org import Branch, Organisation
from app.services.errors import ClinicError

#: Logo formats a letterhead may use, by their first bytes.
LOGO_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
}


class InvalidSettingError(ClinicError, ValueError):
    """A setting's value is not one ClinicDesk can use; the message says why, for the user."""


@lru_cache(maxsize=1)
def time_zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


@lru_cache(maxsize=1)
def currency_codes() -> frozenset[str]:
    return frozenset(list_currencies())


@lru_cache(maxsize=1)
def country_codes() -> frozenset[str]:
    """ISO 3166 codes of real countries: those with a telephone numbering plan and a name."""
    names = Locale("en").territories
    return frozenset(code for code in phonenumbers.SUPPORTED_REGIONS if code in names)


def country_choices(locale: str = "en") -> list[tuple[str, str]]:
    """(code, name) pairs for a country dropdown, sorted by name in the given language."""
    names = Locale.parse(locale).territories
    return sorted(
        ((code, names.get(code, code)) for code in country_codes()), key=lambda pair: pair[1]
    )


def logo_mimetype(data: bytes) -> str | None:
    """The image type of ``data`` if it is a PNG or JPEG file, else None."""
    for signature, mimetype in LOGO_SIGNATURES.items():
        if data.startswith(signature):
            return mimetype
    return None


def normalise_phone(raw: str, country: str) -> str:
    """A phone number in international (E.164) form, read with ``country`` as the default region.

    :raises InvalidSettingError: when the text is not a possible phone number.
    """
    try:
        number = phonenumbers.parse(raw, country or None)
    except phonenumbers.NumberParseException:
        raise InvalidSettingError("not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidSettingError("not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_branch(branch: Branch) -> None:
    """Store a branch's code in capitals and its phone in international form.

    :raises InvalidSettingError: when the phone number cannot be read for the branch's country.
    """
    branch.code = (branch.code or "").strip().upper()
    # Browsers send textarea line breaks as CRLF: store them as plain newlines.
    for field in ("address", "letterhead_text"):
        value = getattr(branch, field)
        if value:
            setattr(branch, field, value.replace("\r\n", "\n"))
    if branch.phone:
        branch.phone = normalise_phone(branch.phone, branch.country)


def get_organisation() -> Organisation | None:
    """The organisation's settings row (created by ``clinic init``)."""
    return db.session.get(Organisation, 1)


def ensure_organisation(name: str = "ClinicDesk clinic") -> Organisation:
    """Create the organisation's settings row if it is missing; return it."""
    organisation = get_organisation()
    if organisation is None:
        organisation = Organisation(id=1, name=name)
        db.session.add(organisation)
        db.session.flush()
    return organisation
