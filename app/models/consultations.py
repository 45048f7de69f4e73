"""Visits and what a doctor writes in them: consultations and prescriptions with their items."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import BranchOwnedMixin, TimestampMixin
from app.models.patients import Patient
from app.models.scheduling import Appointment

if TYPE_CHECKING:
    from app.models.pharmacy import PharmacyItem

#: Units a vital may be entered in; values are stored in the first (SI) unit of each.
TEMPERATURE_UNITS = ("C", "F")
WEIGHT_UNITS = ("kg", "lb")
HEIGHT_UNITS = ("cm", "in")
PRESCRIPTION_STATUSES = ("active", "superseded", "dispensed")


class Consultation(BranchOwnedMixin, TimestampMixin, Model):
    """The record of one visit, attached to its appointment (walk-ins get one too).

    Vitals are stored in SI units (°C, kg, cm, two decimals) whatever unit the doctor typed; the
    ``*_unit`` columns remember that unit so the record reads back as it was entered.
    """

    __tablename__ = "consultation"
    __audit_subject__ = ("patient", "patient_id")
    __table_args__ = (
        CheckConstraint("bp_systolic BETWEEN 50 AND 300", name="ck_consultation_bp_systolic"),
        CheckConstraint("bp_diastolic BETWEEN 20 AND 200", name="ck_consultation_bp_diastolic"),
        CheckConstraint("pulse_bpm BETWEEN 20 AND 250", name="ck_consultation_pulse"),
        CheckConstraint("temperature_c BETWEEN 30 AND 45", name="ck_consultation_temperature"),
        CheckConstraint("weight_kg > 0 AND weight_kg <= 500", name="ck_consultation_weight"),
        CheckConstraint("height_cm > 0 AND height_cm <= 280", name="ck_consultation_height"),
        CheckConstraint("spo2_percent BETWEEN 50 AND 100", name="ck_consultation_spo2"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(
        ForeignKey("appointment.id", ondelete="RESTRICT"), unique=True, nullable=False
    )
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    doctor_id: Mapped[int] = mapped_column(
        ForeignKey("ab_user.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    complaints: Mapped[str | None] = mapped_column(Text)
    bp_systolic: Mapped[int | None] = mapped_column(Integer)
    bp_diastolic: Mapped[int | None] = mapped_column(Integer)
    pulse_bpm: Mapped[int | None] = mapped_column(Integer)
    temperature_c: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    temperature_unit: Mapped[str] = mapped_column(String(2), nullable=False, default="C")
    weight_kg: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    weight_unit: Mapped[str] = mapped_column(String(2), nullable=False, default="kg")
    height_cm: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    height_unit: Mapped[str] = mapped_column(String(2), nullable=False, default="cm")
    spo2_percent: Mapped[int | None] = mapped_column(Integer)
    examination: Mapped[str | None] = mapped_column(Text)
    diagnosis: Mapped[str | None] = mapped_column(Text)
    # An optional classification code (ICD-10, ICD-11, SNOMED …), as the clinic uses one.
    diagnosis_code: Mapped[str | None] = mapped_column(String(20))
    plan: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    appointment: Mapped[Appointment] = relationship(Appointment)
    patient: Mapped[Patient] = relationship(Patient)
    doctor: Mapped[User] = relationship(User)

    def __repr__(self) -> str:
        return f"#{self.id} {self.created_at:%Y-%m-%d}" if self.created_at else f"#{self.id}"


class Prescription(BranchOwnedMixin, TimestampMixin, Model):
    """What a doctor prescribed a patient on a day.

    Only the prescribing doctor edits it, and only while it is ``active`` and less than 24 hours
    old; a later correction is a new version (``supersedes``) and the old one is kept, marked
    ``superseded``. The pharmacy marks a prescription ``dispensed``.
    """

    __tablename__ = "prescription"
    __audit_subject__ = ("patient", "patient_id")
    __table_args__ = (
        CheckConstraint(
            "status IN ('active', 'superseded', 'dispensed')", name="ck_prescription_status"
        ),
        CheckConstraint("version >= 1", name="ck_prescription_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    doctor_id: Mapped[int] = mapped_column(
        ForeignKey("ab_user.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    consultation_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation.id", ondelete="RESTRICT"), index=True
    )
    prescribed_on: Mapped[date] = mapped_column(Date, nullable=False)
    advice: Mapped[str | None] = mapped_column(Text)
    follow_up_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="active")
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    # The version this one corrects; each prescription is corrected at most once.
    supersedes_id: Mapped[int | None] = mapped_column(
        ForeignKey("prescription.id", ondelete="RESTRICT"), unique=True
    )
    dispensed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    patient: Mapped[Patient] = relationship(Patient)
    doctor: Mapped[User] = relationship(User)
    consultation: Mapped[Consultation | None] = relationship(Consultation)
    supersedes: Mapped["Prescription | None"] = relationship(remote_side=[id])
    items: Mapped[list["PrescriptionItem"]] = relationship(
        back_populates="prescription",
        order_by="PrescriptionItem.position",
        cascade="all, delete-orphan",
    )

    def __repr__(self) -> str:
        return f"Rx #{self.id} v{self.version}"


class PrescriptionItem(Model):
    """One medicine on a prescription, as the doctor wrote it."""

    __tablename__ = "prescription_item"
    __audit_subject__ = ("patient", "patient_id")
    __table_args__ = (CheckConstraint("quantity > 0", name="ck_prescription_item_quantity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prescription_id: Mapped[int] = mapped_column(
        ForeignKey("prescription.id", ondelete="CASCADE"), index=True, nullable=False
    )
    # Copied from the prescription so the audit trail can name the patient of a changed item.
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # As the doctor wrote it; ``pharmacy_item_id`` links it to the pharmacy's catalogue when chosen.
    medicine: Mapped[str] = mapped_column(String(200), nullable=False)
    pharmacy_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("pharmacy_item.id", ondelete="SET NULL"), index=True
    )
    strength: Mapped[str | None] = mapped_column(String(60))
    dose: Mapped[str | None] = mapped_column(String(60))
    frequency: Mapped[str | None] = mapped_column(String(60))
    route: Mapped[str | None] = mapped_column(String(40))
    duration: Mapped[str | None] = mapped_column(String(60))
    quantity: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    instructions: Mapped[str | None] = mapped_column(String(300))

    prescription: Mapped[Prescription] = relationship(back_populates="items")
    pharmacy_item: Mapped["PharmacyItem | None"] = relationship("PharmacyItem")

    def __repr__(self) -> str:
        return self.medicine
