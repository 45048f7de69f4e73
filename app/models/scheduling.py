"""Booking: the service catalogue, doctors' rosters, clinic holidays, appointments and their history."""

from __future__ import annotations

from datetime import date, datetime, time

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import BranchOwnedMixin, TimestampMixin, utcnow
from app.models.patients import Patient

#: An appointment's life: booked → confirmed → arrived → in consultation → completed, or it ends
#: cancelled (with a reason) or as a no-show.
APPOINTMENT_STATUSES = (
    "booked",
    "confirmed",
    "arrived",
    "in_consultation",
    "completed",
    "cancelled",
    "no_show",
)
#: Statuses that no longer hold the doctor's time: another patient may be booked into it.
RELEASED_STATUSES = ("cancelled", "no_show")
#: Kinds of ``AppointmentChange``.
APPOINTMENT_CHANGE_KINDS = ("booked", "status", "rescheduled", "edited")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Service(TimestampMixin, Model):
    """Something the clinic offers and books time for (organisation-wide; billing prices it)."""

    __tablename__ = "service"
    __table_args__ = (
        CheckConstraint(
            "default_duration_min BETWEEN 5 AND 480", name="ck_service_default_duration"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True, nullable=False)
    category: Mapped[str | None] = mapped_column(String(80), index=True)
    default_duration_min: Mapped[int] = mapped_column(Integer, nullable=False, default=15)
    description: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return self.name


class StaffProfile(TimestampMixin, Model):
    """What a prescription and the calendar need to know about a doctor beyond the user account."""

    __tablename__ = "staff_profile"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True
    )
    # Medical council / dental council registration number, printed on prescriptions.
    registration_number: Mapped[str | None] = mapped_column(String(60))
    qualifications: Mapped[str | None] = mapped_column(String(200))
    speciality: Mapped[str | None] = mapped_column(String(120))
    # The calendar column's accent, as #rrggbb.
    calendar_colour: Mapped[str | None] = mapped_column(String(7))

    user: Mapped[User] = relationship(User)

    def __repr__(self) -> str:
        return f"{self.user.first_name} {self.user.last_name}" if self.user else str(self.user_id)


class WorkingHours(BranchOwnedMixin, TimestampMixin, Model):
    """When a doctor sees patients at a branch on one weekday (local time), with an optional break."""

    __tablename__ = "working_hours"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="ck_working_hours_weekday"),
        CheckConstraint("end_time > start_time", name="ck_working_hours_order"),
        CheckConstraint(
            "(break_start IS NULL AND break_end IS NULL) OR (break_start IS NOT NULL AND "
            "break_end IS NOT NULL AND break_start >= start_time AND break_end > break_start "
            "AND break_end <= end_time)",
            name="ck_working_hours_break",
        ),
        UniqueConstraint("doctor_id", "branch_id", "weekday", name="uq_working_hours_day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    doctor_id: Mapped[int] = mapped_column(
        ForeignKey("ab_user.id", ondelete="CASCADE"), index=True, nullable=False
    )
    # 0 = Monday … 6 = Sunday (Python's ``date.weekday()``).
    weekday: Mapped[int] = mapped_column(Integer, nullable=False)
    start_time: Mapped[time] = mapped_column(Time, nullable=False)
    end_time: Mapped[time] = mapped_column(Time, nullable=False)
    break_start: Mapped[time | None] = mapped_column(Time)
    break_end: Mapped[time | None] = mapped_column(Time)

    doctor: Mapped[User] = relationship(User)


class DoctorLeave(TimestampMixin, Model):
    """Days a doctor is away from every branch (inclusive range)."""

    __tablename__ = "doctor_leave"
    __table_args__ = (CheckConstraint("ends_on >= starts_on", name="ck_doctor_leave_order"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    doctor_id: Mapped[int] = mapped_column(
        ForeignKey("ab_user.id", ondelete="CASCADE"), index=True, nullable=False
    )
    starts_on: Mapped[date] = mapped_column(Date, nullable=False)
    ends_on: Mapped[date] = mapped_column(Date, nullable=False)
    note: Mapped[str | None] = mapped_column(String(200))

    doctor: Mapped[User] = relationship(User)


class Holiday(BranchOwnedMixin, TimestampMixin, Model):
    """A day a branch is closed."""

    __tablename__ = "holiday"
    __table_args__ = (UniqueConstraint("branch_id", "day", name="uq_holiday_branch_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)

    def __repr__(self) -> str:
        return self.name


class Appointment(BranchOwnedMixin, TimestampMixin, Model):
    """A patient's booked time with a doctor at a branch.

    ``ends_at`` is kept with ``starts_at`` and ``duration_min`` by the appointments service. On
    PostgreSQL the exclusion constraint ``ex_appointment_doctor_overlap`` (migration 0004, which
    needs ``btree_gist``) makes two live appointments of one doctor overlapping in time
    impossible, in any branch, however many requests race; the service checks first on every
    database so the user reads a clear message.
    """

    __tablename__ = "appointment"
    __audit_subject__ = ("patient", "patient_id")
    __table_args__ = (
        CheckConstraint(_in("status", APPOINTMENT_STATUSES), name="ck_appointment_status"),
        CheckConstraint("duration_min BETWEEN 5 AND 480", name="ck_appointment_duration"),
        CheckConstraint("ends_at > starts_at", name="ck_appointment_order"),
        CheckConstraint(
            "status <> 'cancelled' OR cancel_reason IS NOT NULL",
            name="ck_appointment_cancel_reason",
        ),
        Index("ix_appointment_doctor_starts", "doctor_id", "starts_at"),
        Index("ix_appointment_branch_starts", "branch_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    doctor_id: Mapped[int] = mapped_column(
        ForeignKey("ab_user.id", ondelete="RESTRICT"), nullable=False
    )
    service_id: Mapped[int | None] = mapped_column(
        ForeignKey("service.id", ondelete="RESTRICT"), index=True
    )
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    duration_min: Mapped[int] = mapped_column(Integer, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="booked")
    reason: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    is_walk_in: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    booked_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL")
    )

    patient: Mapped[Patient] = relationship(Patient)
    doctor: Mapped[User] = relationship(User, foreign_keys=[doctor_id])
    service: Mapped[Service | None] = relationship(Service)
    booked_by: Mapped[User | None] = relationship(User, foreign_keys=[booked_by_id])
    changes: Mapped[list["AppointmentChange"]] = relationship(
        back_populates="appointment",
        order_by="(AppointmentChange.changed_at, AppointmentChange.id)",
    )

    def __repr__(self) -> str:
        return f"#{self.id} {self.starts_at:%Y-%m-%d %H:%M}" if self.starts_at else f"#{self.id}"


class AppointmentChange(Model):
    """One step of an appointment's history: booked, a status change, a move or an edit."""

    __tablename__ = "appointment_change"
    __table_args__ = (
        CheckConstraint(_in("kind", APPOINTMENT_CHANGE_KINDS), name="ck_appointment_change_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(
        ForeignKey("appointment.id", ondelete="CASCADE"), index=True, nullable=False
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    from_starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    to_starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    from_doctor_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    to_doctor_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(String(200))
    changed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )

    appointment: Mapped[Appointment] = relationship(back_populates="changes")
    changed_by: Mapped[User | None] = relationship(User, foreign_keys=[changed_by_id])
    from_doctor: Mapped[User | None] = relationship(User, foreign_keys=[from_doctor_id])
    to_doctor: Mapped[User | None] = relationship(User, foreign_keys=[to_doctor_id])
