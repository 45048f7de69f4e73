"""Column mixins shared by ClinicDesk's models."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, ForeignKey
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

if TYPE_CHECKING:
    from app.models.org import Branch


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the only time the database stores)."""
    return datetime.now(timezone.utc)


class TimestampMixin:
    """``created_at`` and ``updated_at``, set by the database session, always UTC."""

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, nullable=False
    )


class BranchOwnedMixin:
    """A record that happens somewhere: it belongs to exactly one branch.

    Views and APIs built on ``BranchScopedMixin`` (app/views/scoping.py) show, edit and offer
    such records only for the branches the signed-in user is assigned to.
    """

    @declared_attr
    def branch_id(cls) -> Mapped[int]:
        return mapped_column(
            ForeignKey("branch.id", ondelete="RESTRICT"), index=True, nullable=False
        )

    @declared_attr
    def branch(cls) -> Mapped["Branch"]:
        return relationship("Branch")
