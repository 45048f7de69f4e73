"""Leads: enquiries on their way to becoming booked patients, or a recorded loss.

A lead is matched against patients and other open leads by phone, e-mail and folded name, moves
through the pipeline's stages (each move kept as a ``LeadStageChange``), keeps the history of its
consents, and is converted in one step into a patient (new or existing) with a booked appointment.

The functions here flush, never commit: the caller commits. They never read internal fields
(stage, owner, notes, patient, appointment) from what a public caller sends: ``create_lead``
resets the pipeline state itself.
"""

from __future__ import annotations

from datetime import datetime

from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy import inspect as sa_inspect

from app.extensions import db
from app.models.base import utcnow
from app.models.leads import (
    HEARD_ABOUT,
    LEAD_CONSENTS,
    LEAD_SOURCES,
    LEAD_STAGES,
    LOST_REASONS,
    Lead,
    LeadConsentChange,
    LeadStageChange,
)
from app.models.org import Branch
from app.models.patients import CONSENT_SOURCES, Patient
from app.models.scheduling import Appointment, Service
from app.services.appointments import book_appointment
from app.services.audit import current_actor
from app.services.errors import ClinicError
from app.services.org import InvalidSettingError, normalise_phone
from app.services.patients import phone_digits, register_patient, search_key

#: How many matches of each kind ``find_matches`` returns at most.
MATCH_LIMIT = 20

STAGE_LABELS = {
    "new": _l("New"),
    "contacted": _l("Contacted"),
    "qualified": _l("Qualified"),
    "booked": _l("Appointment booked"),
    "converted": _l("Converted"),
    "lost": _l("Lost"),
}
SOURCE_LABELS = {
    "web_form": _l("Web form"),
    "phone": _l("Phone"),
    "walk_in": _l("Walk-in"),
    "referral": _l("Referral"),
    "campaign": _l("Campaign"),
    "other": _l("Other"),
}
LOST_REASON_LABELS = {
    "not_reachable": _l("Could not be reached"),
    "not_interested": _l("Not interested any more"),
    "chose_another_clinic": _l("Chose another clinic"),
    "price": _l("Price"),
    "timing": _l("No suitable time"),
    "out_of_area": _l("Out of our area"),
    "duplicate": _l("Duplicate enquiry"),
    "other": _l("Other"),
}
HEARD_ABOUT_LABELS = {
    "search": _l("Internet search"),
    "social_media": _l("Social media"),
    "friend_or_family": _l("Friend or family"),
    "doctor": _l("Another doctor"),
    "advert": _l("Advert"),
    "passing_by": _l("Passing by"),
    "other": _l("Other"),
}
CONSENT_LABELS = {
    "contact": _l("Contact about this request"),
    "reminders": _l("Appointment reminders"),
    "marketing": _l("News and offers (marketing)"),
}
#: How a consent was obtained (the patients' vocabulary).
OBTAINED_LABELS = {
    "in_person": _l("In person"),
    "phone": _l("By phone"),
    "web_form": _l("Web form"),
    "written": _l("In writing"),
}

#: Stages a lead is still being worked on in.
OPEN_STAGES = ("new", "contacted", "qualified", "booked")
CLOSED_STAGES = ("converted", "lost")
#: Stages a lost lead may be reopened into.
REOPEN_STAGES = ("new", "contacted")
CONSENT_FIELDS = {kind: f"consent_{kind}" for kind in LEAD_CONSENTS}

assert set(STAGE_LABELS) == set(LEAD_STAGES)
assert set(SOURCE_LABELS) == set(LEAD_SOURCES)
assert set(LOST_REASON_LABELS) == set(LOST_REASONS)
assert set(HEARD_ABOUT_LABELS) == set(HEARD_ABOUT)


class LeadError(ClinicError):
    """A lead change the rules refuse."""


class LeadStageError(LeadError):
    """A stage move the pipeline does not allow (or lost without a reason)."""


class LeadConversionError(LeadError):
    """A lead that cannot be converted (already converted, lost, missing details)."""


class LeadPhoneError(LeadError, ValueError):
    """A phone number that cannot be read for the lead's branch."""


def _actor_id() -> int | None:
    return current_actor()[0]


def _branch(lead: Lead) -> Branch | None:
    if lead.branch is not None:
        return lead.branch
    if lead.branch_id is not None:
        return db.session.get(Branch, lead.branch_id)
    return None


def _country(lead: Lead) -> str:
    branch = _branch(lead)
    return branch.country if branch is not None else ""


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def is_open(lead: Lead) -> bool:
    return lead.stage in OPEN_STAGES


def normalise_lead(lead: Lead) -> None:
    """Tidy names and e-mail, store the phone in international form, refresh the matching keys.

    :raises LeadPhoneError: when the phone cannot be read for the branch's country.
    """
    lead.first_name = (lead.first_name or "").strip()
    lead.last_name = _clean(lead.last_name)
    lead.email = _clean(lead.email)
    if lead.reason:
        lead.reason = lead.reason.replace("\r\n", "\n")
    if lead.notes:
        lead.notes = lead.notes.replace("\r\n", "\n")
    phone = _clean(lead.phone)
    if phone:
        try:
            phone = normalise_phone(phone, _country(lead))
        except InvalidSettingError:
            raise LeadPhoneError(_l("This is not a phone number we can read.")) from None
    lead.phone = phone
    lead.name_search = search_key(f"{lead.first_name} {lead.last_name or ''}")
    lead.phone_digits = phone_digits(lead.phone)
    lead.email_search = lead.email.casefold() if lead.email else None


def _record_stage(lead: Lead, from_stage: str | None, to_stage: str, note: str | None = None):
    change = LeadStageChange(
        lead=lead, from_stage=from_stage, to_stage=to_stage,
        note=(_clean(note) or "")[:300] or None, changed_by_id=_actor_id(),
    )
    db.session.add(change)
    return change


def _record_consent(lead: Lead, kind: str, granted: bool, obtained: str) -> LeadConsentChange:
    if obtained not in CONSENT_SOURCES:
        raise ValueError(f"unknown consent source {obtained!r}")
    change = LeadConsentChange(
        lead=lead, kind=kind, granted=granted, obtained=obtained, changed_by_id=_actor_id()
    )
    db.session.add(change)
    return change


def create_lead(lead: Lead, *, obtained: str = "phone") -> Lead:
    """Add a new lead: normalised, at stage "new", its consents recorded as obtained ``obtained``.

    The pipeline state is set here whatever the caller put on ``lead``: stage "new", no lost
    reason, no patient, appointment or conversion dates. Staff screens may set owner and notes;
    the public form builds its ``Lead`` from whitelisted fields only.

    :raises LeadPhoneError: for a phone the branch's country cannot read.
    :raises LeadError: without a first name or a way to reach the person.
    """
    if obtained not in CONSENT_SOURCES:
        raise ValueError(f"unknown consent source {obtained!r}")
    normalise_lead(lead)
    if not lead.first_name:
        raise LeadError(_l("Please give at least a first name."))
    if not lead.phone and not lead.email:
        raise LeadError(_l("Please give a phone number or an e-mail address."))
    if lead.source not in LEAD_SOURCES:
        lead.source = "other"
    if lead.heard_about is not None and lead.heard_about not in HEARD_ABOUT:
        lead.heard_about = None
    now = utcnow()
    lead.stage = "new"
    lead.stage_changed_at = now
    lead.lost_reason = None
    lead.patient = None
    lead.patient_id = None
    lead.appointment = None
    lead.appointment_id = None
    lead.booked_at = None
    lead.converted_at = None
    for column in CONSENT_FIELDS.values():
        setattr(lead, column, bool(getattr(lead, column)))
    db.session.add(lead)
    _record_stage(lead, None, "new")
    for kind, column in CONSENT_FIELDS.items():
        if getattr(lead, column):
            _record_consent(lead, kind, True, obtained)
    db.session.flush()
    return lead


def update_lead(lead: Lead, *, obtained: str = "phone") -> Lead:
    """Save staff edits to a lead's details: normalised again, consent changes recorded.

    Call it after the new values are set and before the flush. Stage changes go through
    ``move_stage``; this keeps the stored stage whatever the caller set.
    """
    state = sa_inspect(lead)
    for name in ("stage", "lost_reason", "patient_id", "appointment_id", "booked_at",
                 "converted_at", "stage_changed_at"):
        history = state.attrs[name].history
        if history.deleted:
            setattr(lead, name, history.deleted[0])
    normalise_lead(lead)
    if not lead.first_name:
        raise LeadError(_l("Please give at least a first name."))
    if not lead.phone and not lead.email:
        raise LeadError(_l("Please give a phone number or an e-mail address."))
    for kind, column in CONSENT_FIELDS.items():
        history = state.attrs[column].history
        granted = bool(getattr(lead, column))
        old = bool(history.deleted[0]) if history.deleted else granted
        if granted != old:
            _record_consent(lead, kind, granted, obtained)
    db.session.flush()
    return lead


def _folded_name(lead: Lead) -> str:
    return search_key(f"{lead.first_name or ''} {lead.last_name or ''}")


def _match_keys(lead: Lead) -> tuple[str, str | None, str | None]:
    name = _folded_name(lead)
    digits = None
    if lead.phone:
        try:
            digits = phone_digits(normalise_phone(lead.phone, _country(lead)))
        except InvalidSettingError:
            digits = phone_digits(lead.phone)
    email = lead.email.strip().casefold() if lead.email and lead.email.strip() else None
    return name, digits, email


def find_matches(lead: Lead) -> tuple[list[Patient], list[Lead]]:
    """Patients (never merged duplicates) and open leads (other than this one) that may be the
    same person: the same phone in any format, the same e-mail ignoring case, or the same full
    name ignoring case and accents. Works on an unsaved lead too (the add form's check)."""
    name, digits, email = _match_keys(lead)
    patient_conditions = []
    lead_conditions = []
    if digits:
        patient_conditions.append(Patient.phone_digits == digits)
        lead_conditions.append(Lead.phone_digits == digits)
    if email:
        patient_conditions.append(func.lower(Patient.email) == email)
        lead_conditions.append(Lead.email_search == email)
    if name and (lead.last_name or "").strip():
        # A first name alone matches too many people.
        patient_conditions.append(Patient.name_search == name)
        lead_conditions.append(Lead.name_search == name)
    if not patient_conditions:
        return [], []
    patients_query = (
        select(Patient).where(Patient.merged_into_id.is_(None), or_(*patient_conditions))
    )
    leads_query = select(Lead).where(Lead.stage.in_(OPEN_STAGES), or_(*lead_conditions))
    if lead.id is not None:
        leads_query = leads_query.where(Lead.id != lead.id)
    patients = list(db.session.scalars(patients_query.order_by(Patient.id).limit(MATCH_LIMIT)))
    leads = list(db.session.scalars(leads_query.order_by(Lead.id).limit(MATCH_LIMIT)))
    return patients, leads


def allowed_stages(lead: Lead) -> list[str]:
    """Stages ``move_stage`` accepts for this lead now (never "converted")."""
    if lead.stage == "converted":
        return []
    if lead.stage == "lost":
        return list(REOPEN_STAGES)
    return [stage for stage in (*OPEN_STAGES, "lost") if stage != lead.stage]


def move_stage(
    lead: Lead, to_stage: str, *, lost_reason: str | None = None, note: str | None = None
) -> Lead:
    """Move ``lead`` to ``to_stage``, recorded in its history.

    :raises LeadStageError: for an unknown stage, "converted" (only ``convert_lead`` converts), a
        converted lead (final), a lost lead moved anywhere but "new"/"contacted", the stage it is
        already at, or "lost" without a reason from ``LOST_REASONS``.
    """
    if to_stage not in LEAD_STAGES:
        raise LeadStageError(_l("Unknown stage."))
    if lead.stage == "converted":
        raise LeadStageError(_l("This lead is converted: its stage cannot change any more."))
    if to_stage == "converted":
        raise LeadStageError(_l("Use Convert to turn a lead into a patient with an appointment."))
    if to_stage == lead.stage:
        raise LeadStageError(_l("The lead is already at this stage."))
    if lead.stage == "lost" and to_stage not in REOPEN_STAGES:
        raise LeadStageError(_l("A lost lead can only be reopened as new or contacted."))
    if to_stage == "lost":
        if lost_reason not in LOST_REASONS:
            raise LeadStageError(_l("Please choose why the lead was lost."))
        lead.lost_reason = lost_reason
    else:
        lead.lost_reason = None
    from_stage = lead.stage
    lead.stage = to_stage
    lead.stage_changed_at = utcnow()
    if to_stage == "booked" and lead.booked_at is None:
        lead.booked_at = lead.stage_changed_at
    _record_stage(lead, from_stage, to_stage, note)
    db.session.flush()
    return lead


def set_consent(lead: Lead, kind: str, granted: bool, *, obtained: str) -> bool:
    """Give or withdraw one consent; True (and a history row) when it changed."""
    if kind not in CONSENT_FIELDS:
        raise ValueError(f"unknown consent {kind!r}")
    column = CONSENT_FIELDS[kind]
    granted = bool(granted)
    if bool(getattr(lead, column)) == granted:
        return False
    setattr(lead, column, granted)
    _record_consent(lead, kind, granted, obtained)
    db.session.flush()
    return True


def consent_history(lead: Lead) -> list[LeadConsentChange]:
    if lead.id is None:
        return []
    return list(db.session.scalars(
        select(LeadConsentChange).where(LeadConsentChange.lead_id == lead.id)
        .order_by(LeadConsentChange.changed_at, LeadConsentChange.id)
    ))


def link_patient(lead: Lead, patient: Patient) -> Lead:
    """Record that this lead is ``patient`` (an existing one): no conversion yet.

    :raises LeadError: for a converted lead or a merged patient record.
    """
    if lead.stage == "converted":
        raise LeadError(_l("This lead is converted: its patient cannot change any more."))
    if patient.merged_into_id is not None:
        raise LeadError(_l("This patient record was merged into another one: link that one."))
    lead.patient = patient
    lead.patient_id = patient.id
    db.session.flush()
    return lead


def _obtained_for(lead: Lead, kind: str) -> str:
    """How the lead's latest grant of ``kind`` was obtained (for the patient's history)."""
    for change in reversed(consent_history(lead)):
        if change.kind == kind and change.granted and change.obtained in CONSENT_SOURCES:
            return change.obtained
    return "web_form" if lead.source == "web_form" else "phone"


def _patient_from_lead(lead: Lead, branch: Branch) -> Patient:
    patient = Patient(
        first_name=lead.first_name, last_name=lead.last_name or "", phone=lead.phone,
        email=lead.email, registered_branch=branch, registered_branch_id=branch.id,
    )
    reminders = bool(lead.consent_reminders)
    patient.consent_sms = reminders and bool(lead.phone)
    patient.consent_email = reminders and bool(lead.email)
    patient.consent_whatsapp = False
    patient.consent_marketing = bool(lead.consent_marketing)
    kinds = [k for k in ("marketing", "reminders") if getattr(lead, CONSENT_FIELDS[k])]
    obtained = _obtained_for(lead, kinds[0]) if kinds else (
        "web_form" if lead.source == "web_form" else "phone"
    )
    return register_patient(patient, obtained=obtained)


def convert_lead(
    lead: Lead,
    *,
    patient: Patient | None = None,
    doctor: User,
    branch: Branch,
    starts_at: datetime,
    service: Service | None = None,
    duration_min: int | None = None,
) -> tuple[Patient, Appointment]:
    """Turn ``lead`` into a patient with a booked appointment, in one step.

    Uses ``patient`` (an existing one chosen from the matches), else the lead's linked patient,
    else registers a new patient from the lead's details (consents carried over). Books with
    ``book_appointment``; on any refusal nothing is saved (a savepoint is rolled back). The lead
    stays, with its history and source, marked converted (passing through "booked").

    :raises LeadConversionError: for a converted or lost lead.
    :raises AppointmentError, SlotUnavailableError: from the booking, unchanged.
    :raises PatientPhoneError: when a new patient's phone cannot be read.
    """
    if lead.stage == "converted":
        raise LeadConversionError(_l("This lead is already converted."))
    if lead.stage == "lost":
        raise LeadConversionError(_l("Reopen this lost lead before converting it."))
    if patient is not None and patient.merged_into_id is not None:
        raise LeadConversionError(
            _l("This patient record was merged into another one: choose that one.")
        )
    reason = lead.reason[:200] if lead.reason else None
    if service is None:
        service = lead.requested_service
    with db.session.begin_nested():
        if patient is None:
            patient = lead.patient or (
                db.session.get(Patient, lead.patient_id) if lead.patient_id else None
            )
            if patient is not None and patient.merged_into_id is not None:
                patient = db.session.get(Patient, patient.merged_into_id)
        if patient is None:
            patient = _patient_from_lead(lead, branch)
        appointment = book_appointment(
            patient=patient, doctor=doctor, branch=branch, starts_at=starts_at,
            duration_min=duration_min, service=service, reason=reason,
        )
        now = utcnow()
        lead.patient = patient
        lead.appointment = appointment
        if lead.stage != "booked":
            _record_stage(lead, lead.stage, "booked")
            lead.booked_at = now
        elif lead.booked_at is None:
            lead.booked_at = now
        _record_stage(lead, "booked", "converted")
        lead.stage = "converted"
        lead.lost_reason = None
        lead.stage_changed_at = now
        lead.converted_at = now
        db.session.flush()
    return patient, appointment


def may_contact_for_marketing(subject: Lead | Patient) -> bool:
    """True only while marketing consent is given (a withdrawal switches it off)."""
    if isinstance(subject, Patient) and subject.merged_into_id is not None:
        return False
    return bool(getattr(subject, "consent_marketing", False))


def may_follow_up(lead: Lead) -> bool:
    """True when the lead agreed to be contacted and is still open."""
    return bool(lead.consent_contact) and lead.stage in OPEN_STAGES


def lead_for_patient(patient_id: int, branch_ids) -> list[Lead]:
    """The leads that became (or were linked to) this patient, in the given branches."""
    return list(db.session.scalars(
        select(Lead).where(Lead.patient_id == patient_id, Lead.branch_id.in_(list(branch_ids)))
        .order_by(Lead.created_at)
    ))
