"""What forms of several screens share (no views here: any view module may import it)."""

from __future__ import annotations

from typing import Callable
from urllib.parse import urlsplit

from flask_babel import lazy_gettext as _l
from wtforms.validators import ValidationError

from app.services.org import InvalidSettingError, normalise_phone

#: How a ``datetime-local`` input sends a branch-local time.
LOCAL_INPUT_FORMAT = "%Y-%m-%dT%H:%M"


def local_path(target: str | None) -> str | None:
    """``target`` when it is a path on this site (never another host), else None.

    For a form's ``next``: "//evil.example", "/\\evil.example" and "https://…" are refused.
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


def dialable_phone(branch_field: str) -> Callable:
    """A validator: the phone number must be one the country of the form's ``branch_field`` dials.

    A number without a country code is read as the chosen branch's country (a local number);
    the services store it in international form.
    """

    def validate(form, field) -> None:
        if not field.data:
            return
        branch = getattr(getattr(form, branch_field, None), "data", None)
        try:
            normalise_phone(field.data, getattr(branch, "country", "") or "")
        except InvalidSettingError:
            raise ValidationError(
                str(_l("Enter a phone number with its area code, e.g. 098765 43210."))
            ) from None

    return validate
