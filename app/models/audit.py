"""The audit trail: changes, reads of patient data and sign-in events, hash-chained."""

from __future__ import annotations

from datetime import datetime

from flask_appbuilder import Model
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship

from app.models.base import utcnow
from app.models.org import Branch

# SQLite only auto-increments INTEGER primary keys.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntry(Model):
    """One event: who did what to which record, when and from where.

    ``kind`` is ``change`` (create/update/delete), ``access`` (a read of patient data) or
    ``auth`` (sign-in, lockout, two-factor events). Entries are written in the transaction of the
    change they describe, then linked into the hash chain (``seq``, ``prev_hash``,
    ``entry_hash``) by the sealer in commit order. Personal values in ``details`` are encrypted
    with the subject's key (``SubjectKey``), so erasing a patient destroys the key, not the entry.
    """

    __tablename__ = "audit_entry"
    __table_args__ = (
        CheckConstraint("kind IN ('change', 'access', 'auth')", name="ck_audit_entry_kind"),
        Index("ix_audit_entry_subject", "subject_type", "subject_id"),
        Index("ix_audit_entry_record", "model", "record_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    # No foreign key: a sealed entry must never change, not even when its actor's account goes.
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # The username, or a named system actor such as "system:reminders" or "cli:seed-demo".
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str | None] = mapped_column(String(64))
    record_id: Mapped[str | None] = mapped_column(String(64))
    branch_id: Mapped[int | None] = mapped_column(Integer, index=True)
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    # JSON: changed fields with old and new values, or what was read.
    details: Mapped[str | None] = mapped_column(Text)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    entry_hash: Mapped[str | None] = mapped_column(String(64))

    # For reading and filtering only: an entry outlives the branch it names (no foreign key).
    branch: Mapped[Branch | None] = relationship(
        Branch, primaryjoin=lambda: foreign(AuditEntry.branch_id) == Branch.id, viewonly=True
    )

    @property
    def record(self) -> str:
        """``Branch #2``: the model and id of the record the entry is about."""
        if self.record_id is None:
            return self.model or ""
        return f"{self.model} #{self.record_id}"


class AuditChainHead(Model):
    """The end of the hash chain (one row): the sealer locks it, writers never touch it."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="ck_audit_chain_head_single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=1)
    last_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), nullable=False)


class SubjectKey(Model):
    """The key that encrypts one patient's or lead's personal values inside audit entries.

    Erasure under a retention policy destroys the key (``key`` emptied, ``destroyed_at`` set):
    the entries and their chain stay intact, their personal values become unreadable.
    """

    __tablename__ = "subject_key"
    __table_args__ = (UniqueConstraint("subject_type", "subject_id", name="uq_subject_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(32), nullable=False)
    subject_id: Mapped[int] = mapped_column(Integer, nullable=False)
    # The subject's Fernet key, itself encrypted with the data key from configuration.
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
