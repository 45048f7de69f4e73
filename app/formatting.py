"""How values read on screens: names instead of Python lists, Yes/No instead of True/False."""

from __future__ import annotations

from typing import Any, Iterable

import phonenumbers
from flask_babel import gettext


def names(items: Iterable[Any]) -> str:
    """``[Admin, Owner]`` → ``Admin, Owner`` (by each item's ``name``)."""
    return ", ".join(str(getattr(item, "name", item)) for item in items or [])


def yes_no(value: Any) -> str:
    return gettext("Yes") if value else gettext("No")


def or_dash(value: Any) -> str:
    return "—" if value in (None, "") else str(value)


def phone(value: str | None) -> str:
    """A stored E.164 number as people read it: ``+918041234567`` → ``+91 80 4123 4567``."""
    if not value:
        return "—"
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
