"""Sessions that really end: idle and absolute limits, and a per-user session version.

Flask keeps a session in a signed cookie, which the server cannot revoke on its own. So every
session and API token carries the user's ``session_version`` (table ``user_security``) and every
request compares the two: raising the version ends every session and token the user holds.

- Logout raises the version: a copy of the cookie taken before is useless afterwards. The price
  is that signing out on one device also signs the user out on their others (documented in the
  README); a per-session id would need a table of live sessions.
- A password change raises it too and records ``password_changed_at``; the browser that made
  the change gets a fresh session at once (:func:`start_session`).
- The version is read from the database on each request, never from Redis: a Redis outage
  signs nobody out.
- Timestamps in the session enforce the idle timeout (``SESSION_IDLE_MINUTES``) and the absolute
  lifetime (``SESSION_MAX_HOURS``) on the server. Last-seen moves at most once a minute, so the
  cookie is not rewritten on every request (``SESSION_REFRESH_EACH_REQUEST`` is off).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

from flask import Flask, current_app, flash, redirect, request, session
from flask_babel import lazy_gettext as _l
from flask_jwt_extended import JWTManager
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from app.extensions import db
from app.models.security import UserSecurity
from app.security.policy import PUBLIC_ENDPOINTS

log = logging.getLogger(__name__)

#: A user's first session version (the column's default).
FIRST_VERSION = 1
#: Session keys this module owns: the version and the two timestamps (seconds since the epoch).
VERSION_KEY, STARTED_KEY, SEEN_KEY = "sv", "started_at", "seen_at"
#: Last-seen is rewritten at most this often.
TOUCH_EVERY_SECONDS = 60
#: Session keys that survive signing in and out: the chosen language is no secret.
KEPT_KEYS = ("locale",)
STATIC_ENDPOINTS = frozenset({"static", "appbuilder.static"})
SESSION_ENDED = _l("Your session has ended. Please sign in again to continue.")


def security_state(user_id: int) -> UserSecurity:
    """The user's security row, created (not yet committed) on first need."""
    state = db.session.get(UserSecurity, user_id)
    if state is None:
        state = UserSecurity(user_id=user_id, failed_attempts=0, session_version=FIRST_VERSION)
        db.session.add(state)
        db.session.flush()
    return state


def session_version(user_id: int) -> int:
    """The user's current session version, as the database holds it right now."""
    version = db.session.scalar(
        select(UserSecurity.session_version).where(UserSecurity.user_id == user_id)
    )
    return FIRST_VERSION if version is None else version


def start_session(user: Any) -> None:
    """Sign ``user`` in on this browser, bound to their current session version. Commits.

    The old session's content is dropped (no fixation), except the chosen language.
    """
    state = security_state(user.id)
    _clear_session()
    login_user(user, remember=False)
    session.permanent = True
    now = _now()
    session[VERSION_KEY] = state.session_version
    session[STARTED_KEY] = now
    session[SEEN_KEY] = now
    db.session.commit()


def end_session(user: Any | None) -> None:
    """Sign this browser out, so that no copy of its cookie works any more. Commits.

    ``user`` is whoever was signed in (``None`` for a visitor): their session version is raised,
    which also ends their sessions on other devices and their API tokens.
    """
    _clear_session()
    if user is not None:
        end_all_sessions(user.id)
        db.session.commit()


def end_all_sessions(user_id: int) -> None:
    """Invalidate every session and API token the user holds. The caller commits."""
    state = security_state(user_id)
    state.session_version += 1


def record_password_change(user_id: int) -> None:
    """A new password: end the user's sessions and tokens and note when. The caller commits."""
    end_all_sessions(user_id)
    security_state(user_id).password_changed_at = datetime.now(timezone.utc)


def init_sessions(app: Flask) -> None:
    """Check every request's session (register after FAB, which sets ``g.user``)."""
    app.before_request(check_session)


def check_session():
    """End a session that is idle, too old or of an outdated version, before the view runs.

    A page request is sent to the login page with a message; an API request carries on as
    anonymous and its own authentication answers 401; public pages (login, health) just show.
    """
    if request.endpoint in STATIC_ENDPOINTS or not current_user.is_authenticated:
        return None
    now = _now()
    problem = _session_problem(now)
    if problem is None:
        if now - session[SEEN_KEY] >= TOUCH_EVERY_SECONDS:
            session[SEEN_KEY] = now
        return None
    log.info("session of user %s ended: %s", current_user.id, problem)
    _clear_session()
    if request.path.startswith("/api/"):
        return None
    flash(str(SESSION_ENDED), "warning")
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    return redirect(current_app.appbuilder.get_url_for_login_with(request.path))


def bind_token_checks(jwt_manager: JWTManager) -> JWTManager:
    """Every API token carries the session version as claim ``sv``, checked on every use.

    A token without ``sv``, or with an outdated one, is refused with 401 (flask_jwt_extended's
    "revoked token" answer): tokens issued before a logout or a password change stop working.
    """
    jwt_manager.additional_claims_loader(_token_claims)
    jwt_manager.token_in_blocklist_loader(_token_revoked)
    return jwt_manager


def _token_claims(identity: Any) -> dict[str, int]:
    user_id = _as_user_id(identity)
    return {} if user_id is None else {VERSION_KEY: session_version(user_id)}


def _token_revoked(_jwt_header: dict, jwt_data: dict) -> bool:
    version = jwt_data.get(VERSION_KEY)
    user_id = _as_user_id(jwt_data.get(current_app.config.get("JWT_IDENTITY_CLAIM", "sub")))
    if user_id is None or type(version) is not int:
        return True
    return version != session_version(user_id)


def _session_problem(now: int) -> str | None:
    """Why the signed-in session must end, or ``None`` while it is good."""
    version, started, seen = (session.get(k) for k in (VERSION_KEY, STARTED_KEY, SEEN_KEY))
    if type(version) is not int or version != session_version(int(current_user.id)):
        return "outdated session version"
    if not isinstance(started, (int, float)) or not isinstance(seen, (int, float)):
        return "no timestamps"
    config = current_app.config
    if now - started > config["SESSION_MAX_HOURS"] * 3600:
        return "absolute lifetime reached"
    if now - seen > config["SESSION_IDLE_MINUTES"] * 60:
        return "idle timeout"
    return None


def _clear_session() -> None:
    """Sign out of Flask-Login and drop everything in the session but the kept keys."""
    kept = {key: session[key] for key in KEPT_KEYS if key in session}
    logout_user()
    # Flask-Login marks a presented remember cookie for deletion; keep that mark.
    remember = session.get("_remember")
    session.clear()
    session.update(kept)
    if remember:
        session["_remember"] = remember


def _as_user_id(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _now() -> int:
    return int(time.time())
