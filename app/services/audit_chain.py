"""The audit trail's hash chain: a sealer links committed entries; a verifier walks the links.

Writers never wait for the chain: they insert entries unsealed (``seq`` empty), inside their own
transactions. ``seal_pending`` then takes the one chain-head row's lock, picks the committed
unsealed entries in id order and gives each the next ``seq``, the previous entry's hash, and its
own hash: HMAC-SHA256 (key ``AUDIT_HMAC_KEY``) over the canonical JSON of its content, its
``seq`` and ``prev_hash``. An entry whose transaction commits late (a smaller id after larger
ids were sealed) is sealed by the next run: the chain's order is ``seq``, not ``id``.

``verify_chain`` walks ``seq`` from 1 and names the first broken link: a changed entry, a
missing one, one inserted with a forged hash, or entries put in another order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db
from app.models.audit import AuditChainHead, AuditEntry
from app.security.keys import audit_hmac_key

#: The ``prev_hash`` of the first entry.
GENESIS_HASH = "0" * 64
#: What an entry's hash covers, besides its ``seq`` and ``prev_hash``.
HASHED_COLUMNS = (
    "id",
    "occurred_at",
    "kind",
    "action",
    "actor_id",
    "actor",
    "ip",
    "user_agent",
    "model",
    "record_id",
    "branch_id",
    "subject_type",
    "subject_id",
    "details",
)
SEAL_BATCH = 500

ENTRIES = AuditEntry.__table__
HEAD = AuditChainHead.__table__


def _utc_text(value: datetime | None) -> str | None:
    # SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones.
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(key: bytes, row: Mapping[str, Any], seq: int, prev_hash: str) -> str:
    """HMAC-SHA256 over the entry's content, its place in the chain and the hash before it."""
    content = {name: row[name] for name in HASHED_COLUMNS}
    content["occurred_at"] = _utc_text(content["occurred_at"])
    content["seq"] = seq
    content["prev_hash"] = prev_hash
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _insert_head_if_missing(connection: Connection) -> None:
    values = {"id": 1, "last_seq": 0, "last_hash": GENESIS_HASH}
    dialect = connection.dialect.name
    if dialect == "postgresql":
        statement = pg_insert(HEAD).values(**values).on_conflict_do_nothing(index_elements=["id"])
    elif dialect == "sqlite":
        statement = sqlite_insert(HEAD).values(**values).on_conflict_do_nothing(
            index_elements=["id"]
        )
    else:
        statement = HEAD.insert().values(**values)
    connection.execute(statement)


def _lock_head(connection: Connection) -> tuple[int, str]:
    """Lock the chain head for this transaction and return (last seq, last hash).

    PostgreSQL: ``SELECT … FOR UPDATE`` on the one head row, so sealers take turns while writers
    (who never touch the head) carry on. SQLite has one writer at a time: a no-op update first
    takes its write lock, so a second sealer waits for the first instead of failing.
    """
    if connection.dialect.name == "sqlite":
        connection.execute(update(HEAD).where(HEAD.c.id == 1).values(last_seq=HEAD.c.last_seq))
    locked = select(HEAD.c.last_seq, HEAD.c.last_hash).where(HEAD.c.id == 1).with_for_update()
    row = connection.execute(locked).first()
    if row is None:
        _insert_head_if_missing(connection)
        row = connection.execute(locked).first()
    return row.last_seq, row.last_hash


def _seal_batch(key: bytes, limit: int) -> int:
    with db.engine.begin() as connection:
        seq, prev_hash = _lock_head(connection)
        rows = connection.execute(
            select(*(ENTRIES.c[name] for name in HASHED_COLUMNS))
            .where(ENTRIES.c.seq.is_(None))
            .order_by(ENTRIES.c.id)
            .limit(limit)
        ).mappings().all()
        for row in rows:
            seq += 1
            digest = entry_hash(key, row, seq, prev_hash)
            connection.execute(
                update(ENTRIES)
                .where(ENTRIES.c.id == row["id"], ENTRIES.c.seq.is_(None))
                .values(seq=seq, prev_hash=prev_hash, entry_hash=digest)
            )
            prev_hash = digest
        if rows:
            connection.execute(
                update(HEAD).where(HEAD.c.id == 1).values(last_seq=seq, last_hash=prev_hash)
            )
    return len(rows)


def seal_pending(batch_size: int = SEAL_BATCH) -> int:
    """Link every committed, unsealed entry into the chain; return how many were sealed.

    Each batch is one short transaction on its own connection: nothing in the caller's session
    is committed with it.
    """
    key = audit_hmac_key()
    total = 0
    while True:
        sealed = _seal_batch(key, batch_size)
        total += sealed
        if sealed < batch_size:
            return total


@dataclass(frozen=True)
class ChainReport:
    """What the verifier found: every sealed entry linked, or the first broken link."""

    sealed: int
    pending: int
    broken_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def verify_chain(batch_size: int = 1000) -> ChainReport:
    """Walk the chain in ``seq`` order and report the first broken link, if any."""
    key = audit_hmac_key()
    columns = [*(ENTRIES.c[name] for name in HASHED_COLUMNS), ENTRIES.c.seq,
               ENTRIES.c.prev_hash, ENTRIES.c.entry_hash]
    with db.engine.connect() as connection:
        pending = connection.scalar(
            select(func.count()).select_from(ENTRIES).where(ENTRIES.c.seq.is_(None))
        )

        def broken(seq: int, reason: str) -> ChainReport:
            return ChainReport(sealed=expected - 1, pending=pending, broken_seq=seq, reason=reason)

        expected, prev_hash = 1, GENESIS_HASH
        while True:
            rows = connection.execute(
                select(*columns)
                .where(ENTRIES.c.seq >= expected)
                .order_by(ENTRIES.c.seq)
                .limit(batch_size)
            ).mappings().all()
            if not rows:
                break
            for row in rows:
                if row["seq"] != expected:
                    return broken(
                        expected, f"the entry is missing (the next one is seq {row['seq']})"
                    )
                if row["prev_hash"] != prev_hash:
                    return broken(
                        expected,
                        "it does not link to the entry before it (moved, or the one before "
                        "it was replaced)",
                    )
                if not hmac.compare_digest(
                    row["entry_hash"] or "", entry_hash(key, row, expected, prev_hash)
                ):
                    return broken(expected, "its content does not match its hash (edited or forged)")
                prev_hash = row["entry_hash"]
                expected += 1
        last_seq = expected - 1
        head = connection.execute(select(HEAD.c.last_seq, HEAD.c.last_hash)).first()
    head_seq, head_hash = (head.last_seq, head.last_hash) if head else (0, GENESIS_HASH)
    if head_seq > last_seq:
        return broken(
            last_seq + 1,
            f"entries up to seq {head_seq} are missing (the chain head records seq {head_seq})",
        )
    if head_seq < last_seq:
        return broken(head_seq + 1, "it lies beyond the chain head: not sealed by the sealer")
    if head_hash != prev_hash:
        return broken(last_seq, "the chain head records another hash for the last entry")
    return ChainReport(sealed=last_seq, pending=pending)
