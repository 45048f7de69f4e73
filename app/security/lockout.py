"""Per-account lockout: repeated failed sign-ins lock the account for a while.

Password and two-factor failures add to one counter (``user_security.failed_attempts``), and only
a fully successful sign-in resets it: a correct password does not wipe out the failed codes that
follow it. The lock belongs to the account, not to an address, so rotating spoofed
``X-Forwarded-For`` values gains an attacker nothing. ``AUTH_LOCKOUT_THRESHOLD`` failures lock the
account for ``AUTH_LOCKOUT_MINUTES``; an Admin can unlock it earlier from the user screen.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm.util import identity_key
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db
from app.models.base import utcnow
from app.models.security import UserSecurity
from app.services.audit import record_auth_event


def _as_utc(value: datetime | None) -> datetime | None:
    # SQLite hands timezone-aware columns back naive; every stored time is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def ensure_security_row(user_id: int) -> None:
    """Create the user's ``user_security`` row if it is missing, even when two requests race."""
    insert = postgresql_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.session.execute(
        insert(UserSecurity)
        .values(user_id=user_id, failed_attempts=0, session_version=1, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["user_id"])
    )


def hold_account(user_id: int) -> None:
    """Take the account's row lock until the caller commits or rolls back.

    Sign-in attempts on one account then run one after another (PostgreSQL row lock; SQLite has
    one writer anyway), so a burst of concurrent guesses cannot all pass the lock check before
    the first failure is counted.
    """
    ensure_security_row(user_id)
    db.session.execute(
        select(UserSecurity.user_id).where(UserSecurity.user_id == user_id).with_for_update()
    )


def locked_until(user_id: int) -> datetime | None:
    """When the account's lock ends, or None when it is not locked now."""
    state = db.session.get(UserSecurity, user_id, populate_existing=True)
    until = _as_utc(state.locked_until) if state is not None else None
    if until is not None and until > utcnow():
        return until
    return None


def record_failure(user: Any, step: str) -> datetime | None:
    """Count one failed attempt (``step`` is "password" or "totp") and lock at the threshold.

    The increment is a single UPDATE, so concurrent failures are all counted. Records
    ``login_failure`` or ``totp_failure``, and ``lockout`` when this failure locks the account.
    The caller commits.

    :returns: when the lock ends if this failure locked the account, else None.
    """
    ensure_security_row(user.id)
    db.session.execute(
        update(UserSecurity)
        .where(UserSecurity.user_id == user.id)
        .values(failed_attempts=UserSecurity.failed_attempts + 1)
        .execution_options(synchronize_session=False)
    )
    record_auth_event("totp_failure" if step == "totp" else "login_failure", user, details={"step": step})
    threshold = current_app.config["AUTH_LOCKOUT_THRESHOLD"]
    minutes = current_app.config["AUTH_LOCKOUT_MINUTES"]
    until = utcnow() + timedelta(minutes=minutes)
    # The counter restarts with the lock: after it ends, another full run of failures is needed.
    locked = db.session.execute(
        update(UserSecurity)
        .where(UserSecurity.user_id == user.id, UserSecurity.failed_attempts >= threshold)
        .values(failed_attempts=0, locked_until=until)
        .execution_options(synchronize_session=False)
    )
    _forget_loaded_state(user.id)
    if locked.rowcount:
        record_auth_event("lockout", user, details={"minutes": minutes, "until": until.isoformat()})
        return until
    return None


def clear_failures(user_id: int) -> None:
    """Reset the counter and any lock: the user has just signed in fully. The caller commits."""
    ensure_security_row(user_id)
    db.session.execute(
        update(UserSecurity)
        .where(UserSecurity.user_id == user_id)
        .values(failed_attempts=0, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    _forget_loaded_state(user_id)


def unlock_account(user: Any, admin: Any) -> None:
    """An Admin lifts the lock and clears the counter (audited as ``unlock``). The caller commits."""
    clear_failures(user.id)
    record_auth_event("unlock", user, details={"by": admin.username})


def _forget_loaded_state(user_id: int) -> None:
    # The UPDATEs above bypass the ORM; a row already loaded in this session is stale now.
    state = db.session.identity_map.get(identity_key(UserSecurity, user_id))
    if state is not None:
        db.session.expire(state)
