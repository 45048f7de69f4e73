"""Change audit through SQLAlchemy session events, over every model, present and future.

Whatever writes through the ORM — a FAB form, a REST API, an action, a job, a CLI command —
flushes, and every flush passes here:

- ``before_flush`` refuses edits and deletes of audit entries, and reads from the database the
  old values the session does not hold (an attribute set without being loaded first, a row
  deleted while expired), before the flush overwrites them.
- ``after_flush`` writes one ``change`` entry per inserted, updated or deleted row, with the
  changed fields' old and new values, on the flush's own connection: same transaction, so the
  entry commits or rolls back with the change. Ids of new rows exist by then.
- ``do_orm_execute`` sees bulk ``insert()/update()/delete()`` statements, which bypass the
  flush: each is recorded as one entry holding the statement (its SQL with placeholders, the
  parameters, the row count). On models whose rows concern a patient (``__audit_subject__``)
  bulk statements are refused instead — per-row entries are what per-patient encryption and
  erasure need.

Not audited: the audit tables themselves and FAB's permission bookkeeping (permissions, view
menus and their pairs; a role's grants are recorded on the role). Users, roles, branches and
memberships are. A many-to-many change is recorded on the row that owns the link — the table
named first in the association table (a user's roles and branches on the user) — as a changed
collection. Values of secret-named columns (passwords, hashes, TOTP secrets, tokens, keys) read
``[redacted]``.

Raw SQL (``text()``, or Core statements on a connection) is never seen by these events: write
through the ORM.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, g
from sqlalchemy import event, insert, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.orm.state import InstanceState

from app.extensions import db, jobs_inline
from app.models.audit import AuditChainHead, AuditEntry
from app.security.audit_changes import (
    attribute_value,
    collection_changes,
    column_changes,
    is_audited,
    merged_changes,
    record_id,
    subject_of_state,
    unknown_old_keys,
)
from app.services.audit import (
    OPEN_WRITES as _OPEN_WRITES,
    entry_row,
    note_entries_written,
    redacted,
    to_json,
)
from app.services.audit_chain import seal_pending
from app.services.audit_subjects import audit_subject, seal_values

log = logging.getLogger(__name__)

#: Rows nothing in the app may edit or delete (the sealer links entries with Core statements).
IMMUTABLE = (AuditEntry, AuditChainHead)

_PREFETCHED = "audit_prefetched"
_ENTRIES_PENDING = "audit_entries_pending"
_TX_ENTRIES = "audit_transaction_entries"
ENTRIES = AuditEntry.__table__


class AuditEntryImmutableError(RuntimeError):
    """Something tried to change or delete an audit entry (or the chain head)."""


class BulkWriteRefusedError(RuntimeError):
    """A bulk statement targeted a model whose rows concern a patient; write row by row."""


# Before the flush ----------------------------------------------------------------------------

def _refuse_immutable_changes(session: Session) -> None:
    for obj in session.deleted:
        if isinstance(obj, IMMUTABLE):
            raise AuditEntryImmutableError(f"{type(obj).__name__} rows cannot be deleted")
    for obj in session.dirty:
        if isinstance(obj, IMMUTABLE) and session.is_modified(obj, include_collections=False):
            raise AuditEntryImmutableError(f"{type(obj).__name__} rows cannot be changed")


def _prefetch_old_values(session: Session) -> None:
    prefetched: dict[InstanceState, dict[str, Any]] = {}
    for deleting, objects in ((False, session.dirty), (True, session.deleted)):
        for obj in objects:
            state = sa_inspect(obj)
            if state.key is None or not is_audited(state.mapper):
                continue
            keys = unknown_old_keys(state, deleting)
            if not keys:
                continue
            mapper = state.mapper
            columns = [mapper.attrs[key].columns[0] for key in keys]
            where = [column == value for column, value in zip(mapper.primary_key, state.key[1])]
            row = session.connection().execute(select(*columns).where(*where)).first()
            if row is not None:
                prefetched[state] = dict(zip(keys, row))
    session.info[_PREFETCHED] = prefetched


def _before_flush(session: Session, flush_context: UOWTransaction, instances: Any) -> None:
    _refuse_immutable_changes(session)
    _prefetch_old_values(session)


# After the flush: what changed -----------------------------------------------------------------

@dataclass
class PendingEntry:
    """An entry written earlier in this transaction: later flushes of its row merge into it."""

    id: int
    action: str
    changes: dict[str, Any]
    subject: tuple[str, int] | None


def _details(session: Session, subject: tuple[str, int] | None, changes: dict[str, Any]) -> str:
    if subject is None:
        return to_json({"changes": changes}) or "{}"
    return to_json(seal_values(session.connection(), subject, changes)) or "{}"


def _change(session: Session, obj: Any, action: str):
    """(changes, subject, the new entry's columns) for one flushed row, or None when an update
    changed nothing worth recording."""
    state = sa_inspect(obj)
    old_values = session.info.get(_PREFETCHED, {}).get(state, {})
    changes = column_changes(state, action, old_values)
    changes.update(collection_changes(obj, state, action))
    if action == "update" and not changes:
        return None
    branch_attribute = getattr(state.class_, "__audit_branch__", "branch_id")
    branch_id = (
        attribute_value(state, branch_attribute, old_values)
        if branch_attribute in state.mapper.attrs
        else None
    )
    subject = subject_of_state(state, old_values)
    row = entry_row(
        "change",
        action,
        model=state.class_.__name__,
        record_id=record_id(state, old_values)[:64],
        branch_id=branch_id,
        subject_type=subject[0] if subject else None,
        subject_id=subject[1] if subject else None,
    )
    return changes, subject, row


def _after_flush(session: Session, flush_context: UOWTransaction) -> None:
    """One entry per row per transaction: a row flushed again (FAB's forms flush a user's roles
    before its branches) updates its entry from earlier in the transaction."""
    session.info[_OPEN_WRITES] = True
    pending: dict[InstanceState, PendingEntry] = session.info.setdefault(_TX_ENTRIES, {})
    new_rows, new_states = [], []
    for action, objects in (
        ("create", session.new),
        ("update", session.dirty),
        ("delete", session.deleted),
    ):
        for obj in objects:
            state = sa_inspect(obj)
            if isinstance(obj, AuditEntry):
                session.info[_ENTRIES_PENDING] = True
            if not is_audited(state.mapper) or (action == "update" and state.key is None):
                continue
            found = _change(session, obj, action)
            if found is None:
                continue
            changes, subject, row = found
            earlier = pending.get(state)
            if earlier is not None and action == "update" and earlier.action != "delete":
                earlier.changes = merged_changes(earlier.changes, changes)
                earlier.subject = subject or earlier.subject
                session.connection().execute(
                    update(ENTRIES)
                    .where(ENTRIES.c.id == earlier.id)
                    .values(details=_details(session, earlier.subject, earlier.changes))
                )
                continue
            row["details"] = _details(session, subject, changes)
            new_rows.append(row)
            new_states.append((state, PendingEntry(0, action, changes, subject)))
    session.info.pop(_PREFETCHED, None)
    if new_rows:
        ids = session.connection().execute(
            insert(ENTRIES).returning(ENTRIES.c.id, sort_by_parameter_order=True), new_rows
        ).scalars().all()
        for (state, entry), entry_id in zip(new_states, ids):
            entry.id = entry_id
            pending[state] = entry
        session.info[_ENTRIES_PENDING] = True


# Bulk statements ----------------------------------------------------------------------------

def _bulk_action(state: ORMExecuteState) -> str | None:
    if state.is_insert:
        return "bulk_create"
    if state.is_update:
        return "bulk_update"
    if state.is_delete:
        return "bulk_delete"
    return None


def _do_orm_execute(state: ORMExecuteState):
    action = _bulk_action(state)
    mapper = state.bind_mapper if action else None
    if mapper is None:
        return None
    if issubclass(mapper.class_, IMMUTABLE) and action != "bulk_create":
        raise AuditEntryImmutableError(f"{mapper.class_.__name__} rows cannot be changed")
    if not is_audited(mapper):
        return None
    if audit_subject(mapper.class_) is not None:
        raise BulkWriteRefusedError(
            f"bulk statements on {mapper.class_.__name__} are refused: its rows concern a "
            "patient, so each change is audited (and encrypted) row by row"
        )
    compiled = state.statement.compile(dialect=state.session.get_bind().dialect)
    params = dict(compiled.params)
    parameters = state.parameters
    if isinstance(parameters, dict):
        params.update(parameters)
    result = state.invoke_statement()
    details = {
        "statement": str(compiled),
        "params": redacted(params),
        "rows": len(parameters) if isinstance(parameters, list) else result.rowcount,
    }
    state.session.connection().execute(
        insert(ENTRIES),
        [entry_row("change", action, model=mapper.class_.__name__, details=to_json(details))],
    )
    state.session.info[_ENTRIES_PENDING] = True
    return result


# Transactions ---------------------------------------------------------------------------------

def _after_commit(session: Session) -> None:
    session.info.pop(_OPEN_WRITES, None)
    session.info.pop(_TX_ENTRIES, None)
    if session.info.pop(_ENTRIES_PENDING, False):
        note_entries_written()


def _after_rollback(session: Session) -> None:
    for key in (_OPEN_WRITES, _ENTRIES_PENDING, _PREFETCHED, _TX_ENTRIES):
        session.info.pop(key, None)


def _after_soft_rollback(session: Session, previous_transaction: Any) -> None:
    # A savepoint rolled back may have taken entries with it: later flushes write new ones.
    session.info.pop(_TX_ENTRIES, None)


_LISTENERS = (
    ("before_flush", _before_flush),
    ("after_flush", _after_flush),
    ("do_orm_execute", _do_orm_execute),
    ("after_commit", _after_commit),
    ("after_rollback", _after_rollback),
    ("after_soft_rollback", _after_soft_rollback),
)


def register_audit_events() -> None:
    """Listen on every ORM session (safe to call again)."""
    for name, listener in _LISTENERS:
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


def _seal_after_request(response):
    """Without a worker (development), entries are sealed at the end of the request that wrote
    them; with Redis the periodic ``seal_audit_chain`` job does it."""
    if not g.pop("audit_entries_written", False) or not jobs_inline():
        return response
    if db.session.info.get(_OPEN_WRITES):
        return response  # this request still holds uncommitted writes: the next one seals
    try:
        seal_pending()
    except SQLAlchemyError:
        log.warning("audit entries left for the next sealing run", exc_info=True)
    return response


def init_audit(app: Flask) -> None:
    """Audit every ORM write of this process and seal entries after requests when jobs run inline."""
    register_audit_events()
    app.after_request(_seal_after_request)
