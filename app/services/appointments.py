"""Appointments: booking, moving, the status life-cycle, walk-ins and the doctors' free time.

A booking must fall inside the doctor's working hours at the branch (local time, breaks
excluded), not on the doctor's leave or the branch's holidays, not in the past, and must not
overlap another live appointment of the same doctor in any branch. On PostgreSQL the exclusion
constraint ``ex_appointment_doctor_overlap`` enforces the last rule however many requests race;
the check here runs first on every database so the user reads a clear message. No message says
anything about the other booking.

Every function flushes and never commits: the caller commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from flask_appbuilder.security.sqla.models import Role, User
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.base import utcnow
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import (
    RELEASED_STATUSES,
    Appointment,
    AppointmentChange,
    DoctorLeave,
    Holiday,
    Service,
    WorkingHours,
)
from app.security.policy import DOCTOR
from app.security.scoping import role_names
from app.services.audit import current_actor
from app.services.errors import ClinicError

#: The database constraint that makes a double booking impossible on PostgreSQL.
OVERLAP_CONSTRAINT = "ex_appointment_doctor_overlap"
#: Free slots start every this many minutes.
SLOT_STEP_MIN = 15
DEFAULT_DURATION_MIN = 15
#: A booking may start this long ago (the desk books "now" while the patient sits down).
PAST_GRACE = timedelta(minutes=5)
#: Walk-ins start on a multiple of this many minutes.
WALK_IN_ROUNDING_MIN = 5

APPOINTMENT_STATUS_LABELS = {
    "booked": _l("Booked"),
    "confirmed": _l("Confirmed"),
    "arrived": _l("Arrived"),
    "in_consultation": _l("In consultation"),
    "completed": _l("Completed"),
    "cancelled": _l("Cancelled"),
    "no_show": _l("No-show"),
}
#: Where each status may go next; completed, cancelled and no-show are final.
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    "booked": frozenset({"confirmed", "arrived", "cancelled", "no_show"}),
    "confirmed": frozenset({"arrived", "cancelled", "no_show"}),
    "arrived": frozenset({"in_consultation", "completed", "cancelled"}),
    "in_consultation": frozenset({"completed"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
    "no_show": frozenset(),
}
#: Statuses whose time may still be moved.
MOVABLE_STATUSES = frozenset({"booked", "confirmed"})


class AppointmentError(ClinicError):
    """A booking, move or status change the rules refuse."""


class SlotUnavailableError(AppointmentError):
    """The doctor cannot see a patient then (busy, off duty, on leave, a holiday, or past)."""


class AppointmentStatusError(AppointmentError):
    """A status change the life-cycle does not allow, or a cancellation without a reason."""


@dataclass
class DaySchedule:
    """A doctor's day at one branch: working intervals in local time, breaks removed."""

    day: date
    intervals: list[tuple[time, time]] = field(default_factory=list)
    is_on_leave: bool = False
    holiday: str | None = None

    @property
    def is_working(self) -> bool:
        return bool(self.intervals) and not self.is_on_leave and self.holiday is None


# Time --------------------------------------------------------------------------------------------


def branch_zone(branch: Branch) -> ZoneInfo:
    return ZoneInfo(branch.time_zone)


def local_time(branch: Branch, when: datetime) -> datetime:
    """``when`` (aware, or naive UTC) as the branch's wall-clock time."""
    return _aware(when).astimezone(branch_zone(branch))


def from_local(branch: Branch, when: datetime) -> datetime:
    """A naive wall-clock time at the branch as an aware UTC datetime."""
    return when.replace(tzinfo=branch_zone(branch)).astimezone(timezone.utc)


def day_bounds(branch: Branch, day: date) -> tuple[datetime, datetime]:
    """The branch-local ``day`` as a half-open UTC interval (start, end)."""
    start = from_local(branch, datetime.combine(day, time.min))
    end = from_local(branch, datetime.combine(day + timedelta(days=1), time.min))
    return start, end


def _aware(when: datetime) -> datetime:
    """``when`` in UTC; a naive value is UTC already (SQLite hands stored times back naive)."""
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def _now(now: datetime | None = None) -> datetime:
    return _aware(now) if now is not None else utcnow()


# Who ---------------------------------------------------------------------------------------------


def doctor_name(doctor: User) -> str:
    return f"{doctor.first_name} {doctor.last_name}".strip() or doctor.username


def is_doctor(user: User | None) -> bool:
    return user is not None and DOCTOR in role_names(user)


def available_doctors(branch: Branch) -> list[User]:
    """Active users holding the Doctor role who work at ``branch``, by name."""
    query = (
        select(User)
        .where(
            User.active.is_(True),
            User.roles.any(Role.name == DOCTOR),
            User.branches.any(Branch.id == branch.id),
        )
        .order_by(User.first_name, User.last_name)
    )
    return list(db.session.scalars(query))


def _check_parties(patient: Patient, doctor: User, branch: Branch) -> None:
    """:raises AppointmentError: for a merged patient, a non-doctor or a doctor of another branch."""
    if patient is None or doctor is None or branch is None:
        raise AppointmentError(str(_l("Choose a patient, a doctor and a branch.")))
    if patient.merged_into_id is not None:
        raise AppointmentError(
            str(_l("This patient's record was merged into another one: book the surviving record."))
        )
    if not is_doctor(doctor) or not doctor.active:
        raise AppointmentError(str(_l("Choose a doctor for this appointment.")))
    if branch.id not in {b.id for b in doctor.branches}:
        raise AppointmentError(
            str(_l("%(doctor)s does not work at %(branch)s.", doctor=doctor_name(doctor),
                   branch=branch.name))
        )


# The doctor's day --------------------------------------------------------------------------------


def on_leave(doctor: User, day: date) -> bool:
    return db.session.scalar(
        select(DoctorLeave.id).where(
            DoctorLeave.doctor_id == doctor.id,
            DoctorLeave.starts_on <= day,
            DoctorLeave.ends_on >= day,
        ).limit(1)
    ) is not None


def holiday_on(branch: Branch, day: date) -> str | None:
    return db.session.scalar(
        select(Holiday.name).where(Holiday.branch_id == branch.id, Holiday.day == day)
    )


def working_intervals(doctor: User, branch: Branch, day: date) -> list[tuple[time, time]]:
    """The doctor's rostered hours at the branch on ``day``'s weekday, the break cut out."""
    rows = db.session.scalars(
        select(WorkingHours)
        .where(
            WorkingHours.doctor_id == doctor.id,
            WorkingHours.branch_id == branch.id,
            WorkingHours.weekday == day.weekday(),
        )
        .order_by(WorkingHours.start_time)
    )
    intervals = []
    for row in rows:
        if row.break_start is not None and row.break_end is not None:
            intervals += [(row.start_time, row.break_start), (row.break_end, row.end_time)]
        else:
            intervals.append((row.start_time, row.end_time))
    return [(start, end) for start, end in intervals if end > start]


def doctor_day(doctor: User, branch: Branch, day: date) -> DaySchedule:
    """When the doctor works at the branch on ``day``, and whether leave or a holiday cancels it."""
    return DaySchedule(
        day=day,
        intervals=working_intervals(doctor, branch, day),
        is_on_leave=on_leave(doctor, day),
        holiday=holiday_on(branch, day),
    )


def _busy(doctor: User, starts_at: datetime, ends_at: datetime, ignore_id: int | None = None):
    """The doctor's live appointments (any branch) overlapping [starts_at, ends_at)."""
    query = select(Appointment).where(
        Appointment.doctor_id == doctor.id,
        Appointment.status.not_in(RELEASED_STATUSES),
        Appointment.starts_at < ends_at,
        Appointment.ends_at > starts_at,
    )
    if ignore_id is not None:
        query = query.where(Appointment.id != ignore_id)
    return list(db.session.scalars(query.order_by(Appointment.starts_at)))


def _unavailable(doctor: User) -> SlotUnavailableError:
    return SlotUnavailableError(
        str(_l("%(doctor)s is not available at that time. Choose another slot.",
               doctor=doctor_name(doctor)))
    )


def _check_roster(doctor: User, branch: Branch, starts_at: datetime, ends_at: datetime) -> None:
    """:raises SlotUnavailableError: outside working hours, in a break, on leave or a holiday."""
    start, end = local_time(branch, starts_at), local_time(branch, ends_at)
    day = start.date()
    name = doctor_name(doctor)
    if on_leave(doctor, day):
        raise SlotUnavailableError(
            str(_l("%(doctor)s is on leave that day. Choose another day or doctor.", doctor=name))
        )
    holiday = holiday_on(branch, day)
    if holiday is not None:
        raise SlotUnavailableError(
            str(_l("%(branch)s is closed that day (%(holiday)s). Choose another day.",
                   branch=branch.name, holiday=holiday))
        )
    fits = end.date() == day and any(
        open_at <= start.time() and end.time() <= close_at
        for open_at, close_at in working_intervals(doctor, branch, day)
    )
    if not fits:
        raise SlotUnavailableError(
            str(_l("%(doctor)s does not see patients at %(branch)s at that time (working hours "
                   "and breaks). Choose another slot.", doctor=name, branch=branch.name))
        )


def _check_slot(
    doctor: User, branch: Branch, starts_at: datetime, ends_at: datetime, *,
    ignore_id: int | None = None, roster: bool = True, now: datetime | None = None,
) -> None:
    """:raises SlotUnavailableError: when the doctor cannot take [starts_at, ends_at) then."""
    with db.session.no_autoflush:  # nothing half-changed reaches the database before the check
        if roster:
            if starts_at < _now(now) - PAST_GRACE:
                raise SlotUnavailableError(
                    str(_l("That time has already passed. Choose a time from now on."))
                )
            _check_roster(doctor, branch, starts_at, ends_at)
        if _busy(doctor, starts_at, ends_at, ignore_id=ignore_id):
            raise _unavailable(doctor)


@contextmanager
def _overlap_guard(doctor: User) -> Iterator[None]:
    """Make the changes in the block and flush them in a savepoint; the database's refusal of
    an overlap (a simultaneous booking took the time first) becomes the usual message, and the
    caller's transaction stays usable.

    :raises SlotUnavailableError: when the exclusion constraint refuses the flush.
    """
    try:
        with db.session.begin_nested():
            yield
            db.session.flush()
    except IntegrityError as exc:
        diag = getattr(exc.orig, "diag", None)
        if getattr(diag, "constraint_name", None) == OVERLAP_CONSTRAINT:
            raise _unavailable(doctor) from None
        raise


def _record(appointment: Appointment, kind: str, **values) -> AppointmentChange:
    change = AppointmentChange(
        appointment=appointment, kind=kind, changed_by_id=current_actor()[0], changed_at=utcnow(),
        **values,
    )
    db.session.add(change)
    return change


def _duration(duration_min: int | None, service: Service | None) -> int:
    if duration_min:
        return int(duration_min)
    if service is not None and service.default_duration_min:
        return service.default_duration_min
    return DEFAULT_DURATION_MIN


def _check_service(service: Service | None) -> None:
    if service is not None and not service.is_active:
        raise AppointmentError(str(_l("This service is no longer offered. Choose another one.")))


def _check_duration(minutes: int) -> None:
    if not 5 <= minutes <= 480:
        raise AppointmentError(str(_l("The duration must be between 5 and 480 minutes.")))


# Booking -----------------------------------------------------------------------------------------


def place_appointment(appointment: Appointment, *, now: datetime | None = None) -> Appointment:
    """Check and save a new appointment whose patient, doctor, branch and start are set.

    ``book_appointment`` builds one and calls this; the REST API calls it on the record it
    loaded. Fills in the duration, end, status and who booked it; records the "booked" step.

    :raises AppointmentError: for a merged patient, a non-doctor, a doctor of another branch or
        a service no longer offered.
    :raises SlotUnavailableError: when the doctor is not available then.
    """
    patient, doctor, branch = _resolve(appointment)
    _check_parties(patient, doctor, branch)
    _check_service(appointment.service)
    appointment.starts_at = _aware(appointment.starts_at)
    appointment.duration_min = _duration(appointment.duration_min, appointment.service)
    _check_duration(appointment.duration_min)
    appointment.ends_at = appointment.starts_at + timedelta(minutes=appointment.duration_min)
    appointment.status = appointment.status or "booked"
    appointment.is_walk_in = bool(appointment.is_walk_in)
    if appointment.booked_by_id is None:
        appointment.booked_by_id = current_actor()[0]
    _check_slot(doctor, branch, appointment.starts_at, appointment.ends_at,
                roster=not appointment.is_walk_in, now=now)
    with _overlap_guard(doctor):
        db.session.add(appointment)
    _record(
        appointment, "booked", to_status=appointment.status, to_starts_at=appointment.starts_at,
        to_doctor_id=doctor.id, note=str(_l("Walk-in")) if appointment.is_walk_in else None,
    )
    db.session.flush()
    return appointment


def _resolve(appointment: Appointment) -> tuple[Patient, User, Branch]:
    patient = appointment.patient or (
        db.session.get(Patient, appointment.patient_id) if appointment.patient_id else None
    )
    doctor = appointment.doctor or (
        db.session.get(User, appointment.doctor_id) if appointment.doctor_id else None
    )
    branch = appointment.branch or (
        db.session.get(Branch, appointment.branch_id) if appointment.branch_id else None
    )
    return patient, doctor, branch


def book_appointment(
    *,
    patient: Patient,
    doctor: User,
    branch: Branch,
    starts_at: datetime,
    duration_min: int | None = None,
    service: Service | None = None,
    reason: str | None = None,
    notes: str | None = None,
    is_walk_in: bool = False,
) -> Appointment:
    """Book ``patient`` with ``doctor`` at ``branch`` from ``starts_at`` (timezone-aware).

    The duration defaults to the service's, else 15 minutes.

    :raises AppointmentError: see :func:`place_appointment`.
    :raises SlotUnavailableError: when the doctor is not available then.
    """
    appointment = Appointment(
        patient=patient, doctor=doctor, branch=branch, starts_at=starts_at,
        duration_min=duration_min, service=service, reason=reason, notes=notes,
        is_walk_in=is_walk_in, status="booked",
    )
    try:
        return place_appointment(appointment)
    except ClinicError:
        if appointment in db.session:
            db.session.expunge(appointment)
        raise


def reschedule_appointment(
    appointment: Appointment,
    *,
    starts_at: datetime,
    doctor: User | None = None,
    duration_min: int | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Move a booked or confirmed appointment (to another time, doctor or length), keeping history.

    :raises AppointmentStatusError: when the appointment is no longer booked or confirmed.
    :raises SlotUnavailableError: when the doctor is not available at the new time.
    """
    if appointment.status not in MOVABLE_STATUSES:
        raise AppointmentStatusError(
            str(_l("Only booked or confirmed appointments can be moved."))
        )
    old_start, old_doctor_id = appointment.starts_at, appointment.doctor_id
    doctor = doctor or appointment.doctor
    _check_parties(appointment.patient, doctor, appointment.branch)
    minutes = int(duration_min or appointment.duration_min)
    _check_duration(minutes)
    starts_at = _aware(starts_at)
    if (starts_at, doctor.id, minutes) == (_aware(old_start), old_doctor_id, appointment.duration_min):
        return appointment
    ends_at = starts_at + timedelta(minutes=minutes)
    _check_slot(doctor, appointment.branch, starts_at, ends_at, ignore_id=appointment.id, now=now)
    with _overlap_guard(doctor):
        appointment.doctor = doctor
        appointment.starts_at = starts_at
        appointment.duration_min = minutes
        appointment.ends_at = ends_at
    _record(
        appointment, "rescheduled", from_starts_at=old_start, to_starts_at=starts_at,
        from_doctor_id=old_doctor_id, to_doctor_id=doctor.id, note=note,
    )
    db.session.flush()
    return appointment


def update_details(
    appointment: Appointment, *, service: Service | None, reason: str | None, notes: str | None,
) -> Appointment:
    """Change what an appointment is for (service, reason, notes); an "edited" step when it changed.

    :raises AppointmentError: for a service no longer offered (unless it is the current one).
    """
    if service is not None and service.id != appointment.service_id:
        _check_service(service)
    changed = (
        (service.id if service else None) != appointment.service_id
        or (reason or None) != appointment.reason
        or (notes or None) != appointment.notes
    )
    appointment.service = service
    appointment.reason = reason or None
    appointment.notes = notes or None
    if changed:
        _record(appointment, "edited")
    db.session.flush()
    return appointment


# Status ------------------------------------------------------------------------------------------


def allowed_statuses(appointment: Appointment) -> list[str]:
    """The statuses this appointment may move to, in life-cycle order."""
    allowed = STATUS_TRANSITIONS.get(appointment.status, frozenset())
    return [status for status in APPOINTMENT_STATUS_LABELS if status in allowed]


def change_status(
    appointment: Appointment, to_status: str, *, reason: str | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Move the appointment along its life-cycle; "arrived" checks the patient in.

    :raises AppointmentStatusError: for a move the life-cycle does not allow, or a cancellation
        without a reason.
    """
    if to_status not in STATUS_TRANSITIONS.get(appointment.status, frozenset()):
        raise AppointmentStatusError(
            str(_l("A %(from)s appointment cannot become %(to)s.",
                   **{"from": str(APPOINTMENT_STATUS_LABELS.get(appointment.status, appointment.status)).lower(),
                      "to": str(APPOINTMENT_STATUS_LABELS.get(to_status, to_status)).lower()}))
        )
    reason = (reason or "").strip() or None
    if to_status == "cancelled":
        if reason is None:
            raise AppointmentStatusError(str(_l("Give a reason for cancelling.")))
        appointment.cancel_reason = reason[:200]
    if to_status == "arrived":
        appointment.checked_in_at = _now(now)
    from_status = appointment.status
    appointment.status = to_status
    _record(
        appointment, "status", from_status=from_status, to_status=to_status,
        note=reason[:200] if reason else None,
    )
    db.session.flush()
    return appointment


def check_in(appointment: Appointment) -> Appointment:
    """The patient has arrived.

    :raises AppointmentStatusError: when the appointment cannot be checked in.
    """
    return change_status(appointment, "arrived")


# Walk-ins and free time --------------------------------------------------------------------------


def _round_down(branch: Branch, when: datetime) -> datetime:
    local = local_time(branch, when)
    local = local.replace(minute=local.minute - local.minute % WALK_IN_ROUNDING_MIN, second=0,
                          microsecond=0)
    return local.astimezone(timezone.utc)


def next_free_moment(doctor: User, start: datetime, minutes: int) -> datetime:
    """The earliest time from ``start`` when the doctor is free for ``minutes`` (any branch)."""
    moment = start
    while True:
        clashes = _busy(doctor, moment, moment + timedelta(minutes=minutes))
        if not clashes:
            return moment
        moment = max(_aware(a.ends_at) for a in clashes)


def register_walk_in(
    *,
    patient: Patient,
    doctor: User,
    branch: Branch,
    service: Service | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> Appointment:
    """A patient at the desk without a booking: booked from now and checked in at once.

    Starts now (rounded down to 5 minutes), or at the doctor's next free moment today when the
    doctor is busy. Working hours do not apply (the patient is already here); leave and other
    appointments do.

    :raises AppointmentError: see :func:`place_appointment`.
    :raises SlotUnavailableError: when the doctor is on leave or has no free moment left today.
    """
    now = _now(now)
    _check_parties(patient, doctor, branch)
    minutes = _duration(None, service)
    today = local_time(branch, now).date()
    if on_leave(doctor, today):
        raise SlotUnavailableError(
            str(_l("%(doctor)s is on leave today. Choose another doctor.",
                   doctor=doctor_name(doctor)))
        )
    start = next_free_moment(doctor, _round_down(branch, now), minutes)
    if local_time(branch, start + timedelta(minutes=minutes) - timedelta(microseconds=1)).date() != today:
        raise _unavailable(doctor)
    appointment = Appointment(
        patient=patient, doctor=doctor, branch=branch, starts_at=start, duration_min=minutes,
        service=service, reason=reason, is_walk_in=True, status="arrived", checked_in_at=now,
    )
    try:
        return place_appointment(appointment, now=now)
    except ClinicError:
        if appointment in db.session:
            db.session.expunge(appointment)
        raise


def free_slots(
    doctor: User, branch: Branch, day: date, duration_min: int, *, now: datetime | None = None,
    step_min: int = SLOT_STEP_MIN,
) -> list[datetime]:
    """Aware UTC starts on ``day`` (branch-local) when the doctor could see a patient for
    ``duration_min`` minutes: inside working hours, not past, clear of other appointments."""
    schedule = doctor_day(doctor, branch, day)
    if not schedule.is_working:
        return []
    day_start, day_end = day_bounds(branch, day)
    booked = [
        (_aware(a.starts_at), _aware(a.ends_at)) for a in _busy(doctor, day_start, day_end)
    ]
    earliest = _now(now) - PAST_GRACE
    length, step = timedelta(minutes=duration_min), timedelta(minutes=step_min)
    slots = []
    for open_at, close_at in schedule.intervals:
        local = datetime.combine(day, open_at)
        close = datetime.combine(day, close_at)
        while local + length <= close:
            start = from_local(branch, local)
            end = start + length
            if start >= earliest and not any(s < end and e > start for s, e in booked):
                slots.append(start)
            local += step
    return slots


def edit_appointment(
    appointment: Appointment,
    *,
    starts_at: datetime,
    doctor: User,
    duration_min: int | None,
    service: Service | None,
    reason: str | None,
    notes: str | None,
    note: str | None = None,
) -> Appointment:
    """Save an edit form: a move when the time, doctor or length changed, then the details.

    :raises AppointmentStatusError: for a move of an appointment no longer booked or confirmed.
    :raises SlotUnavailableError: when the doctor is not available at the new time.
    :raises AppointmentError: for a service no longer offered.
    """
    minutes = int(duration_min or appointment.duration_min)
    moved = (
        _aware(starts_at) != _aware(appointment.starts_at)
        or doctor.id != appointment.doctor_id
        or minutes != appointment.duration_min
    )
    if moved:
        reschedule_appointment(
            appointment, starts_at=starts_at, doctor=doctor, duration_min=minutes, note=note
        )
    return update_details(appointment, service=service, reason=reason, notes=notes)
