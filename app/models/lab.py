"""The laboratory: the test catalogue with reference ranges, orders, results and their amendments."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import BranchOwnedMixin, TimestampMixin, utcnow
from app.models.consultations import Consultation
from app.models.patients import Patient

#: An order's life: ordered → sample collected → in progress → resulted → verified (or cancelled).
LAB_ORDER_STATUSES = ("ordered", "collected", "in_progress", "resulted", "verified", "cancelled")
LAB_PRIORITIES = ("routine", "urgent", "stat")
#: How a result compares with its reference range.
RESULT_FLAGS = ("normal", "low", "high", "abnormal")
#: ``any`` ranges apply to every sex; a sex-specific range wins over it.
RANGE_SEXES = ("any", "female", "male")


class LabTest(TimestampMixin, Model):
    """A test the lab performs (organisation-wide; billing prices it per branch)."""

    __tablename__ = "lab_test"
    __table_args__ = (
        CheckConstraint("turnaround_hours BETWEEN 0 AND 2160", name="ck_lab_test_turnaround"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(160), nullable=False)
    sample_type: Mapped[str | None] = mapped_column(String(60))
    # Empty for tests reported as text (e.g. "Blood group"): those are never flagged by range.
    unit: Mapped[str | None] = mapped_column(String(30))
    turnaround_hours: Mapped[int] = mapped_column(Integer, nullable=False, default=24)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    ranges: Mapped[list["LabReferenceRange"]] = relationship(
        back_populates="test",
        order_by="(LabReferenceRange.sex, LabReferenceRange.age_min_years)",
        cascade="all, delete-orphan",
    )

    def __repr__(self) -> str:
        return f"{self.code} {self.name}"


class LabReferenceRange(Model):
    """The normal range of a test for a sex and an age band (years, from inclusive, to exclusive)."""

    __tablename__ = "lab_reference_range"
    __table_args__ = (
        CheckConstraint("sex IN ('any', 'female', 'male')", name="ck_lab_range_sex"),
        CheckConstraint(
            "age_max_years IS NULL OR age_max_years > age_min_years", name="ck_lab_range_ages"
        ),
        CheckConstraint(
            "low IS NOT NULL OR high IS NOT NULL", name="ck_lab_range_has_bound"
        ),
        CheckConstraint("low IS NULL OR high IS NULL OR high >= low", name="ck_lab_range_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(
        ForeignKey("lab_test.id", ondelete="CASCADE"), index=True, nullable=False
    )
    sex: Mapped[str] = mapped_column(String(6), nullable=False, default="any")
    age_min_years: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    age_max_years: Mapped[int | None] = mapped_column(Integer)
    low: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    high: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))

    test: Mapped[LabTest] = relationship(back_populates="ranges")


class LabOrder(BranchOwnedMixin, TimestampMixin, Model):
    """Tests ordered for a patient, from a consultation or directly, and where they stand."""

    __tablename__ = "lab_order"
    __audit_subject__ = ("patient", "patient_id")
    __table_args__ = (
        CheckConstraint(
            "status IN ('ordered', 'collected', 'in_progress', 'resulted', 'verified', "
            "'cancelled')",
            name="ck_lab_order_status",
        ),
        CheckConstraint("priority IN ('routine', 'urgent', 'stat')", name="ck_lab_order_priority"),
        # Verification is a second person's check of the results.
        CheckConstraint(
            "verified_by_id IS NULL OR resulted_by_id IS NULL OR verified_by_id <> resulted_by_id",
            name="ck_lab_order_second_verifier",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    consultation_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation.id", ondelete="RESTRICT"), index=True
    )
    ordered_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="RESTRICT"), index=True
    )
    priority: Mapped[str] = mapped_column(String(8), nullable=False, default="routine")
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="ordered", index=True)
    clinical_notes: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    collected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    collected_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    resulted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resulted_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verified_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL")
    )

    patient: Mapped[Patient] = relationship(Patient)
    consultation: Mapped[Consultation | None] = relationship(Consultation)
    ordered_by: Mapped[User | None] = relationship(User, foreign_keys=[ordered_by_id])
    collected_by: Mapped[User | None] = relationship(User, foreign_keys=[collected_by_id])
    resulted_by: Mapped[User | None] = relationship(User, foreign_keys=[resulted_by_id])
    verified_by: Mapped[User | None] = relationship(User, foreign_keys=[verified_by_id])
    results: Mapped[list["LabResult"]] = relationship(
        back_populates="order", order_by="LabResult.id", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"Lab #{self.id}"


class LabResult(Model):
    """One ordered test of an order and, once entered, its result.

    The reference range and unit are copied when the result is entered, so the report keeps
    reading as it was verified even if the catalogue changes later.
    """

    __tablename__ = "lab_result"
    __audit_subject__ = ("patient", "patient_id")
    __table_args__ = (
        UniqueConstraint("order_id", "test_id", name="uq_lab_result_order_test"),
        CheckConstraint(
            "flag IS NULL OR flag IN ('normal', 'low', 'high', 'abnormal')",
            name="ck_lab_result_flag",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("lab_order.id", ondelete="CASCADE"), index=True, nullable=False
    )
    # Copied from the order so the audit trail can name the patient of a changed result.
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    test_id: Mapped[int] = mapped_column(
        ForeignKey("lab_test.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    value_numeric: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    value_text: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(30))
    reference_low: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    reference_high: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    flag: Mapped[str | None] = mapped_column(String(8))
    comment: Mapped[str | None] = mapped_column(String(300))

    order: Mapped[LabOrder] = relationship(back_populates="results")
    test: Mapped[LabTest] = relationship(LabTest)
    amendments: Mapped[list["LabResultAmendment"]] = relationship(
        back_populates="result", order_by="LabResultAmendment.amended_at"
    )


class LabResultAmendment(Model):
    """A correction of a verified result: the value before and after, why, by whom, when."""

    __tablename__ = "lab_result_amendment"
    __audit_subject__ = ("patient", "patient_id")

    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(
        ForeignKey("lab_result.id", ondelete="CASCADE"), index=True, nullable=False
    )
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    old_value: Mapped[str | None] = mapped_column(String(200))
    new_value: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(300), nullable=False)
    amended_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    amended_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )

    result: Mapped[LabResult] = relationship(back_populates="amendments")
    amended_by: Mapped[User | None] = relationship(User)
