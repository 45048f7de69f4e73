"""Two-factor sign-in: time-based one-time codes (RFC 6238, pyotp) and single-use recovery codes.

Secrets are stored encrypted with ``DATA_ENCRYPTION_KEY`` (Fernet). A code is accepted once: the
accepted time step is written by a conditional UPDATE that only one request can win, so a
replayed code, or one code submitted twice at the same moment, is refused — on SQLite and on
PostgreSQL alike. Recovery codes are stored hashed and spent the same way.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from typing import Any

import pyotp
import segno
from cryptography.fernet import InvalidToken
from flask import current_app
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm.util import identity_key
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models.base import utcnow
from app.models.security import RecoveryCode, UserSecurity
from app.security.keys import data_fernet
from app.security.policy import TWO_FACTOR_ROLES
from app.security.scoping import role_names
from app.security.sessions import end_all_sessions, security_state
from app.services.audit import record_auth_event
from app.services.errors import ClinicError
from app.services.org import get_organisation

log = logging.getLogger(__name__)

#: Codes from the time step before and after the current one are accepted (clock drift).
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
#: Lower-case letters and digits that cannot be mistaken for one another (no 0/o, 1/l/i).
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_CODE_LENGTH = 8


class TwoFactorError(ClinicError):
    """A two-factor operation was refused."""


class InvalidCodeError(TwoFactorError):
    """The code does not match, or was used already."""

    def __init__(self) -> None:
        super().__init__(
            str(_l("That code is not valid or has already been used. Enter the current code from your app."))
        )


class AlreadyEnrolledError(TwoFactorError):
    """Two-factor sign-in is already on for this user."""

    def __init__(self) -> None:
        super().__init__(str(_l("Two-factor sign-in is already on for this account.")))


# -- secrets ------------------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh base32 secret (160 bits)."""
    return pyotp.random_base32()


def encrypt_secret(secret: str) -> str:
    """The secret as stored: a Fernet token, never the base32 text."""
    return data_fernet().encrypt(secret.encode()).decode()


def decrypt_secret(token: str, max_age: int | None = None) -> str:
    """The base32 secret inside a token from :func:`encrypt_secret`.

    :raises cryptography.fernet.InvalidToken: when the token is damaged, made with another key,
        or older than ``max_age`` seconds.
    """
    return data_fernet().decrypt(token.encode(), ttl=max_age).decode()


def grouped(secret: str) -> str:
    """The secret in groups of four, as people type it into an authenticator app."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, account_name: str) -> str:
    """The ``otpauth://`` address an authenticator app reads from the QR code."""
    organisation = get_organisation()
    issuer = organisation.name if organisation else current_app.config["APP_NAME"]
    return pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=issuer)


def qr_svg(uri: str) -> Markup:
    """The address as an inline SVG QR code, drawn on the server (no image service)."""
    code = segno.make(uri, error="m")
    svg = code.svg_inline(
        scale=4, border=2, dark="#1f2933", light="#ffffff", omitsize=True,
        title=str(_l("QR code for your authenticator app")), svgclass="cd-qr__code",
    )
    # segno writes the markup itself and escapes the text inside it (title, data).
    return Markup(svg)


# -- state --------------------------------------------------------------------------------------


def is_enrolled(user_id: int) -> bool:
    """True when the user has confirmed a two-factor secret."""
    state = db.session.get(UserSecurity, user_id)
    return bool(state and state.totp_secret and state.totp_confirmed_at)


def two_factor_required(user: Any) -> bool:
    """Admins and Owners always need a second factor; the organisation may require it of all."""
    if role_names(user) & TWO_FACTOR_ROLES:
        return True
    organisation = get_organisation()
    return bool(organisation and organisation.require_2fa_for_all)


def needs_enrolment(user: Any) -> bool:
    """True for a user who must use two-factor sign-in but has not set it up yet."""
    return not is_enrolled(user.id) and two_factor_required(user)


def recovery_codes_left(user_id: int) -> int:
    """How many of the user's recovery codes are still unused."""
    return db.session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )


# -- codes --------------------------------------------------------------------------------------


def _matching_step(secret: str, code: str, now: float) -> int | None:
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // totp.interval)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def verify_code(user_id: int, code: str, secret: str | None = None, now: float | None = None) -> bool:
    """True when ``code`` is valid now (±1 step) and its step is later than any accepted before.

    ``secret`` defaults to the user's stored secret (enrolment passes the one being confirmed).
    The winning step is written by one conditional UPDATE::

        UPDATE user_security SET totp_last_step = :step
        WHERE user_id = :id AND (totp_last_step IS NULL OR totp_last_step < :step)

    and only an UPDATE that changed the row accepts the code, so concurrent submissions of one
    code give exactly one success. The caller commits (promptly: the row stays locked until then).
    """
    if secret is None:
        state = db.session.get(UserSecurity, user_id)
        if state is None or not state.totp_secret or not state.totp_confirmed_at:
            return False
        try:
            secret = decrypt_secret(state.totp_secret)
        except InvalidToken:
            # Recovery codes still work, and an Admin can reset two-factor sign-in.
            log.error("the TOTP secret of user %s does not decrypt: was the data key changed?", user_id)
            return False
    step = _matching_step(secret, code, time.time() if now is None else now)
    if step is None:
        return False
    result = db.session.execute(
        update(UserSecurity)
        .where(
            UserSecurity.user_id == user_id,
            or_(UserSecurity.totp_last_step.is_(None), UserSecurity.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    _expire(user_id)
    return result.rowcount == 1


def _canonical_recovery_code(code: str) -> str | None:
    text = "".join(code.lower().split()).replace("-", "")
    if len(text) != RECOVERY_CODE_LENGTH or any(ch not in RECOVERY_ALPHABET for ch in text):
        return None
    return text


def looks_like_recovery_code(code: str) -> bool:
    """True when ``code`` has the shape of a recovery code (xxxx-xxxx) rather than a 6-digit code."""
    return _canonical_recovery_code(code) is not None


def use_recovery_code(user_id: int, code: str) -> bool:
    """Spend one of the user's recovery codes: True once per code, then never again.

    The code is marked used by a conditional UPDATE (``WHERE used_at IS NULL``), so two
    concurrent uses of one code give one success. The caller commits.
    """
    canonical = _canonical_recovery_code(code)
    if canonical is None:
        return False
    unused = db.session.scalars(
        select(RecoveryCode).where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )
    for recovery in unused:
        if check_password_hash(recovery.code_hash, canonical):
            result = db.session.execute(
                update(RecoveryCode)
                .where(RecoveryCode.id == recovery.id, RecoveryCode.used_at.is_(None))
                .values(used_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1
    return False


def _new_recovery_codes(user_id: int) -> list[str]:
    """Replace the user's recovery codes with ten new ones; returns them readable (xxxx-xxxx)."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    method = current_app.config.get("FAB_PASSWORD_HASH_METHOD", "scrypt")
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        db.session.add(RecoveryCode(user_id=user_id, code_hash=generate_password_hash(raw, method=method)))
        codes.append(f"{raw[:4]}-{raw[4:]}")
    return codes


# -- enrolment and reset ------------------------------------------------------------------------


def confirm_enrolment(user: Any, secret: str, code: str) -> list[str]:
    """Turn two-factor sign-in on with ``secret`` once ``code`` proves the app has it.

    Records ``totp_enrolled``. The caller commits, then shows the recovery codes once.

    :returns: the ten recovery codes, readable (they are stored hashed only).
    :raises AlreadyEnrolledError: when two-factor sign-in is already on.
    :raises InvalidCodeError: when the code does not match the secret.
    """
    if is_enrolled(user.id):
        raise AlreadyEnrolledError()
    state = security_state(user.id)
    if not verify_code(user.id, code, secret=secret):
        raise InvalidCodeError()
    state.totp_secret = encrypt_secret(secret)
    state.totp_confirmed_at = utcnow()
    codes = _new_recovery_codes(user.id)
    record_auth_event("totp_enrolled", user)
    return codes


def reset_two_factor(user: Any, admin: Any) -> None:
    """An Admin turns the user's two-factor sign-in off (lost phone): secret and recovery codes
    are deleted and every session and API token of the user ends. Audited as ``totp_reset``.
    The user enrols again at the next sign-in when their role requires it. The caller commits.
    """
    state = security_state(user.id)
    state.totp_secret = None
    state.totp_confirmed_at = None
    state.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    end_all_sessions(user.id)
    record_auth_event("totp_reset", user, details={"by": admin.username})


def pending_secret(token: str | None, max_age: int) -> str | None:
    """The secret inside an enrolment token, or None when it is missing, damaged or too old."""
    if not token:
        return None
    try:
        return decrypt_secret(token, max_age=max_age)
    except InvalidToken:
        return None


def _expire(user_id: int) -> None:
    # The UPDATE bypassed the ORM: a copy of the row already loaded in this session is stale.
    state = db.session.identity_map.get(identity_key(UserSecurity, user_id))
    if state is not None:
        db.session.expire(state)
