"""Sessions that really end: each session carries the user's session version from the database.

``start_session`` signs a user in; ``end_all_sessions`` raises the version, so every cookie and
API token issued before stops working (logout, password change, admin reset).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import session
from flask_login import login_user

from app.extensions import db
from app.models.security import UserSecurity


def security_state(user_id: int) -> UserSecurity:
    """The user's security row, created (not yet committed) on first need."""
    state = db.session.get(UserSecurity, user_id)
    if state is None:
        state = UserSecurity(user_id=user_id, failed_attempts=0, session_version=1)
        db.session.add(state)
        db.session.flush()
    return state


def start_session(user: Any) -> None:
    """Sign ``user`` in on this browser, bound to their current session version."""
    state = security_state(user.id)
    session.clear()
    login_user(user, remember=False)
    session.permanent = True
    session["sv"] = state.session_version
    session["started_at"] = datetime.now(timezone.utc).timestamp()
    db.session.commit()


def end_all_sessions(user_id: int) -> None:
    """Invalidate every session and API token the user holds. The caller commits."""
    state = security_state(user_id)
    state.session_version += 1
