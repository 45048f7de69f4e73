"""The patient-lead pipeline: enquiries, their stages, the messages exchanged and follow-ups."""

from __future__ import annotations

from datetime import datetime

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import BranchOwnedMixin, TimestampMixin, utcnow
from app.models.patients import Patient
from app.models.scheduling import Appointment, Service

#: A lead's way through the pipeline; ``lost`` ends it with a reason from ``LOST_REASONS``.
LEAD_STAGES = ("new", "contacted", "qualified", "booked", "converted", "lost")
#: Where an enquiry came from.
LEAD_SOURCES = ("web_form", "phone", "walk_in", "referral", "campaign", "other")
LOST_REASONS = (
    "not_reachable",
    "not_interested",
    "chose_another_clinic",
    "price",
    "timing",
    "out_of_area",
    "duplicate",
    "other",
)
#: How someone heard of the clinic, as the public form asks it.
HEARD_ABOUT = ("search", "social_media", "friend_or_family", "doctor", "advert", "passing_by", "other")
COMMUNICATION_CHANNELS = ("call", "sms", "email", "whatsapp", "in_person")
COMMUNICATION_DIRECTIONS = ("in", "out")
COMMUNICATION_OUTCOMES = (
    "reached",
    "no_answer",
    "left_message",
    "busy",
    "wrong_number",
    "sent",
    "replied",
    "failed",
)
#: Consents a lead gives on the public form or to staff.
LEAD_CONSENTS = ("contact", "reminders", "marketing")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Lead(BranchOwnedMixin, TimestampMixin, Model):
    """Someone who asked for an appointment (or was referred) and is not yet a booked patient."""

    __tablename__ = "lead"
    __audit_subject__ = ("lead", "id")
    __table_args__ = (
        CheckConstraint(_in("stage", LEAD_STAGES), name="ck_lead_stage"),
        CheckConstraint(_in("source", LEAD_SOURCES), name="ck_lead_source"),
        CheckConstraint(
            f"lost_reason IS NULL OR {_in('lost_reason', LOST_REASONS)}",
            name="ck_lead_lost_reason_known",
        ),
        CheckConstraint(
            "stage <> 'lost' OR lost_reason IS NOT NULL", name="ck_lead_lost_has_reason"
        ),
        CheckConstraint(
            f"heard_about IS NULL OR {_in('heard_about', HEARD_ABOUT)}", name="ck_lead_heard_about"
        ),
        Index("ix_lead_branch_stage", "branch_id", "stage"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str] = mapped_column(String(80), nullable=False)
    last_name: Mapped[str | None] = mapped_column(String(80))
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    # Matching keys kept by the leads service (as on patients): folded name, phone digits, e-mail.
    name_search: Mapped[str] = mapped_column(String(200), index=True, nullable=False, default="")
    phone_digits: Mapped[str | None] = mapped_column(String(20), index=True)
    email_search: Mapped[str | None] = mapped_column(String(254), index=True)
    source: Mapped[str] = mapped_column(String(12), nullable=False, default="phone")
    heard_about: Mapped[str | None] = mapped_column(String(20))
    requested_service_id: Mapped[int | None] = mapped_column(
        ForeignKey("service.id", ondelete="SET NULL")
    )
    # What the person wrote: "mornings next week", "after 5 pm on weekdays".
    preferred_times: Mapped[str | None] = mapped_column(String(300))
    reason: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(String(12), nullable=False, default="new")
    stage_changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    lost_reason: Mapped[str | None] = mapped_column(String(24))
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL"), index=True
    )
    next_follow_up_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    consent_contact: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    consent_reminders: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    consent_marketing: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Staff's own notes: never settable from the public form.
    notes: Mapped[str | None] = mapped_column(Text)
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    utm_term: Mapped[str | None] = mapped_column(String(100))
    utm_content: Mapped[str | None] = mapped_column(String(100))
    # Linked to an existing patient, or the patient the lead became at conversion.
    patient_id: Mapped[int | None] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True
    )
    appointment_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointment.id", ondelete="SET NULL")
    )
    booked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    converted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    requested_service: Mapped[Service | None] = relationship(Service)
    owner: Mapped[User | None] = relationship(User)
    patient: Mapped[Patient | None] = relationship(Patient)
    appointment: Mapped[Appointment | None] = relationship(Appointment)
    stage_changes: Mapped[list["LeadStageChange"]] = relationship(
        back_populates="lead", order_by="(LeadStageChange.changed_at, LeadStageChange.id)"
    )

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name or ''}".strip()

    def __repr__(self) -> str:
        return self.full_name


class LeadStageChange(Model):
    """One move of a lead between stages: the pipeline's history and the funnel's raw data."""

    __tablename__ = "lead_stage_change"
    __audit_subject__ = ("lead", "lead_id")

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(
        ForeignKey("lead.id", ondelete="CASCADE"), index=True, nullable=False
    )
    from_stage: Mapped[str | None] = mapped_column(String(12))
    to_stage: Mapped[str] = mapped_column(String(12), nullable=False)
    note: Mapped[str | None] = mapped_column(String(300))
    changed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )

    lead: Mapped[Lead] = relationship(back_populates="stage_changes")
    changed_by: Mapped[User | None] = relationship(User)


class LeadConsentChange(Model):
    """A consent a lead gave or withdrew: what, when, how (web form, phone …) and who recorded it."""

    __tablename__ = "lead_consent_change"
    __audit_subject__ = ("lead", "lead_id")
    __table_args__ = (
        CheckConstraint(_in("kind", LEAD_CONSENTS), name="ck_lead_consent_change_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(
        ForeignKey("lead.id", ondelete="CASCADE"), index=True, nullable=False
    )
    kind: Mapped[str] = mapped_column(String(12), nullable=False)
    granted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # The same vocabulary as patients' consents (in_person, phone, web_form, written).
    obtained: Mapped[str] = mapped_column(String(16), nullable=False)
    changed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )

    lead: Mapped[Lead] = relationship(Lead)
    changed_by: Mapped[User | None] = relationship(User)


class Communication(BranchOwnedMixin, TimestampMixin, Model):
    """A call, text, e-mail, WhatsApp message or conversation with a lead or a patient."""

    __tablename__ = "communication"
    __audit_subject__ = ("lead", "lead_id")
    __table_args__ = (
        CheckConstraint(_in("channel", COMMUNICATION_CHANNELS), name="ck_communication_channel"),
        CheckConstraint(
            _in("direction", COMMUNICATION_DIRECTIONS), name="ck_communication_direction"
        ),
        CheckConstraint(_in("outcome", COMMUNICATION_OUTCOMES), name="ck_communication_outcome"),
        CheckConstraint(
            "lead_id IS NOT NULL OR patient_id IS NOT NULL", name="ck_communication_about_someone"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(
        ForeignKey("lead.id", ondelete="RESTRICT"), index=True
    )
    patient_id: Mapped[int | None] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True
    )
    channel: Mapped[str] = mapped_column(String(10), nullable=False)
    direction: Mapped[str] = mapped_column(String(3), nullable=False, default="out")
    outcome: Mapped[str] = mapped_column(String(14), nullable=False)
    summary: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, index=True
    )
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    lead: Mapped[Lead | None] = relationship(Lead)
    patient: Mapped[Patient | None] = relationship(Patient)
    staff: Mapped[User | None] = relationship(User)


class FollowUp(BranchOwnedMixin, TimestampMixin, Model):
    """Something to do for a lead or a patient by a time: call back, send the quote …"""

    __tablename__ = "follow_up"
    __audit_subject__ = ("lead", "lead_id")
    __table_args__ = (
        CheckConstraint(
            "lead_id IS NOT NULL OR patient_id IS NOT NULL", name="ck_follow_up_about_someone"
        ),
        Index("ix_follow_up_assignee_due", "assignee_id", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(
        ForeignKey("lead.id", ondelete="RESTRICT"), index=True
    )
    patient_id: Mapped[int | None] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True
    )
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(String(300))
    # Created by the pipeline's automation (not typed by staff).
    is_automatic: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    lead: Mapped[Lead | None] = relationship(Lead)
    patient: Mapped[Patient | None] = relationship(Patient)
    assignee: Mapped[User | None] = relationship(User, foreign_keys=[assignee_id])
    done_by: Mapped[User | None] = relationship(User, foreign_keys=[done_by_id])


class Notification(Model):
    """An in-app message to one staff member (e.g. "a new appointment request arrived")."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_recipient_unread", "recipient_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False
    )
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branch.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    # A link inside the app (e.g. /leads/show/12): never patient data in the text itself.
    link: Mapped[str | None] = mapped_column(String(200))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    recipient: Mapped[User] = relationship(User)
