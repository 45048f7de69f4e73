"""Writing audit entries: who acts (a user or a named system actor), from where, and what.

Three kinds of entry share one table and one hash chain:

- ``change``: written by the session events in ``app.security.audit_events`` for every ORM
  insert, update and delete, inside the transaction of the change.
- ``auth``: sign-in events (``record_auth_event``), added to the caller's session.
- ``access``: reads of patient data (``record_access``), committed at once in their own short
  transaction, so a read is on record whatever the request does next.

The sealer (``app.services.audit_chain``) links committed entries into the hash chain later.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any, Iterable, Iterator

import click
from flask import g, has_app_context, has_request_context, request
from sqlalchemy import insert, select

from app.extensions import db
from app.models.audit import AuditEntry
from app.models.base import utcnow

#: The actor named when nothing else is known (e.g. a shell); jobs and commands name their own.
UNKNOWN_ACTOR = "system:unknown"
#: A request nobody is signed in to (e.g. the sign-in steps themselves).
ANONYMOUS_ACTOR = "anonymous"
#: What a secret's value reads as in an entry.
REDACTED = "[redacted]"
#: Column and key names whose values are never written into an entry: passwords and their
#: hashes, TOTP secrets, recovery-code hashes, tokens, API keys, salts.
SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)|secret|token|hash|salt|otp_?seed|(^|_)(api_?|private_?)?keys?($|_)",
    re.IGNORECASE,
)
#: Actions of access entries.
ACCESS_ACTIONS = frozenset({"view", "print", "export", "api_read"})
#: ``session.info`` key: this session has flushed writes it has not committed yet.
OPEN_WRITES = "audit_open_writes"


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Name the system actor for writes outside a request, e.g. ``acting_as("cli:seed-demo")``."""
    previous = g.get("audit_actor")
    g.audit_actor = actor
    try:
        yield
    finally:
        g.audit_actor = previous


def _signed_in_user() -> Any | None:
    """The user of this request: FAB's ``g.user`` (sessions and API tokens), else the one
    Flask-Login has already loaded (a sign-in earlier in this same request). Never loads a user:
    a write made while the user is being loaded must not load it again."""
    for user in (g.get("user"), g.get("_login_user")):
        if user is not None and getattr(user, "is_authenticated", False):
            return user
    return None


def _command_actor() -> str | None:
    """``cli:<command>`` inside a ``flask`` command nobody named (e.g. ``fab create-admin``)."""
    context = click.get_current_context(silent=True)
    if context is None:
        return None
    names = []
    while context is not None and context.parent is not None:
        names.append(context.info_name)
        context = context.parent
    return "cli:" + " ".join(reversed(names)) if names else None


def current_actor() -> tuple[int | None, str]:
    """(user id, name) of whoever is acting now: the signed-in user, else the named actor."""
    if has_app_context():
        user = _signed_in_user()
        if user is not None:
            return user.id, user.username
        named = g.get("audit_actor")
        if named:
            return None, named
    if has_request_context():
        return None, ANONYMOUS_ACTOR
    return None, _command_actor() or UNKNOWN_ACTOR


def request_origin() -> tuple[str | None, str | None]:
    """The client's address (as ProxyFix resolved it) and user agent, when there is a request."""
    if not has_request_context():
        return None, None
    agent = (request.headers.get("User-Agent") or "")[:255] or None
    return request.remote_addr, agent


def is_secret(name: str) -> bool:
    """True for a column or key whose value must never appear in an entry."""
    return bool(SECRET_NAME.search(name))


def plain_value(value: Any) -> Any:
    """A value as JSON can hold it; bytes are described, never copied."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return plain_value(value.value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"[{len(bytes(value))} bytes]"
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain_value(item) for item in value]
    return str(value)


def redacted(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every secret-named key's value replaced by ``[redacted]`` (recursively)."""
    clean: dict[str, Any] = {}
    for key, value in data.items():
        if is_secret(str(key)):
            clean[key] = REDACTED
        elif isinstance(value, dict):
            clean[key] = redacted(value)
        else:
            clean[key] = plain_value(value)
    return clean


def to_json(data: dict[str, Any] | None) -> str | None:
    return json.dumps(data, sort_keys=True, default=str) if data else None


def entry_row(kind: str, action: str, **fields: Any) -> dict[str, Any]:
    """The column values of a new entry: actor, origin and time filled in; the rest as given."""
    actor_id, actor = current_actor()
    ip, agent = request_origin()
    return {
        "occurred_at": utcnow(),
        "kind": kind,
        "action": action,
        "actor_id": actor_id,
        "actor": actor[:128],
        "ip": ip,
        "user_agent": agent,
        "model": None,
        "record_id": None,
        "branch_id": None,
        "subject_type": None,
        "subject_id": None,
        "details": None,
        **fields,
    }


def note_entries_written() -> None:
    """Tell the request that audit entries were committed (development seals them at its end)."""
    if has_app_context():
        g.audit_entries_written = True


def record_auth_event(
    action: str,
    user: Any | None = None,
    username: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Record a sign-in event (login_success, login_failure, lockout, totp_enrolled, …).

    ``user`` is the account concerned (``record_id``). The actor is whoever acts: a signed-in
    user (an Admin unlocking an account), else the account's own name while it signs in. A
    ``username`` typed for no known account is never stored — it may be a mistyped password,
    and it must not let a visitor plant a name in the trail. Secret-named keys in ``details``
    are redacted. The caller commits.
    """
    ip, agent = request_origin()
    actor_id, actor = current_actor()
    if actor_id is None and user is not None:
        actor_id, actor = user.id, user.username
    if user is None and username:
        details = {**(details or {}), "unknown_account": True}
    entry = AuditEntry(
        kind="auth",
        action=action,
        actor_id=actor_id,
        actor=actor[:128],
        ip=ip,
        user_agent=agent,
        model="User",
        record_id=str(user.id) if user is not None else None,
        details=to_json(redacted(details)) if details else None,
    )
    db.session.add(entry)
    return entry


def record_access(
    subject_type: str,
    subject_id: int | None,
    action: str,
    records: Iterable[Any] = (),
    model: str | None = None,
    subject_ids: Iterable[int] = (),
    branch_id: int | None = None,
) -> None:
    """Record one read of patient data (a page, a print, an export, an API read) and commit it.

    One entry per read, however many rows it showed: ``records`` are the ids of what was shown
    (of ``model``); ``subject_id`` is the patient (or lead) the read concerns when there is one,
    and ``subject_ids`` every patient a list showed. The entry is committed at once in its own
    transaction: nothing else in the caller's session is committed with it. (On SQLite, while
    the caller's session holds uncommitted writes, the entry joins that transaction instead.)

    :raises ValueError: for an action other than view, print, export or api_read.
    """
    if action not in ACCESS_ACTIONS:
        raise ValueError(f"unknown access action {action!r}")
    records = [str(record) for record in records]
    subjects = sorted({int(s) for s in subject_ids if s is not None})
    details: dict[str, Any] = {"records": records}
    if subjects:
        details["subjects"] = subjects
    if has_request_context():
        details["path"] = request.path  # never the query string: a search may hold a name
    row = entry_row(
        "access",
        action,
        model=model,
        record_id=records[0] if len(records) == 1 else None,
        branch_id=branch_id,
        subject_type=subject_type,
        subject_id=subject_id if subject_id is not None else (
            subjects[0] if len(subjects) == 1 else None
        ),
        details=to_json(details),
    )
    if db.engine.dialect.name == "sqlite" and db.session.info.get(OPEN_WRITES):
        # SQLite has one writer at a time and this session is it: join its transaction.
        db.session.connection().execute(insert(AuditEntry.__table__), [row])
        return
    with db.engine.begin() as connection:
        connection.execute(insert(AuditEntry.__table__), [row])
    note_entries_written()


def who_viewed(subject_type: str, subject_id: int, limit: int = 50) -> list[AuditEntry]:
    """The most recent reads of one patient's (or lead's) data, newest first.

    Reads that concerned this subject alone (its page, prints, exports, API reads); list pages
    that showed many patients keep their ids in the entry's details instead.
    """
    return list(
        db.session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.kind == "access",
                AuditEntry.subject_type == subject_type,
                AuditEntry.subject_id == subject_id,
            )
            .order_by(AuditEntry.occurred_at.desc(), AuditEntry.id.desc())
            .limit(limit)
        )
    )
