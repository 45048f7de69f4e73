"""Signing in, step by step: the password, then (for enrolled users) a second factor.

The sign-in form (``ClinicAuthView``), the code step (``TotpView``) and the REST login
(``ClinicSecurityApi``) all go through these functions; they raise :class:`SignInError`s that the
views turn into pages or JSON answers. Between the two steps the browser holds a *pending*
sign-in (the user's id and when the password was accepted), which is not a session: nothing but
the code step accepts it, and it expires after five minutes.

Users who must use two-factor sign-in but have not set it up are held by
:func:`enforce_enrolment` (a ``before_request`` hook): they reach enrolment, sign-out and static
files only, and their API tokens are refused.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app, jsonify, redirect, request, session, url_for
from flask_appbuilder.security.utils import is_null_password
from flask_babel import lazy_gettext as _l
from flask_jwt_extended import decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from flask_login import current_user
from jwt import PyJWTError
from werkzeug.security import check_password_hash

from app.extensions import db
from app.models.base import utcnow
from app.models.security import UserSecurity
from app.security import lockout, totp
from app.security.sessions import session_version
from app.services.audit import record_auth_event
from app.services.errors import ClinicError

#: Session key of a sign-in waiting for its second factor.
PENDING_KEY = "signin_pending"
#: How long the code step waits after the password was accepted.
PENDING_SECONDS = 300
#: Session flag of a user signed in with a password who must enrol before anything else.
MUST_ENROLL_KEY = "must_enroll"
#: Endpoints a user who must enrol can still reach.
ENROLMENT_OPEN_ENDPOINTS = frozenset(
    {
        "static",
        "appbuilder.static",
        "health.health",
        "TotpView.enroll",
        "TotpView.verify",
        "ClinicAuthView.login",
        "ClinicAuthView.logout",
        "LocaleView.index",
        "SecurityApi.login",
    }
)


class SignInError(ClinicError):
    """A sign-in step was refused; ``str(error)`` is the message for the person signing in."""


class InvalidCredentialsError(SignInError):
    def __init__(self) -> None:
        super().__init__(str(_l("That username and password do not match. Please try again.")))


class AccountLockedError(SignInError):
    """Too many failed attempts: the account is locked until ``until``, whatever is typed."""

    def __init__(self, until: datetime) -> None:
        self.until = until
        minutes = max(1, math.ceil((until - utcnow()).total_seconds() / 60))
        super().__init__(
            str(
                _l(
                    "This account is locked after too many failed sign-in attempts. Try again in "
                    "%(minutes)s minutes, or ask an administrator to unlock it.",
                    minutes=minutes,
                )
            )
        )


class SecondFactorRequiredError(SignInError):
    def __init__(self) -> None:
        super().__init__(
            str(_l("Two-factor sign-in is on for this account: send the current code as \"totp\"."))
        )


class InvalidSecondFactorError(SignInError):
    def __init__(self) -> None:
        super().__init__(
            str(
                _l(
                    "That code is not valid or has already been used. Enter the current code "
                    "from your app, or one of your recovery codes."
                )
            )
        )


class EnrolmentRequiredError(SignInError):
    def __init__(self) -> None:
        super().__init__(
            str(_l("Enrol two-factor sign-in first: sign in on the website to set it up."))
        )


class PendingSignInExpiredError(SignInError):
    def __init__(self) -> None:
        super().__init__(str(_l("That took too long. Please sign in again.")))


# -- the steps ----------------------------------------------------------------------------------


def _find_user(username: str) -> Any | None:
    sm = current_app.appbuilder.sm
    return sm.find_user(username=username) or sm.find_user(email=username)


def check_password(username: str, password: str) -> Any:
    """The first step: the user whose password this is.

    A locked account is refused before its password is looked at. A wrong password counts
    toward the lockout; a right one changes nothing yet (the counter is reset only when the whole
    sign-in succeeds). Commits the failure it records.

    :raises AccountLockedError: when the account is locked (also when this failure locked it).
    :raises InvalidCredentialsError: for an unknown or inactive user or a wrong password.
    """
    user = _find_user(username) if username else None
    if user is None or not user.is_active or is_null_password(password):
        # Same work as a real check, so the answer's timing does not reveal who exists.
        check_password_hash(current_app.config["AUTH_DB_FAKE_PASSWORD_HASH_CHECK"], "password")
        record_auth_event("login_failure", user, username=username, details={"step": "password"})
        db.session.commit()
        raise InvalidCredentialsError()
    lockout.hold_account(user.id)
    until = lockout.locked_until(user.id)
    if until is not None:
        _refuse_while_locked(user, "password")
        raise AccountLockedError(until)
    if not check_password_hash(user.password, password):
        until = lockout.record_failure(user, "password")
        current_app.appbuilder.sm.update_user_auth_stat(user, False)
        db.session.commit()
        if until is not None:
            raise AccountLockedError(until)
        raise InvalidCredentialsError()
    return user


def check_second_factor(user: Any, code: str) -> str:
    """The second step: a current 6-digit code or an unused recovery code.

    Failures count toward the same lockout as passwords. Commits what it records.

    :returns: ``"totp"`` or ``"recovery_code"``, whichever was accepted.
    :raises AccountLockedError: when the account is (or this failure made it) locked.
    :raises InvalidSecondFactorError: for a wrong, expired or already used code.
    """
    lockout.hold_account(user.id)
    until = lockout.locked_until(user.id)
    if until is not None:
        _refuse_while_locked(user, "totp")
        raise AccountLockedError(until)
    code = (code or "").strip()
    if totp.looks_like_recovery_code(code):
        if totp.use_recovery_code(user.id, code):
            record_auth_event(
                "recovery_code_used", user, details={"left": totp.recovery_codes_left(user.id)}
            )
            db.session.commit()
            return "recovery_code"
    elif totp.verify_code(user.id, code):
        db.session.commit()
        return "totp"
    until = lockout.record_failure(user, "totp")
    current_app.appbuilder.sm.update_user_auth_stat(user, False)
    db.session.commit()
    if until is not None:
        raise AccountLockedError(until)
    raise InvalidSecondFactorError()


def _refuse_while_locked(user: Any, step: str) -> None:
    """An attempt on a locked account is refused unchecked, but still recorded."""
    record_auth_event("login_failure", user, details={"step": step, "locked": True})
    db.session.commit()


def complete_sign_in(user: Any, method: str, via: str = "form") -> None:
    """Every step passed: reset the failure counter, count the login, record ``login_success``.

    The caller then starts the session or issues the tokens. Commits.
    """
    lockout.clear_failures(user.id)
    record_auth_event("login_success", user, details={"method": method, "via": via})
    current_app.appbuilder.sm.update_user_auth_stat(user, True)
    db.session.commit()


# -- the pending sign-in between the two steps ---------------------------------------------------


@dataclass(frozen=True)
class PendingSignIn:
    user: Any
    next_url: str


def begin_pending_sign_in(user: Any, next_url: str) -> None:
    """Remember that ``user`` passed the password step, for the code step only."""
    session.pop(PENDING_KEY, None)
    session[PENDING_KEY] = {
        "user_id": user.id,
        "at": time.time(),
        "next": next_url,
        # A password change or an admin reset in between voids the half-finished sign-in.
        "sv": session_version(user.id),
    }


def pending_sign_in() -> PendingSignIn | None:
    """The sign-in waiting for its second factor, or None.

    :raises PendingSignInExpiredError: when the password was accepted too long ago (the pending
        state is dropped).
    """
    data = session.get(PENDING_KEY)
    if not data:
        return None
    if time.time() - float(data.get("at", 0)) > PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        raise PendingSignInExpiredError()
    user = current_app.appbuilder.sm.get_user_by_id(int(data["user_id"]))
    if (
        user is None
        or not user.is_active
        or data.get("sv") != session_version(user.id)
    ):
        session.pop(PENDING_KEY, None)
        return None
    return PendingSignIn(user=user, next_url=data.get("next") or "/")


def clear_pending_sign_in() -> None:
    session.pop(PENDING_KEY, None)


# -- users who must enrol ------------------------------------------------------------------------


def _token_user() -> Any | None:
    """The user named by a valid bearer JWT on this request, if any (the view checks it again)."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    try:
        claims = decode_token(header[7:].strip())
    except (PyJWTError, JWTExtendedException, ValueError):
        return None
    try:
        return current_app.appbuilder.sm.get_user_by_id(int(claims["sub"]))
    except (KeyError, TypeError, ValueError):
        return None


def enforce_enrolment():
    """``before_request``: hold users who must enrol in two-factor sign-in but have not.

    The database decides (role, organisation setting, enrolment), so the rule also reaches
    sessions and tokens issued before the organisation made two-factor sign-in mandatory.
    Pages redirect to enrolment; API calls answer 403.
    """
    if request.endpoint in ENROLMENT_OPEN_ENDPOINTS:
        return None
    user = current_user if current_user.is_authenticated else _token_user()
    if user is None or not totp.needs_enrolment(user):
        return None
    if request.path.startswith("/api/"):
        return jsonify(message=str(EnrolmentRequiredError())), 403
    return redirect(url_for("TotpView.enroll"))


# -- what an Admin sees on the user screen -------------------------------------------------------


@dataclass(frozen=True)
class AccountSecurity:
    """A user's sign-in security at a glance: two-factor state and lockout."""

    enrolled: bool
    enrolled_at: datetime | None
    required: bool
    recovery_codes_left: int
    failed_attempts: int
    locked_until: datetime | None


def account_security(user: Any) -> AccountSecurity:
    """The user's two-factor and lockout state, for the Admin's user screen."""
    state = db.session.get(UserSecurity, user.id)
    enrolled = totp.is_enrolled(user.id)
    return AccountSecurity(
        enrolled=enrolled,
        enrolled_at=state.totp_confirmed_at if enrolled else None,
        required=totp.two_factor_required(user),
        recovery_codes_left=totp.recovery_codes_left(user.id) if enrolled else 0,
        failed_attempts=state.failed_attempts if state else 0,
        locked_until=lockout.locked_until(user.id),
    )


def init_two_factor(app) -> None:
    """Hold users who must enrol (register after FAB and the session checks)."""
    app.before_request(enforce_enrolment)
