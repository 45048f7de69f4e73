"""Prescriptions: writing one, changing it while that is still honest, and correcting it later.

Only the prescribing doctor changes a prescription, and only while it is active (neither
dispensed nor corrected) and less than 24 hours old. After that a correction is a new version:
it supersedes the old one, which is kept, marked superseded, and stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models.base import utcnow
from app.models.consultations import Consultation, Prescription, PrescriptionItem
from app.models.org import Branch
from app.models.patients import Patient
from app.security.policy import DOCTOR
from app.security.scoping import role_names
from app.services.consultations import acting_user, as_utc, name_of
from app.services.errors import ClinicError

#: How long the prescribing doctor may change a prescription in place.
EDIT_WINDOW = timedelta(hours=24)
#: The longest text each item field holds (the columns' lengths).
ITEM_LIMITS = {
    "medicine": 200, "strength": 60, "dose": 60, "frequency": 60, "route": 40,
    "duration": 60, "instructions": 300,
}
STATUS_LABELS = {
    "active": _l("Active"),
    "superseded": _l("Superseded"),
    "dispensed": _l("Dispensed"),
}


class PrescriptionError(ClinicError):
    """A prescription rule refused the request."""


class PrescriptionNotAllowedError(PrescriptionError):
    """The user may not write or change this prescription (not a doctor, not the prescriber)."""


class PrescriptionLockedError(PrescriptionError):
    """The prescription can no longer be changed in place: dispensed, corrected or too old."""


class PrescriptionItemsError(PrescriptionError):
    """The medicines as written cannot be saved. ``errors`` maps a row number (0-based) or
    ``"items"`` / ``"follow_up_on"`` to a message."""

    def __init__(self, errors: dict[Any, str]) -> None:
        self.errors = errors
        super().__init__(" ".join(errors.values()))


@dataclass
class ItemInput:
    """One medicine as typed."""

    medicine: str | None = None
    strength: str | None = None
    dose: str | None = None
    frequency: str | None = None
    route: str | None = None
    duration: str | None = None
    quantity: Any = None
    instructions: str | None = None

    @classmethod
    def of(cls, item: PrescriptionItem) -> "ItemInput":
        return cls(**{f.name: getattr(item, f.name) for f in fields(cls)})

    def is_blank(self) -> bool:
        return all(
            value is None or (isinstance(value, str) and not value.strip())
            for value in (getattr(self, f.name) for f in fields(self))
        )


def quantity_text(quantity: Decimal | None) -> str:
    """A quantity as people write it: 10, 2.5 (never 1E+1 or 10.00)."""
    return "" if quantity is None else f"{quantity.normalize():f}"


def is_doctor(user: User | None) -> bool:
    return user is not None and DOCTOR in role_names(user)


def branch_today(branch: Branch) -> date:
    return utcnow().astimezone(ZoneInfo(branch.time_zone)).date()


def _clean_items(items: Iterable[ItemInput]) -> list[dict[str, Any]]:
    """The rows to save (blank rows dropped), each as column values.

    :raises PrescriptionItemsError: for a row without a medicine, a bad quantity, text too long,
        or no medicine at all.
    """
    rows, errors = [], {}
    for number, item in enumerate(items):
        if item.is_blank():
            continue
        row: dict[str, Any] = {}
        for name, limit in ITEM_LIMITS.items():
            text = (getattr(item, name) or "").strip() or None
            if text and len(text) > limit:
                errors[number] = str(_l("Row %(n)s: keep each field under %(limit)s characters.",
                                        n=number + 1, limit=limit + 1))
            row[name] = text
        if not row["medicine"]:
            errors[number] = str(_l("Row %(n)s: name the medicine.", n=number + 1))
        quantity = item.quantity
        if quantity in (None, ""):
            row["quantity"] = None
        else:
            try:
                row["quantity"] = Decimal(str(quantity).strip().replace(",", "."))
            except (InvalidOperation, ValueError):
                row["quantity"] = None
                errors[number] = str(_l("Row %(n)s: the quantity must be a number.", n=number + 1))
            else:
                if not row["quantity"].is_finite() or not 0 < row["quantity"] < Decimal("100000000"):
                    errors[number] = str(_l("Row %(n)s: the quantity must be more than 0.", n=number + 1))
        rows.append(row)
    if not rows and not errors:
        errors["items"] = str(_l("Add at least one medicine."))
    if errors:
        raise PrescriptionItemsError(errors)
    return rows


def _check_follow_up(follow_up_on: date | None, prescribed_on: date) -> None:
    if follow_up_on is not None and follow_up_on < prescribed_on:
        raise PrescriptionItemsError(
            {"follow_up_on": str(_l("The follow-up date cannot be before the prescription's date."))}
        )


def _set_items(prescription: Prescription, rows: list[dict[str, Any]]) -> None:
    """Make the prescription's items ``rows``, changing existing items in place (a clear audit)."""
    items = list(prescription.items)
    for position, row in enumerate(rows):
        if position < len(items):
            item = items[position]
        else:
            item = PrescriptionItem()
            prescription.items.append(item)
        item.position = position
        item.patient_id = prescription.patient_id
        for name, value in row.items():
            setattr(item, name, value)
    for item in items[len(rows):]:
        prescription.items.remove(item)


def _note(text: str | None) -> str | None:
    return (text or "").replace("\r\n", "\n").strip() or None


def create_prescription(
    *,
    patient: Patient,
    branch: Branch,
    items: Iterable[ItemInput],
    doctor: User | None = None,
    consultation: Consultation | None = None,
    advice: str | None = None,
    follow_up_on: date | None = None,
) -> Prescription:
    """Write a prescription for ``patient`` at ``branch``, dated the branch's today. Flushes.

    From a consultation, the patient and branch are the consultation's.

    :raises PrescriptionNotAllowedError: when ``doctor`` (default: the signed-in user) is not a
        doctor.
    :raises PrescriptionItemsError: when the medicines or follow-up date cannot be saved.
    """
    doctor = acting_user(doctor)
    if not is_doctor(doctor):
        raise PrescriptionNotAllowedError(str(_l("Only a doctor can write a prescription.")))
    if consultation is not None:
        patient, branch = consultation.patient, consultation.branch
    rows = _clean_items(items)
    prescription = Prescription(
        patient_id=patient.id, doctor_id=doctor.id, branch_id=branch.id,
        consultation_id=consultation.id if consultation is not None else None,
        prescribed_on=branch_today(branch), advice=_note(advice), follow_up_on=follow_up_on,
        status="active", version=1,
    )
    _check_follow_up(follow_up_on, prescription.prescribed_on)
    db.session.add(prescription)
    _set_items(prescription, rows)
    db.session.flush()
    return prescription


def edit_refusal(prescription: Prescription, user: User | None = None,
                 now: datetime | None = None) -> str | None:
    """Why ``user`` (default: the signed-in user) may not change it in place now, or None."""
    user = acting_user(user)
    if user is None or user.id != prescription.doctor_id:
        return str(_l("Only %(doctor)s, who wrote this prescription, can change it.",
                      doctor=name_of(prescription.doctor)))
    if prescription.status == "superseded":
        return str(_l("This version was corrected: change the newest version instead."))
    if prescription.status == "dispensed" or prescription.dispensed_at is not None:
        return str(_l("This prescription was dispensed: use Correct to write a new version."))
    if as_utc(now or utcnow()) - as_utc(prescription.created_at) >= EDIT_WINDOW:
        return str(_l("This prescription is more than 24 hours old: use Correct to write a new version."))
    return None


def correct_refusal(prescription: Prescription, user: User | None = None) -> str | None:
    """Why ``user`` may not write a corrected version of it, or None."""
    user = acting_user(user)
    if user is None or user.id != prescription.doctor_id:
        return str(_l("Only %(doctor)s, who wrote this prescription, can correct it.",
                      doctor=name_of(prescription.doctor)))
    if prescription.status == "superseded":
        return str(_l("This version was corrected already: correct the newest version instead."))
    return None


def update_prescription(prescription: Prescription, *, items: Iterable[ItemInput],
                        advice: str | None, follow_up_on: date | None,
                        user: User | None = None, now: datetime | None = None) -> Prescription:
    """Change the prescription in place. Flushes.

    :raises PrescriptionNotAllowedError: for anyone but the prescribing doctor.
    :raises PrescriptionLockedError: once dispensed, corrected or 24 hours old.
    :raises PrescriptionItemsError: when the medicines or follow-up date cannot be saved.
    """
    refusal = edit_refusal(prescription, user, now)
    if refusal:
        user = acting_user(user)
        if user is None or user.id != prescription.doctor_id:
            raise PrescriptionNotAllowedError(refusal)
        raise PrescriptionLockedError(refusal)
    rows = _clean_items(items)
    _check_follow_up(follow_up_on, prescription.prescribed_on)
    prescription.advice = _note(advice)
    prescription.follow_up_on = follow_up_on
    _set_items(prescription, rows)
    db.session.flush()
    return prescription


def correct_prescription(prescription: Prescription, *, items: Iterable[ItemInput],
                         advice: str | None, follow_up_on: date | None,
                         user: User | None = None) -> Prescription:
    """Write the next version of ``prescription``; the old one is marked superseded. Flushes.

    :raises PrescriptionNotAllowedError: for anyone but the prescribing doctor.
    :raises PrescriptionLockedError: when this version was corrected already.
    :raises PrescriptionItemsError: when the medicines or follow-up date cannot be saved.
    """
    refusal = correct_refusal(prescription, user)
    if refusal:
        if prescription.status == "superseded":
            raise PrescriptionLockedError(refusal)
        raise PrescriptionNotAllowedError(refusal)
    rows = _clean_items(items)
    newer = Prescription(
        patient_id=prescription.patient_id, doctor_id=prescription.doctor_id,
        branch_id=prescription.branch_id, consultation_id=prescription.consultation_id,
        prescribed_on=branch_today(prescription.branch), advice=_note(advice),
        follow_up_on=follow_up_on, status="active", version=prescription.version + 1,
        supersedes_id=prescription.id,
    )
    _check_follow_up(follow_up_on, newer.prescribed_on)
    prescription.status = "superseded"
    db.session.add(newer)
    _set_items(newer, rows)
    db.session.flush()
    return newer


def newer_version(prescription: Prescription) -> Prescription | None:
    """The version that corrected this one, if any."""
    return db.session.scalar(
        select(Prescription).where(Prescription.supersedes_id == prescription.id)
    )
