"""The organisation, its branches, and which staff work at which branch."""

from __future__ import annotations

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from app.models.base import TimestampMixin

# Staff users work at one or more branches; the association lives beside FAB's ab_* tables.
user_branch = Table(
    "ab_user_branch",
    Model.metadata,
    Column(
        "user_id",
        Integer,
        ForeignKey("ab_user.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "branch_id",
        Integer,
        ForeignKey("branch.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)


class Branch(TimestampMixin, Model):
    """One clinic location: its contact details, money and calendar conventions, and letterhead."""

    __tablename__ = "branch"
    # Audit entries about a branch carry its own id as their branch.
    __audit_branch__ = "id"
    __table_args__ = (
        CheckConstraint("fy_start_month BETWEEN 1 AND 12", name="ck_branch_fy_start_month"),
        CheckConstraint("length(country) = 2", name="ck_branch_country"),
        CheckConstraint("length(currency) = 3", name="ck_branch_currency"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True, nullable=False)
    # Short code printed in document numbers (e.g. INV-DT-2026-0001).
    code: Mapped[str] = mapped_column(String(10), unique=True, nullable=False)
    address: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    country: Mapped[str] = mapped_column(String(2), nullable=False)
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    tax_id: Mapped[str | None] = mapped_column(String(64))
    letterhead_text: Mapped[str | None] = mapped_column(Text)
    logo: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    logo_mimetype: Mapped[str | None] = mapped_column(String(32))
    fy_start_month: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    staff: Mapped[list[User]] = relationship(
        User,
        secondary=user_branch,
        # Loaded together for a page of users (staff lists, scoping), not one query per user.
        backref=backref("branches", lazy="selectin"),
        order_by=User.username,
    )

    def __repr__(self) -> str:
        return self.name


class Organisation(TimestampMixin, Model):
    """Organisation-wide settings: a single row (id 1) that ``clinic init`` creates."""

    __tablename__ = "organisation"
    __table_args__ = (
        CheckConstraint("id = 1", name="ck_organisation_single_row"),
        CheckConstraint(
            "expiry_alert_days BETWEEN 1 AND 730", name="ck_organisation_expiry_alert_days"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, default=1)
    name: Mapped[str] = mapped_column(String(150), nullable=False)
    legal_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    website: Mapped[str | None] = mapped_column(String(200))
    default_locale: Mapped[str] = mapped_column(String(10), nullable=False, default="en")
    date_format: Mapped[str] = mapped_column(String(20), nullable=False, default="dd/MM/yyyy")
    # Two-factor sign-in is always required for Admin and Owner; this extends it to everyone.
    require_2fa_for_all: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The pharmacy home warns of batches expiring within this many days.
    expiry_alert_days: Mapped[int] = mapped_column(
        Integer, nullable=False, default=90, server_default="90"
    )

    def __repr__(self) -> str:
        return self.name
