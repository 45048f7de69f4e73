"""Writing audit entries: who acts (a user or a named system actor), from where, and what.

Entries are added to the current database session, so they commit (or roll back) with the work
they describe. The sealer links committed entries into the hash chain later.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any, Iterator

from flask import g, has_app_context, has_request_context, request

from app.extensions import db
from app.models.audit import AuditEntry

#: The actor named when nothing else is known (e.g. a shell); jobs and commands name their own.
UNKNOWN_ACTOR = "system:unknown"


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Name the system actor for writes outside a request, e.g. ``acting_as("cli:seed-demo")``."""
    previous = g.get("audit_actor")
    g.audit_actor = actor
    try:
        yield
    finally:
        g.audit_actor = previous


def current_actor() -> tuple[int | None, str]:
    """(user id, name) of whoever is acting now: the signed-in user, else the named actor."""
    if has_app_context():
        user = g.get("user")
        if user is not None and getattr(user, "is_authenticated", False):
            return user.id, user.username
        named = g.get("audit_actor")
        if named:
            return None, named
    return None, UNKNOWN_ACTOR


def request_origin() -> tuple[str | None, str | None]:
    """The client's address (as ProxyFix resolved it) and user agent, when there is a request."""
    if not has_request_context():
        return None, None
    agent = request.user_agent.string[:255] if request.user_agent else None
    return request.remote_addr, agent


def record_auth_event(
    action: str,
    user: Any | None = None,
    username: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Record a sign-in event (login_success, login_failure, lockout, totp_enrolled, …).

    ``user`` is the account concerned when known; ``username`` is what was typed otherwise.
    The caller commits.
    """
    ip, agent = request_origin()
    entry = AuditEntry(
        kind="auth",
        action=action,
        actor_id=getattr(user, "id", None),
        actor=(getattr(user, "username", None) or username or UNKNOWN_ACTOR)[:128],
        ip=ip,
        user_agent=agent,
        model="User",
        record_id=str(user.id) if user is not None else None,
        details=json.dumps(details, sort_keys=True, default=str) if details else None,
    )
    db.session.add(entry)
    return entry
