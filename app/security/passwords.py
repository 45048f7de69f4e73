"""What makes a password acceptable (NIST SP 800-63B): long, not common, not the person's names.

No composition rules (no "one capital, one digit"): length and a breached/common list do more.

- At least ``MIN_LENGTH`` characters (and at most ``MAX_LENGTH``, so hashing stays cheap).
- Not a common password: the 30,000 most common passwords shipped by the ``zxcvbn`` package
  (pinned in requirements.txt) plus ``data/common-passwords.txt``. A password that is mostly one
  of them — with digits or symbols around it, in leetspeak, or repeated — is common too, and so
  is one made of a repeated short piece, a run like ``abcdefghijkl`` or very few distinct
  characters.
- Not mostly the person's own first or last name, username or e-mail address (case-insensitive,
  also reversed or with digits added).

FAB calls :func:`check_new_password` with the password alone (``FAB_PASSWORD_COMPLEXITY_VALIDATOR``);
the forms that know whose password it is also run :class:`PasswordNotPersonal`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

from flask import Flask
from flask_appbuilder.exceptions import PasswordComplexityValidationError
from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget
from flask_appbuilder.validators import PasswordComplexityValidator
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField
from wtforms.validators import DataRequired, ValidationError

MIN_LENGTH = 12
MAX_LENGTH = 128
#: Names shorter than this are not looked for inside a password ("Li", "Al").
MIN_NAME_LENGTH = 3
OWN_LIST = Path(__file__).resolve().parent / "data" / "common-passwords.txt"
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "@": "a", "5": "s", "$": "s",
                      "7": "t", "!": "i", "|": "l", "+": "t"})
_NOT_ALNUM = re.compile(r"[\W_]+")
_EDGES = re.compile(r"^[\W\d_]+|[\W\d_]+$")

PASSWORD_HELP = _l(
    "At least 12 characters. A few unrelated words are easy to remember and hard to guess; "
    "common passwords and the person's own names are refused."
)
PERSONAL = _l(
    "This password is too close to the person's name, username or e-mail address. "
    "Choose another one."
)


class PasswordRejectedError(PasswordComplexityValidationError):
    """The password is too short, too long, common or based on the person's names."""


def check_new_password(password: str, personal: Iterable[str | None] = ()) -> None:
    """Refuse a password that people or attackers would guess first.

    :param personal: the person's first and last name, username and e-mail address, if known.
    :raises PasswordRejectedError: with a translated sentence saying what to change.
    """
    if len(password) < MIN_LENGTH:
        raise PasswordRejectedError(str(_l(
            "Use at least %(count)d characters. Several unrelated words make a long password "
            "that is easy to remember.", count=MIN_LENGTH,
        )))
    if len(password) > MAX_LENGTH:
        raise PasswordRejectedError(str(_l("Use at most %(count)d characters.", count=MAX_LENGTH)))
    if is_common(password):
        raise PasswordRejectedError(str(_l(
            "This password is too common: it is on the lists of passwords that attackers try "
            "first. Choose another one."
        )))
    if is_personal(password, personal):
        raise PasswordRejectedError(str(PERSONAL))


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The common-password list: zxcvbn's 30,000 and ClinicDesk's own, lower case."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    shipped = FREQUENCY_LISTS["passwords"]
    words = set(shipped.split(",") if isinstance(shipped, str) else shipped)
    for line in OWN_LIST.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            words.add(line.lower())
    return frozenset(word for word in words if word)


def is_common(password: str) -> bool:
    """True for a common password, or one that is mostly a common password (see module doc)."""
    lowered = password.lower()
    squashed = _NOT_ALNUM.sub("", lowered)
    if len(set(squashed or lowered)) <= 3 or _is_run(squashed):
        return True
    common = common_passwords()
    whole = max(len(squashed), 1)
    for form in {lowered, squashed, lowered.translate(LEET), squashed.translate(LEET)}:
        if form in common or _is_repeated(form, common):
            return True
        core = _EDGES.sub("", form)
        core_length = len(_NOT_ALNUM.sub("", core))
        if core_length * 2 >= whole and (
            core in common or core.translate(LEET) in common or _is_repeated(core, common)
        ):
            return True
    return False


def is_personal(password: str, personal: Iterable[str | None]) -> bool:
    """True when the person's names, username or e-mail make up most of the password's letters."""
    names = _name_tokens(personal)
    if not names:
        return False
    lowered = password.lower()
    for form in {_NOT_ALNUM.sub("", lowered), _NOT_ALNUM.sub("", lowered.translate(LEET))}:
        letters = sum(1 for char in form if char.isalpha())
        if letters and _covered_letters(form, names) * 2 >= letters:
            return True
    return False


class PasswordNotPersonal:
    """WTForms validator: the new password is not mostly the person's own names.

    ``personal(form)`` returns the first name, last name, username and e-mail to compare with.
    """

    def __init__(self, personal: Callable[[object], Iterable[str | None]]) -> None:
        self.personal = personal

    def __call__(self, form, field) -> None:
        if field.errors or not field.data:
            return  # one message at a time: too short or common is said already
        if is_personal(field.data, self.personal(form)):
            raise ValidationError(str(PERSONAL))


def new_password_field(personal: Callable[[object], Iterable[str | None]]) -> PasswordField:
    """A form's new-password field: required, checked by FAB's hook and against ``personal``."""
    return PasswordField(
        _l("Password"),
        description=PASSWORD_HELP,
        validators=[DataRequired(), PasswordComplexityValidator(), PasswordNotPersonal(personal)],
        widget=BS3PasswordFieldWidget(),
    )


def init_passwords(app: Flask) -> None:
    """Make FAB's password forms run :func:`check_new_password` (unless configured otherwise)."""
    app.config.setdefault("FAB_PASSWORD_COMPLEXITY_VALIDATOR", check_new_password)


def _is_run(text: str) -> bool:
    """``abcdefghijkl``, ``123456789012``, ``987654321098``: each character one step from the last."""
    if len(text) < 4:
        return False
    steps = {(ord(b) - ord(a)) for a, b in zip(text, text[1:])}
    wraps = {1, -9} if text.isdigit() else {1}
    backwards = {-1, 9} if text.isdigit() else {-1}
    return steps <= wraps or steps <= backwards


def _is_repeated(text: str, common: frozenset[str]) -> bool:
    """``dragondragon``, ``abcabcabcabc``: a common word or a short piece said again and again."""
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            piece = text[:size]
            return len(piece) <= 4 or piece in common
    return False


def _name_tokens(personal: Iterable[str | None]) -> set[str]:
    """Lower-case names to look for: each value, its parts, first+last, e-mail's local part."""
    values = [str(value).lower().split("@", 1)[0] for value in personal if value]
    parts: list[str] = []
    for value in values:
        parts.append(_NOT_ALNUM.sub("", value))
        parts.extend(piece for piece in _NOT_ALNUM.split(value) if piece)
    if len(values) >= 2:  # first name + last name, either way round
        first, last = (_NOT_ALNUM.sub("", value) for value in values[:2])
        parts += [first + last, last + first]
    tokens = {_EDGES.sub("", part) for part in parts}
    tokens = {token for token in tokens if len(token) >= MIN_NAME_LENGTH}
    return tokens | {token[::-1] for token in tokens}


def _covered_letters(text: str, names: set[str]) -> int:
    covered = [False] * len(text)
    for name in names:
        start = text.find(name)
        while start != -1:
            for index in range(start, start + len(name)):
                covered[index] = True
            start = text.find(name, start + 1)
    return sum(1 for index, char in enumerate(text) if covered[index] and char.isalpha())
