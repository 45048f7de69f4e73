"""Patients (organisation-wide), their clinical section and the history of their consents."""

from __future__ import annotations

from datetime import date, datetime

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import TimestampMixin, utcnow
from app.models.org import Branch

#: Values of ``Patient.sex``.
SEXES = ("female", "male", "other", "unknown")
#: Consents a patient gives or withdraws, by the ``Patient`` column that holds each.
CONSENT_COLUMNS = {
    "sms": "consent_sms",
    "email": "consent_email",
    "whatsapp": "consent_whatsapp",
    "marketing": "consent_marketing",
}
#: How a consent was obtained.
CONSENT_SOURCES = ("in_person", "phone", "web_form", "written")


class Patient(TimestampMixin, Model):
    """A person the clinic treats: known to every branch, registered at one."""

    __tablename__ = "patient"
    __audit_subject__ = ("patient", "id")
    __audit_branch__ = "registered_branch_id"
    __table_args__ = (
        CheckConstraint(
            "sex IN ('female', 'male', 'other', 'unknown')", name="ck_patient_sex"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Set from the id in the same transaction as the insert (see app/services/patients.py).
    mrn: Mapped[str | None] = mapped_column(String(20), unique=True)
    first_name: Mapped[str] = mapped_column(String(80), nullable=False)
    last_name: Mapped[str] = mapped_column(String(80), nullable=False)
    date_of_birth: Mapped[date | None] = mapped_column(Date, index=True)
    sex: Mapped[str] = mapped_column(String(10), nullable=False, default="unknown")
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str | None] = mapped_column(Text)
    emergency_contact_name: Mapped[str | None] = mapped_column(String(160))
    emergency_contact_phone: Mapped[str | None] = mapped_column(String(20))
    preferred_language: Mapped[str | None] = mapped_column(String(40))
    consent_sms: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    consent_email: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    consent_whatsapp: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    consent_marketing: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    registered_branch_id: Mapped[int] = mapped_column(
        ForeignKey("branch.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    # Search keys kept by the patients service: lowercase names without accents, phone digits.
    name_search: Mapped[str] = mapped_column(String(200), index=True, nullable=False, default="")
    phone_digits: Mapped[str | None] = mapped_column(String(20), index=True)
    # A duplicate merged into another patient stays, pointing at the survivor.
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True
    )

    registered_branch: Mapped[Branch] = relationship(Branch)
    merged_into: Mapped["Patient | None"] = relationship(remote_side=[id])

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def age(self) -> int | None:
        """Whole years since the date of birth, today."""
        born = self.date_of_birth
        if born is None:
            return None
        today = date.today()
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))

    def __repr__(self) -> str:
        return f"{self.full_name} ({self.mrn})" if self.mrn else self.full_name


class PatientClinical(TimestampMixin, Model):
    """A patient's clinical section, in a table of its own so demographic screens never load it."""

    __tablename__ = "patient_clinical"
    __audit_subject__ = ("patient", "patient_id")

    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), primary_key=True
    )
    allergies: Mapped[str | None] = mapped_column(Text)
    chronic_conditions: Mapped[str | None] = mapped_column(Text)
    clinical_notes: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient] = relationship(Patient)

    def __repr__(self) -> str:
        return str(self.patient)


class ConsentChange(Model):
    """One consent given or withdrawn: what, by whom it was recorded, when and how obtained."""

    __tablename__ = "consent_change"
    __audit_subject__ = ("patient", "patient_id")
    __table_args__ = (
        CheckConstraint(
            "kind IN ('sms', 'email', 'whatsapp', 'marketing')", name="ck_consent_change_kind"
        ),
        CheckConstraint(
            "obtained IN ('in_person', 'phone', 'web_form', 'written')",
            name="ck_consent_change_obtained",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    granted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    obtained: Mapped[str] = mapped_column(String(16), nullable=False)
    changed_by_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )

    patient: Mapped[Patient] = relationship(Patient)
    changed_by: Mapped[User | None] = relationship(User)
