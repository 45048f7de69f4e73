"""Consultations: a visit starts from its appointment, records vitals in the units doctors use,
and completes the appointment.

Vitals arrive as typed (text or numbers) with the unit the doctor chose; they are checked
against plausible ranges *in that unit*, so the message speaks the doctor's unit, and stored
in SI (°C, kg, cm) with the unit remembered for reading back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable, Mapping

from flask import g, has_request_context
from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models.base import utcnow
from app.models.consultations import Consultation
from app.models.scheduling import Appointment
from app.services.appointments import change_status
from app.services.errors import ClinicError

#: How long after completing a visit its doctor may still change the record.
EDIT_WINDOW = timedelta(hours=24)
#: Appointment statuses a visit cannot start from.
CLOSED_STATUSES = ("cancelled", "no_show")
#: Free-text parts of a consultation the doctor writes.
TEXT_FIELDS = ("complaints", "examination", "diagnosis", "diagnosis_code", "plan")
DIAGNOSIS_CODE_MAX = 20
ONE_DECIMAL = Decimal("0.1")
#: Stored SI values keep two decimals, so a value typed in °F, lb or in reads back as typed.
STORED_PRECISION = Decimal("0.01")


class ConsultationError(ClinicError):
    """A consultation rule refused the request."""


class ConsultationNotAllowedError(ConsultationError):
    """Someone other than the visit's doctor tried to start, change or complete it."""


class ConsultationStatusError(ConsultationError):
    """The appointment or the visit is in a state that does not allow the step."""


class VitalsError(ConsultationError):
    """One or more vitals are missing their pair, not numbers, or outside a plausible range.

    ``errors`` maps each input field (``temperature``, ``bp_systolic`` …) to its message.
    """

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(str(_l("Check the vitals: %(problems)s", problems=" ".join(self.errors.values()))))


# Units -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """A vital with units: the model column (in the SI unit), the unit column and each unit's
    plausible range and conversion to SI."""

    column: str
    unit_column: str
    si_unit: str
    ranges: Mapping[str, tuple[Decimal, Decimal]]
    to_si: Mapping[str, Callable[[Decimal], Decimal]]
    from_si: Mapping[str, Callable[[Decimal], Decimal]]
    message: Any  # lazy string with %(low)s, %(high)s, %(unit)s


def _same(value: Decimal) -> Decimal:
    return value


LB_IN_KG = Decimal("0.45359237")
CM_IN_INCH = Decimal("2.54")

MEASURES: dict[str, Measure] = {
    "temperature": Measure(
        "temperature_c", "temperature_unit", "C",
        {"C": (Decimal(30), Decimal(45)), "F": (Decimal(86), Decimal(113))},
        {"C": _same, "F": lambda f: (f - 32) * 5 / 9},
        {"C": _same, "F": lambda c: c * 9 / 5 + 32},
        _l("Enter a temperature between %(low)s and %(high)s %(unit)s."),
    ),
    "weight": Measure(
        "weight_kg", "weight_unit", "kg",
        {"kg": (Decimal("0.2"), Decimal(500)), "lb": (Decimal("0.5"), Decimal(1100))},
        {"kg": _same, "lb": lambda lb: lb * LB_IN_KG},
        {"kg": _same, "lb": lambda kg: kg / LB_IN_KG},
        _l("Enter a weight between %(low)s and %(high)s %(unit)s."),
    ),
    "height": Measure(
        "height_cm", "height_unit", "cm",
        {"cm": (Decimal(20), Decimal(280)), "in": (Decimal(8), Decimal(110))},
        {"cm": _same, "in": lambda inches: inches * CM_IN_INCH},
        {"cm": _same, "in": lambda cm: cm / CM_IN_INCH},
        _l("Enter a height between %(low)s and %(high)s %(unit)s."),
    ),
}
#: How each unit reads on screen.
UNIT_LABELS = {"C": "°C", "F": "°F", "kg": "kg", "lb": "lb", "cm": "cm", "in": "in"}


@dataclass(frozen=True)
class Count:
    """A whole-number vital: its column and plausible range (the database checks the same)."""

    column: str
    low: int
    high: int
    message: Any


COUNTS: dict[str, Count] = {
    "bp_systolic": Count(
        "bp_systolic", 50, 300, _l("Enter a systolic pressure between %(low)s and %(high)s mmHg.")
    ),
    "bp_diastolic": Count(
        "bp_diastolic", 20, 200, _l("Enter a diastolic pressure between %(low)s and %(high)s mmHg.")
    ),
    "pulse_bpm": Count(
        "pulse_bpm", 20, 250, _l("Enter a pulse between %(low)s and %(high)s beats per minute.")
    ),
    "spo2_percent": Count(
        "spo2_percent", 50, 100, _l("Enter an SpO₂ between %(low)s and %(high)s %%.")
    ),
}
#: Every input field of the vitals (values and units), as forms and the API name them.
VITAL_INPUTS = (
    *[name for measure in MEASURES for name in (measure, f"{measure}_unit")],
    *COUNTS,
)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value: Any) -> Decimal | None:
    """A typed number (``"38,5"`` reads as 38.5); None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip().replace(",", "."))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"


def si_value(name: str, value: Any, unit: str) -> Decimal:
    """The value of measure ``name`` typed in ``unit``, converted to SI and rounded as stored.

    :raises VitalsError: for an unknown unit, a non-number or an implausible value.
    """
    measure = MEASURES[name]
    if unit not in measure.ranges:
        raise VitalsError({name: str(_l("Choose a unit."))})
    low, high = measure.ranges[unit]
    number = _number(value)
    if number is None or not low <= number <= high:
        raise VitalsError(
            {name: str(measure.message % {"low": _fmt(low), "high": _fmt(high),
                                          "unit": UNIT_LABELS[unit]})}
        )
    return measure.to_si[unit](number).quantize(STORED_PRECISION, rounding=ROUND_HALF_UP)


def shown_value(name: str, si: Decimal | float | None, unit: str) -> Decimal | None:
    """A stored SI value of measure ``name`` in ``unit`` (one decimal), as it was entered."""
    if si is None:
        return None
    measure = MEASURES[name]
    convert = measure.from_si.get(unit, _same)
    return convert(Decimal(str(si))).quantize(ONE_DECIMAL, rounding=ROUND_HALF_UP)


def read_vitals(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check the vitals present in ``values`` and return the model's column values.

    A blank value clears that vital. A unit without its value keeps the unit. Every problem is
    reported at once, keyed by input field.

    :raises VitalsError: with a message per bad field.
    """
    columns: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, measure in MEASURES.items():
        unit_key = f"{name}_unit"
        unit = values.get(unit_key)
        if unit_key in values and not _blank(unit):
            if unit not in measure.ranges:
                errors[name] = str(_l("Choose a unit."))
                continue
            columns[measure.unit_column] = unit
        if name not in values:
            continue
        if _blank(values[name]):
            columns[measure.column] = None
            continue
        try:
            columns[measure.column] = si_value(name, values[name], unit or measure.si_unit)
        except VitalsError as exc:
            errors.update(exc.errors)
    for name, count in COUNTS.items():
        if name not in values:
            continue
        if _blank(values[name]):
            columns[count.column] = None
            continue
        number = _number(values[name])
        if number is None or number != number.to_integral_value() or not count.low <= number <= count.high:
            errors[name] = str(count.message % {"low": count.low, "high": count.high})
            continue
        columns[count.column] = int(number)
    if errors:
        raise VitalsError(errors)
    return columns


def _check_pressure(consultation: Consultation, columns: Mapping[str, Any]) -> None:
    """Both blood pressure values or neither, the systolic above the diastolic.

    :raises VitalsError: naming the field to correct.
    """
    systolic = columns.get("bp_systolic", consultation.bp_systolic)
    diastolic = columns.get("bp_diastolic", consultation.bp_diastolic)
    if (systolic is None) != (diastolic is None):
        missing = "bp_diastolic" if diastolic is None else "bp_systolic"
        raise VitalsError({missing: str(_l("Enter both blood pressure values, systolic and diastolic."))})
    if systolic is not None and systolic <= diastolic:
        raise VitalsError(
            {"bp_systolic": str(_l("The systolic pressure must be higher than the diastolic."))}
        )


# Who and when ----------------------------------------------------------------------------------


def acting_user(user: User | None = None) -> User | None:
    """``user``, else whoever is signed in (FAB sets ``g.user`` for sessions and API tokens)."""
    if user is not None:
        return user
    return g.get("user") if has_request_context() else None


def name_of(user: User) -> str:
    return f"{user.first_name} {user.last_name}".strip() or user.username


def as_utc(when: datetime) -> datetime:
    """An aware UTC time; a naive one is UTC already (SQLite hands stored times back naive)."""
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _check_doctor(consultation: Consultation, user: User | None, doing: Any) -> None:
    if user is None or user.id != consultation.doctor_id:
        raise ConsultationNotAllowedError(
            str(_l("Only %(doctor)s, the doctor of this visit, can %(doing)s.",
                   doctor=name_of(consultation.doctor), doing=doing))
        )


def edit_refusal(consultation: Consultation, user: User | None = None,
                 now: datetime | None = None) -> str | None:
    """Why ``user`` may not change the visit now, or None when they may."""
    user = acting_user(user)
    try:
        _check_doctor(consultation, user, _l("change it"))
    except ConsultationError as exc:
        return str(exc)
    if consultation.completed_at is not None:
        if as_utc(now or utcnow()) - as_utc(consultation.completed_at) >= EDIT_WINDOW:
            return str(_l("This visit was completed more than 24 hours ago: it can no longer be changed."))
    return None


# The visit -------------------------------------------------------------------------------------


def consultation_for(appointment: Appointment) -> Consultation | None:
    return db.session.scalar(
        select(Consultation).where(Consultation.appointment_id == appointment.id)
    )


def start_consultation(appointment: Appointment, *, doctor: User | None = None) -> Consultation:
    """Open the appointment's visit, creating it when there is none yet.

    A new visit copies the appointment's patient, doctor and branch, and moves the appointment
    to "in consultation" (checking the patient in first if they were not yet). Flushes, never
    commits.

    :raises ConsultationNotAllowedError: when ``doctor`` (default: the signed-in user) is not
        the appointment's doctor.
    :raises ConsultationStatusError: for a cancelled or no-show appointment.
    """
    existing = consultation_for(appointment)
    if existing is not None:
        return existing
    doctor = acting_user(doctor)
    if doctor is None or doctor.id != appointment.doctor_id:
        raise ConsultationNotAllowedError(
            str(_l("Only %(doctor)s, the appointment's doctor, can start this visit.",
                   doctor=name_of(appointment.doctor)))
        )
    if appointment.status in CLOSED_STATUSES:
        raise ConsultationStatusError(
            str(_l("This appointment was cancelled or missed: a visit cannot start from it."))
        )
    if appointment.status in ("booked", "confirmed"):
        change_status(appointment, "arrived")
    if appointment.status == "arrived":
        change_status(appointment, "in_consultation")
    consultation = Consultation(
        appointment_id=appointment.id,
        patient_id=appointment.patient_id,
        doctor_id=appointment.doctor_id,
        branch_id=appointment.branch_id,
    )
    db.session.add(consultation)
    db.session.flush()
    return consultation


def update_consultation(consultation: Consultation, values: Mapping[str, Any], *,
                        user: User | None = None, now: datetime | None = None) -> Consultation:
    """Change what the doctor wrote: the keys of ``values`` among TEXT_FIELDS and VITAL_INPUTS.

    Keys not present stay as they are. Nothing changes when anything is refused.

    :raises ConsultationNotAllowedError: for anyone but the visit's doctor, or after the window.
    :raises VitalsError: with a message per bad vital.
    """
    refusal = edit_refusal(consultation, user, now)
    if refusal:
        raise ConsultationNotAllowedError(refusal)
    columns = read_vitals(values)
    _check_pressure(consultation, columns)
    code = values.get("diagnosis_code")
    if code is not None and len(str(code).strip()) > DIAGNOSIS_CODE_MAX:
        raise VitalsError(
            {"diagnosis_code": str(_l("A diagnosis code has at most %(n)s characters.", n=DIAGNOSIS_CODE_MAX))}
        )
    for name in TEXT_FIELDS:
        if name in values:
            text = (str(values[name]) if values[name] is not None else "").replace("\r\n", "\n").strip()
            columns[name] = text or None
    for column, value in columns.items():
        setattr(consultation, column, value)
    db.session.flush()
    return consultation


def complete_consultation(consultation: Consultation, *, user: User | None = None,
                          now: datetime | None = None) -> Consultation:
    """The visit is over: ``completed_at`` is set and its appointment becomes completed.

    :raises ConsultationNotAllowedError: for anyone but the visit's doctor.
    :raises ConsultationStatusError: when it is completed already.
    """
    _check_doctor(consultation, acting_user(user), _l("complete it"))
    if consultation.completed_at is not None:
        raise ConsultationStatusError(str(_l("This visit is completed already.")))
    consultation.completed_at = as_utc(now or utcnow())
    appointment = consultation.appointment
    if appointment.status in ("arrived", "in_consultation"):
        change_status(appointment, "completed")
    db.session.flush()
    return consultation
