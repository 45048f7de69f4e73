"""The communication log and follow-up tasks of leads and patients, and who may be contacted.

Every call, text, e-mail, WhatsApp message or conversation is logged against a lead or a patient
(``log_communication``); follow-ups are tasks due at a time, assigned to a colleague
(``add_follow_up``, ``mark_done``). Consent decides who automation and marketing may reach:
``marketing_audience`` never includes a lead or patient who withdrew their marketing consent,
and the automatic follow-ups (app/jobs/follow_ups.py) only concern leads who agreed to be
contacted. Functions flush, never commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterable

from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, or_, select

from app.extensions import db
from app.models.base import utcnow
from app.models.leads import (
    COMMUNICATION_CHANNELS,
    COMMUNICATION_DIRECTIONS,
    COMMUNICATION_OUTCOMES,
    Communication,
    FollowUp,
    Lead,
    LeadConsentChange,
)
from app.models.org import Branch
from app.models.patients import ConsentChange, Patient
from app.services import leads as leads_service
from app.services.appointments import day_bounds, local_time
from app.services.audit import current_actor
from app.services.errors import ClinicError

CHANNEL_LABELS = {
    "call": _l("Call"),
    "sms": _l("SMS"),
    "email": _l("E-mail"),
    "whatsapp": _l("WhatsApp"),
    "in_person": _l("In person"),
}
DIRECTION_LABELS = {"out": _l("Outgoing"), "in": _l("Incoming")}
OUTCOME_LABELS = {
    "reached": _l("Reached"),
    "no_answer": _l("No answer"),
    "left_message": _l("Left a message"),
    "busy": _l("Busy"),
    "wrong_number": _l("Wrong number"),
    "sent": _l("Sent"),
    "replied": _l("Replied"),
    "failed": _l("Failed"),
}
#: Stages after which a lead is no longer worked on.
CLOSED_STAGES = leads_service.CLOSED_STAGES
#: Outbound outcomes that mean the person now knows we called: a new lead becomes "contacted".
CONTACTED_OUTCOMES = ("reached", "left_message")
#: How far ahead of the clock a logged time may be (a slow clock on the desk's computer).
CLOCK_SKEW = timedelta(minutes=5)

assert set(CHANNEL_LABELS) == set(COMMUNICATION_CHANNELS)
assert set(DIRECTION_LABELS) == set(COMMUNICATION_DIRECTIONS)
assert set(OUTCOME_LABELS) == set(COMMUNICATION_OUTCOMES)


class CommunicationError(ClinicError):
    """A communication that cannot be logged as given."""


class FollowUpError(ClinicError):
    """A follow-up that cannot be added or changed as given."""


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _subject(
    record: Communication | FollowUp, error: type[ClinicError]
) -> tuple[Lead | None, Patient | None]:
    """The lead and patient a record is about (loaded from their ids when only those are set).

    :raises ClinicError: (``error``) when it names nobody, an unknown one, or a merged patient.
    """
    lead = record.lead or (db.session.get(Lead, record.lead_id) if record.lead_id else None)
    patient = record.patient or (
        db.session.get(Patient, record.patient_id) if record.patient_id else None
    )
    if (record.lead_id and lead is None) or (record.patient_id and patient is None):
        raise error(str(_l("The lead or patient was not found.")))
    if lead is None and patient is None:
        raise error(str(_l("Say who this is about: open it from a lead or a patient.")))
    if patient is not None and patient.merged_into_id is not None:
        raise error(str(_l("This patient's record was merged into another one: use that one.")))
    record.lead, record.patient = lead, patient
    return lead, patient


def _place(record: Communication | FollowUp, lead: Lead | None,
           branch_ids: Iterable[int] | None, error: type[ClinicError]) -> None:
    """Give the record its branch: the lead's, else the one chosen, else the user's only one.

    :raises ClinicError: (``error``) for a lead or branch outside ``branch_ids``, or no branch.
    """
    allowed = None if branch_ids is None else set(branch_ids)
    if lead is not None:
        if allowed is not None and lead.branch_id not in allowed:
            raise error(str(_l("This lead belongs to a branch you do not work at.")))
        record.branch_id = lead.branch_id
        record.branch = lead.branch
        return
    branch_id = record.branch.id if record.branch is not None else record.branch_id
    if branch_id is None and allowed is not None and len(allowed) == 1:
        branch_id = next(iter(allowed))
    if branch_id is None:
        raise error(str(_l("Choose the branch this belongs to.")))
    if allowed is not None and branch_id not in allowed:
        raise error(str(_l("Choose one of your own branches for this record.")))
    record.branch_id = branch_id
    record.branch = db.session.get(Branch, branch_id)


def _tidy(text: str | None) -> str | None:
    text = (text or "").replace("\r\n", "\n").strip()
    return text or None


def log_communication(comm: Communication, *, branch_ids: Iterable[int] | None = None,
                      now: datetime | None = None) -> Communication:
    """Log a call, text, e-mail, WhatsApp message or conversation with a lead or a patient.

    The communication belongs to the lead's branch; one about a patient alone belongs to the
    branch chosen (``comm.branch_id``), or the user's only branch. ``branch_ids`` are the
    branches the user works at (None: no check, for jobs). The time defaults to now and may
    not lie in the future; the staff member defaults to whoever is acting.

    Logging an outgoing communication that reached the person or left a message on a lead in
    stage "new" moves the lead to "contacted" (through ``leads.move_stage``, so the move is in
    its stage history).

    :raises CommunicationError: for an unknown channel, direction or outcome, nobody to be
        about, a merged patient, a lead or branch outside ``branch_ids``, or a future time.
    """
    now = now or utcnow()
    comm.direction = comm.direction or "out"  # the model's default, not yet applied
    if comm.channel not in COMMUNICATION_CHANNELS:
        raise CommunicationError(str(_l("Choose how you were in touch: call, SMS, e-mail, "
                                        "WhatsApp or in person.")))
    if comm.direction not in COMMUNICATION_DIRECTIONS:
        raise CommunicationError(str(_l("Choose whether it was incoming or outgoing.")))
    if comm.outcome not in COMMUNICATION_OUTCOMES:
        raise CommunicationError(str(_l("Choose the outcome.")))
    lead, _patient = _subject(comm, CommunicationError)
    _place(comm, lead, branch_ids, CommunicationError)
    comm.occurred_at = _aware(comm.occurred_at) if comm.occurred_at else now
    if comm.occurred_at > now + CLOCK_SKEW:
        raise CommunicationError(str(_l("A communication cannot be logged in the future.")))
    comm.summary = _tidy(comm.summary)
    if comm.staff_id is None and comm.staff is None:
        comm.staff_id = current_actor()[0]
    db.session.add(comm)
    if (
        lead is not None
        and lead.stage == "new"
        and comm.direction == "out"
        and comm.outcome in CONTACTED_OUTCOMES
    ):
        leads_service.move_stage(
            lead, "contacted", note=str(_l("Contacted: communication logged."))
        )
    db.session.flush()
    return comm


def check_communication(comm: Communication) -> Communication:
    """Validate an edited communication (channel, direction, outcome, summary; same rules).

    :raises CommunicationError: as ``log_communication``.
    """
    if (
        comm.channel not in COMMUNICATION_CHANNELS
        or comm.direction not in COMMUNICATION_DIRECTIONS
        or comm.outcome not in COMMUNICATION_OUTCOMES
    ):
        raise CommunicationError(
            str(_l("Choose the channel, direction and outcome from the lists."))
        )
    comm.summary = _tidy(comm.summary)
    return comm


def _split_follow_ups(follow_ups: list[FollowUp]) -> list[FollowUp]:
    """Open follow-ups first (soonest due first), then done ones (most recently done first)."""
    open_ = sorted((f for f in follow_ups if f.done_at is None),
                   key=lambda f: (_aware(f.due_at), f.id))
    done = sorted((f for f in follow_ups if f.done_at is not None),
                  key=lambda f: (_aware(f.done_at), f.id), reverse=True)
    return open_ + done


def for_lead(lead: Lead) -> tuple[list[Communication], list[FollowUp]]:
    """The lead's communications (newest first) and follow-ups (open first, then done)."""
    comms = list(db.session.scalars(
        select(Communication).where(Communication.lead_id == lead.id)
        .order_by(Communication.occurred_at.desc(), Communication.id.desc())
    ))
    follow_ups = list(db.session.scalars(select(FollowUp).where(FollowUp.lead_id == lead.id)))
    return comms, _split_follow_ups(follow_ups)


def _about_patient(model, patient: Patient):
    """Rows about the patient, or about a lead linked to (or converted into) the patient."""
    return or_(model.patient_id == patient.id,
               model.lead_id.in_(select(Lead.id).where(Lead.patient_id == patient.id)))


def for_patient(patient: Patient, branch_ids: Iterable[int]
                ) -> tuple[list[Communication], list[FollowUp]]:
    """The patient's communications and follow-ups at ``branch_ids``, as ``for_lead``.

    Those logged on a lead linked to the patient (or converted into them) count too: the
    lead's history stays with the patient.
    """
    branch_ids = list(branch_ids)
    comms = list(db.session.scalars(
        select(Communication)
        .where(_about_patient(Communication, patient), Communication.branch_id.in_(branch_ids))
        .order_by(Communication.occurred_at.desc(), Communication.id.desc())
    ))
    follow_ups = list(db.session.scalars(
        select(FollowUp)
        .where(_about_patient(FollowUp, patient), FollowUp.branch_id.in_(branch_ids))
    ))
    return comms, _split_follow_ups(follow_ups)


def refresh_next_follow_up(lead: Lead) -> None:
    """Keep ``lead.next_follow_up_at`` at its soonest open follow-up (None when none is open)."""
    db.session.flush()
    lead.next_follow_up_at = db.session.scalar(
        select(FollowUp.due_at)
        .where(FollowUp.lead_id == lead.id, FollowUp.done_at.is_(None))
        .order_by(FollowUp.due_at).limit(1)
    )


def add_follow_up(follow_up: FollowUp, *, branch_ids: Iterable[int] | None = None) -> FollowUp:
    """Add a follow-up task for a lead or a patient, due at a time, perhaps for a colleague.

    The branch is found as for communications. The assignee, when there is one, must work at
    that branch. A converted or lost lead takes no new follow-ups (follow the patient up, or
    reopen the lead).

    :raises FollowUpError: for nobody to be about, a merged patient, a closed lead, a lead or
        branch outside ``branch_ids``, no due time, or an assignee of another branch.
    """
    lead, _patient = _subject(follow_up, FollowUpError)
    if lead is not None and lead.stage in CLOSED_STAGES:
        raise FollowUpError(str(_l("This lead is closed: reopen it, or follow the patient up.")))
    _place(follow_up, lead, branch_ids, FollowUpError)
    if follow_up.due_at is None:
        raise FollowUpError(str(_l("Enter when the follow-up is due.")))
    follow_up.due_at = _aware(follow_up.due_at)
    check_assignee(follow_up)
    follow_up.note = _tidy(follow_up.note)
    db.session.add(follow_up)
    if lead is not None:
        refresh_next_follow_up(lead)
    db.session.flush()
    return follow_up


def check_assignee(follow_up: FollowUp) -> None:
    """The assignee (if any) works at the follow-up's branch.

    :raises FollowUpError: otherwise.
    """
    assignee = follow_up.assignee or (
        db.session.get(User, follow_up.assignee_id) if follow_up.assignee_id else None
    )
    if assignee is not None and follow_up.branch_id not in {b.id for b in assignee.branches}:
        raise FollowUpError(str(_l("Assign the follow-up to someone who works at its branch.")))


def update_follow_up(follow_up: FollowUp) -> FollowUp:
    """Save a changed due time, assignee or note (the same rules as ``add_follow_up``).

    :raises FollowUpError: for no due time or an assignee of another branch.
    """
    if follow_up.due_at is None:
        raise FollowUpError(str(_l("Enter when the follow-up is due.")))
    follow_up.due_at = _aware(follow_up.due_at)
    check_assignee(follow_up)
    follow_up.note = _tidy(follow_up.note)
    if follow_up.lead is not None:
        refresh_next_follow_up(follow_up.lead)
    return follow_up


def mark_done(follow_up: FollowUp, done: bool, *, now: datetime | None = None) -> FollowUp:
    """Mark a follow-up done (when and by whom) or open again; a no-op when already so."""
    if done and follow_up.done_at is None:
        follow_up.done_at = now or utcnow()
        follow_up.done_by_id = current_actor()[0]
    elif not done and follow_up.done_at is not None:
        follow_up.done_at = None
        follow_up.done_by_id = None
    if follow_up.lead is not None:
        refresh_next_follow_up(follow_up.lead)
    db.session.flush()
    return follow_up


def is_overdue(follow_up: FollowUp, now: datetime | None = None) -> bool:
    return follow_up.done_at is None and _aware(follow_up.due_at) < (now or utcnow())


def my_follow_ups(user: User, now: datetime | None = None,
                  branch_ids: Iterable[int] | None = None) -> tuple[list[FollowUp], list[FollowUp]]:
    """``user``'s open follow-ups: (overdue, due later today), each soonest first.

    "Today" ends at midnight of each follow-up's own branch. ``branch_ids`` keeps to the
    branches the user may see (default: the branches they work at).
    """
    now = now or utcnow()
    branch_ids = list(branch_ids if branch_ids is not None else (b.id for b in user.branches))
    ends = {}
    for branch in db.session.scalars(select(Branch).where(Branch.id.in_(branch_ids))):
        ends[branch.id] = day_bounds(branch, local_time(branch, now).date())[1]
    if not ends:
        return [], []
    rows = db.session.scalars(
        select(FollowUp)
        .where(
            FollowUp.assignee_id == user.id,
            FollowUp.done_at.is_(None),
            FollowUp.branch_id.in_(list(ends)),
            FollowUp.due_at < max(ends.values()),
        )
        .order_by(FollowUp.due_at, FollowUp.id)
    )
    overdue, today = [], []
    for follow_up in rows:
        due = _aware(follow_up.due_at)
        if due < now:
            overdue.append(follow_up)
        elif due < ends[follow_up.branch_id]:
            today.append(follow_up)
    return overdue, today


def _no_later_withdrawal(change_model, owner_column, owner_id_column, kind: str):
    """No consent change of ``kind`` for the row says "withdrawn" as its latest word.

    The consent flag is the rule; this guards against a flag set without its history (e.g. a
    direct edit) after the person withdrew.
    """
    latest = (
        select(change_model.granted)
        .where(owner_column == owner_id_column, change_model.kind == kind)
        .order_by(change_model.changed_at.desc(), change_model.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return or_(latest.is_(None), latest.is_(True))


def marketing_audience(branch_ids: Iterable[int]) -> tuple[list[Lead], list[Patient]]:
    """Who marketing may reach at ``branch_ids``: (leads, patients) with marketing consent.

    Leads of these branches that are not converted (the patient is addressed instead) and
    patients registered at these branches (not merged duplicates), both with marketing
    consent and no withdrawal as their latest recorded word. Someone who withdrew is never
    included.
    """
    branch_ids = list(branch_ids)
    leads = list(db.session.scalars(
        select(Lead)
        .where(
            Lead.branch_id.in_(branch_ids),
            Lead.stage != "converted",
            Lead.consent_marketing.is_(True),
            _no_later_withdrawal(
                LeadConsentChange, LeadConsentChange.lead_id, Lead.id, "marketing"
            ),
        )
        .order_by(Lead.id)
    ))
    patients = list(db.session.scalars(
        select(Patient)
        .where(
            Patient.registered_branch_id.in_(branch_ids),
            Patient.merged_into_id.is_(None),
            Patient.consent_marketing.is_(True),
            _no_later_withdrawal(ConsentChange, ConsentChange.patient_id, Patient.id, "marketing"),
        )
        .order_by(Patient.id)
    ))
    return leads, patients


def leads_needing_follow_up(quiet_since: datetime) -> list[Lead]:
    """Open leads who agreed to be contacted, with no open follow-up and no communication
    since ``quiet_since``: the automatic follow-ups' candidates.

    On PostgreSQL the leads are locked (others skipped), so two runs at once do not both
    create a follow-up for the same lead.
    """
    open_follow_up = exists().where(FollowUp.lead_id == Lead.id, FollowUp.done_at.is_(None))
    recent = exists().where(Communication.lead_id == Lead.id,
                            Communication.occurred_at >= quiet_since)
    query = (
        select(Lead)
        .where(
            Lead.stage.not_in(CLOSED_STAGES),
            Lead.consent_contact.is_(True),
            ~open_follow_up,
            ~recent,
        )
        .order_by(Lead.id)
    )
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Lead, skip_locked=True)
    return list(db.session.scalars(query))


def create_automatic_follow_ups(quiet_hours: int, now: datetime | None = None) -> list[FollowUp]:
    """An automatic follow-up, due now, for each lead that has gone quiet for ``quiet_hours``.

    Assigned to the lead's owner when they still work at the lead's branch, else to nobody
    (the branch's desk picks it up). Never for a lead without contact consent, nor a converted
    or lost one; never a second one while one is open.
    """
    now = now or utcnow()
    created = []
    note = str(_l("No contact for %(hours)s hours: get in touch.", hours=quiet_hours))
    for lead in leads_needing_follow_up(now - timedelta(hours=quiet_hours)):
        owner = lead.owner
        works_there = owner is not None and lead.branch_id in {b.id for b in owner.branches}
        follow_up = FollowUp(
            lead=lead, branch_id=lead.branch_id, due_at=now, is_automatic=True,
            assignee_id=owner.id if works_there else None, note=note,
        )
        db.session.add(follow_up)
        created.append(follow_up)
        refresh_next_follow_up(lead)
    db.session.flush()
    return created
