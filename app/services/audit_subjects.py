"""Personal values inside audit entries, encrypted per patient (or lead) so they can be erased.

A model says which person its rows concern with a class attribute::

    class Prescription(BranchOwnedMixin, Model):
        __audit_subject__ = ("patient", "patient_id")   # (subject type, attribute with the id)

Change entries about such a row name the subject (``subject_type``, ``subject_id``) and keep the
old and new values encrypted with that subject's own key (``SubjectKey``: a Fernet key, stored
encrypted with the configured data key). The names of the changed fields stay readable.

``erase_subject`` destroys the key: the entries, and the hash chain over them, stay exactly as
they were, while their values can no longer be read and show as ``[erased]``.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from sqlalchemy import Connection, Engine, create_engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.pool import NullPool

from app.extensions import db
from app.models.audit import AuditEntry, SubjectKey
from app.models.base import utcnow
from app.security.keys import data_fernet
from app.services.audit import current_actor, request_origin, to_json

#: What an erased value reads as.
ERASED = "[erased]"


def audit_subject(model: type) -> tuple[str, str] | None:
    """The model's ``(subject type, id attribute)``, or None when its rows concern nobody."""
    return getattr(model, "__audit_subject__", None)


def subject_of(obj: Any, values: dict[str, Any] | None = None) -> tuple[str, int] | None:
    """``(subject type, subject id)`` of one row; ``values`` overrides the row's own attributes
    (a deleted row's last values)."""
    declared = audit_subject(type(obj))
    if declared is None:
        return None
    subject_type, attribute = declared
    subject_id = (values or {}).get(attribute, getattr(obj, attribute, None))
    return (subject_type, int(subject_id)) if subject_id is not None else None


def _insert_ignoring_duplicates(connection: Connection):
    dialect = connection.dialect.name
    table = SubjectKey.__table__
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing(
            index_elements=["subject_type", "subject_id"]
        )
    if dialect == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing(
            index_elements=["subject_type", "subject_id"]
        )
    return table.insert()


def _key_engine(connection: Connection) -> Engine:
    """An unpooled, autocommitting engine on the same database, made once per app."""
    engines = current_app.extensions.setdefault("audit_key_engines", {})
    url = connection.engine.url
    if url not in engines:
        engines[url] = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    return engines[url]


def _stored_key(connection: Connection, subject_type: str, subject_id: int):
    table = SubjectKey.__table__
    return connection.execute(
        select(table.c.key, table.c.destroyed_at).where(
            table.c.subject_type == subject_type, table.c.subject_id == subject_id
        )
    ).first()


def _create_key(connection: Connection, subject_type: str, subject_id: int):
    statement = _insert_ignoring_duplicates(connection).values(
        subject_type=subject_type,
        subject_id=subject_id,
        key=data_fernet().encrypt(Fernet.generate_key()),
        created_at=utcnow(),
    )
    connection.execute(statement)
    return _stored_key(connection, subject_type, subject_id)


def subject_cipher(
    connection: Connection, subject_type: str, subject_id: int, create: bool = True
) -> Fernet | None:
    """The subject's Fernet, created on first need; None once erased (or never created).

    On PostgreSQL a new key is committed at once on a connection of its own (outside the
    writers' pool, so a writer holding a pooled connection never waits for a second one): two
    transactions that first write about the same two patients in opposite order never wait on
    each other's key. SQLite has one writer at a time, so the key joins the writer's transaction.
    """
    row = _stored_key(connection, subject_type, subject_id)
    if row is None and create:
        if connection.dialect.name == "postgresql":
            with _key_engine(connection).connect() as own:
                row = _create_key(own, subject_type, subject_id)
        else:
            row = _create_key(connection, subject_type, subject_id)
    if row is None or row.key is None:
        return None
    return Fernet(data_fernet().decrypt(row.key))


def seal_values(
    connection: Connection, subject: tuple[str, int], changes: dict[str, Any]
) -> dict[str, Any]:
    """The ``details`` of an entry about ``subject``: field names readable, values encrypted.

    After erasure no values are kept at all.
    """
    cipher = subject_cipher(connection, *subject)
    details: dict[str, Any] = {"fields": sorted(changes)}
    if cipher is None:
        details["erased"] = True
    else:
        details["sealed"] = cipher.encrypt(json.dumps(changes, default=str).encode()).decode()
    return details


class SubjectKeys:
    """Looks up subject keys for reading entries, each key once per instance (one page)."""

    def __init__(self) -> None:
        self._ciphers: dict[tuple[str, int], Fernet | None] = {}

    def cipher(self, subject_type: str, subject_id: int) -> Fernet | None:
        key = (subject_type, subject_id)
        if key not in self._ciphers:
            connection = db.session.connection()
            self._ciphers[key] = subject_cipher(connection, subject_type, subject_id, create=False)
        return self._ciphers[key]


def erased_changes(fields: list[str]) -> dict[str, Any]:
    return {field: {"old": ERASED, "new": ERASED} for field in fields}


def open_details(entry: AuditEntry, keys: SubjectKeys | None = None) -> dict[str, Any]:
    """The entry's details as a dict, personal values decrypted or shown as ``[erased]``."""
    if not entry.details:
        return {}
    try:
        details = json.loads(entry.details)
    except ValueError:
        return {"text": entry.details}
    if not isinstance(details, dict) or "fields" not in details:
        return details if isinstance(details, dict) else {"value": details}
    fields = list(details.get("fields") or [])
    cipher = None
    if details.get("sealed") and entry.subject_type and entry.subject_id is not None:
        cipher = (keys or SubjectKeys()).cipher(entry.subject_type, entry.subject_id)
    if cipher is None:
        return {"changes": erased_changes(fields)}
    try:
        return {"changes": json.loads(cipher.decrypt(details["sealed"].encode()))}
    except InvalidToken:
        return {"changes": erased_changes(fields)}


def erase_subject(subject_type: str, subject_id: int) -> None:
    """Destroy the key of one patient's (or lead's) personal values in the audit trail.

    The entries stay, and so does the hash chain over them; their values read ``[erased]`` from
    now on, and later entries about this subject keep no values. The erasure is itself
    recorded. The caller commits.
    """
    now = utcnow()
    key = db.session.scalar(
        select(SubjectKey).where(
            SubjectKey.subject_type == subject_type, SubjectKey.subject_id == subject_id
        )
    )
    if key is None:
        key = SubjectKey(subject_type=subject_type, subject_id=subject_id)
        db.session.add(key)
    key.key = None
    key.destroyed_at = now
    actor_id, actor = current_actor()
    ip, agent = request_origin()
    db.session.add(
        AuditEntry(
            occurred_at=now,
            kind="change",
            action="erase",
            actor_id=actor_id,
            actor=actor[:128],
            ip=ip,
            user_agent=agent,
            model="SubjectKey",
            subject_type=subject_type,
            subject_id=subject_id,
            details=to_json({"erased": "personal values in the audit trail"}),
        )
    )
    db.session.flush()
