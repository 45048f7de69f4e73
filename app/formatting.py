"""How values read on screens: names instead of Python lists, Yes/No instead of True/False."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo

import phonenumbers
from babel.dates import format_datetime
from flask import has_request_context
from flask_babel import get_locale, gettext

#: How a moment reads on screens (CLDR pattern), e.g. "Mon 2 Mar 2026, 09:30".
WHEN_FORMAT = "EEE d MMM y, HH:mm"


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


def branch_time(when: datetime | date | None, branch: Any, pattern: str = WHEN_FORMAT) -> str:
    """``when`` (UTC, aware or naive) as the wall-clock time of ``branch``'s time zone.

    Without a branch (a patient-wide record) the time reads in UTC; a date reads as a date.
    """
    if when is None:
        return "—"
    locale = (get_locale() if has_request_context() else None) or "en"
    if not isinstance(when, datetime):
        return format_datetime(datetime.combine(when, datetime.min.time()), "EEE d MMM y", locale=locale)
    zone = ZoneInfo(branch.time_zone) if branch is not None else timezone.utc
    aware = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return format_datetime(aware, pattern, tzinfo=zone, locale=locale)
