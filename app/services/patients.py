"""Patients: registering, updating with consent history, finding, and merging duplicates.

Patients are organisation-wide: any branch finds any patient, so the search and duplicate
checks never filter by branch. A merged duplicate is never deleted: it points at its survivor.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Any

import phonenumbers
from flask_appbuilder import Model
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import or_, select

from app.extensions import db
from app.models.audit import AuditEntry
from app.models.org import Branch
from app.models.patients import (
    CONSENT_COLUMNS,
    CONSENT_SOURCES,
    ConsentChange,
    Patient,
    PatientClinical,
)
from app.services.audit import current_actor, entry_row, to_json
from app.services.errors import ClinicError
from app.services.org import InvalidSettingError, get_organisation, normalise_phone

#: How many patients a search or duplicate check returns at most.
SEARCH_LIMIT = 50
_DATE_PARTS = {"dd": "%d", "MM": "%m", "yyyy": "%Y", "yy": "%y"}


class PatientPhoneError(ClinicError, ValueError):
    """A phone number that cannot be read for the patient's registered branch."""


class PatientMergeError(ClinicError):
    """Two records that cannot be merged (the same one, or one already merged)."""


def mrn_for(patient_id: int) -> str:
    """The medical record number of the patient with this id, e.g. ``MRN-000123``."""
    return f"MRN-{patient_id:06d}"


#: Letters that carry no separable accent, as a receptionist types them on a plain keyboard.
PLAIN_LETTERS = str.maketrans(
    {"ı": "i", "ø": "o", "đ": "d", "ð": "d", "ł": "l", "ħ": "h", "æ": "ae", "œ": "oe", "þ": "th"}
)


def search_key(text: str | None) -> str:
    """Lowercase, accents stripped, single spaces: ``"  José  Pérez"`` → ``"jose perez"``.

    Letters such as the Turkish dotless ı or the Danish ø, which Unicode does not decompose,
    become their plain-keyboard twins, so "yilmaz" finds "Yılmaz" and "soren" finds "Søren".
    """
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().translate(PLAIN_LETTERS).split())


def phone_digits(phone: str | None) -> str | None:
    return phonenumbers.normalize_digits_only(phone) if phone else None


def _country(patient: Patient) -> str:
    branch = patient.registered_branch
    if branch is None and patient.registered_branch_id is not None:
        branch = db.session.get(Branch, patient.registered_branch_id)
    return branch.country if branch is not None else ""


def normalise_patient(patient: Patient) -> None:
    """Tidy names, store phones in international form and refresh the search keys.

    :raises PatientPhoneError: when a phone cannot be read for the registered branch's country.
    """
    patient.first_name = (patient.first_name or "").strip()
    patient.last_name = (patient.last_name or "").strip()
    if patient.address:
        patient.address = patient.address.replace("\r\n", "\n")
    country = _country(patient)
    for field in ("phone", "emergency_contact_phone"):
        value = getattr(patient, field)
        if not value:
            setattr(patient, field, None)
            continue
        try:
            setattr(patient, field, normalise_phone(value, country))
        except InvalidSettingError:
            raise PatientPhoneError("not a phone number") from None
    patient.name_search = search_key(f"{patient.first_name} {patient.last_name}")
    patient.phone_digits = phone_digits(patient.phone)


def _actor_id() -> int | None:
    return current_actor()[0]


def record_consents(patient: Patient, obtained: str, old: dict[str, bool]) -> list[ConsentChange]:
    """A ``ConsentChange`` for every consent whose value differs from ``old`` (kind → value)."""
    if obtained not in CONSENT_SOURCES:
        raise ValueError(f"unknown consent source {obtained!r}")
    changes = []
    for kind, column in CONSENT_COLUMNS.items():
        granted = bool(getattr(patient, column))
        if granted != bool(old.get(kind, False)):
            change = ConsentChange(
                patient_id=patient.id, kind=kind, granted=granted, obtained=obtained,
                changed_by_id=_actor_id(),
            )
            db.session.add(change)
            changes.append(change)
    return changes


def register_patient(patient: Patient, obtained: str = "in_person") -> Patient:
    """Add a new patient: normalised, given an MRN from its id, consents recorded.

    The MRN comes from the primary key the database hands out, so two registrations at once
    can never share one. The caller commits.

    :raises PatientPhoneError: for a phone the registered branch's country cannot read.
    """
    normalise_patient(patient)
    db.session.add(patient)
    db.session.flush()
    patient.mrn = mrn_for(patient.id)
    record_consents(patient, obtained, {})
    return patient


def consents_before(patient: Patient) -> dict[str, bool]:
    """The consents as stored before this transaction's unsaved changes to ``patient``."""
    state = sa_inspect(patient)
    old = {}
    for kind, column in CONSENT_COLUMNS.items():
        history = state.attrs[column].history
        old[kind] = bool(history.deleted[0]) if history.deleted else bool(getattr(patient, column))
    return old


def update_patient(patient: Patient, obtained: str = "in_person") -> Patient:
    """Save edits to a patient: normalised again, each changed consent kept in its history.

    Call it after the new values are set on ``patient`` and before the flush. The caller commits.

    :raises PatientPhoneError: for a phone the registered branch's country cannot read.
    """
    old = consents_before(patient)
    normalise_patient(patient)
    record_consents(patient, obtained, old)
    return patient


def _active():
    return select(Patient).where(Patient.merged_into_id.is_(None))


def find_possible_duplicates(patient: Patient) -> list[Patient]:
    """Patients who may be this one: the same phone, or the same name and date of birth."""
    normalise_key = search_key(f"{patient.first_name} {patient.last_name}")
    digits = None
    if patient.phone:
        try:
            digits = phone_digits(normalise_phone(patient.phone, _country(patient)))
        except InvalidSettingError:
            digits = phone_digits(patient.phone)
    conditions = []
    if digits:
        conditions.append(Patient.phone_digits == digits)
    if patient.date_of_birth and normalise_key:
        conditions.append(
            (Patient.name_search == normalise_key)
            & (Patient.date_of_birth == patient.date_of_birth)
        )
    if not conditions:
        return []
    query = _active().where(or_(*conditions))
    if patient.id is not None:
        query = query.where(Patient.id != patient.id)
    return list(db.session.scalars(query.order_by(Patient.id).limit(SEARCH_LIMIT)))


def _date_formats() -> list[str]:
    formats = ["%Y-%m-%d"]
    organisation = get_organisation()
    if organisation is not None:
        pattern = re.sub(
            "yyyy|yy|dd|MM", lambda m: _DATE_PARTS[m.group(0)], organisation.date_format
        )
        formats.append(pattern)
    return formats


def parse_date(text: str) -> date | None:
    """A date typed in ISO form or in the organisation's date format, else None."""
    for fmt in _date_formats():
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


def search_conditions(text: str) -> list[Any]:
    """SQL conditions matching ``text`` as a name part, a phone, an MRN or a date of birth."""
    text = (text or "").strip()
    if not text:
        return []
    conditions: list[Any] = []
    born = parse_date(text)
    if born is not None:
        conditions.append(Patient.date_of_birth == born)
    if text.upper().startswith("MRN"):
        conditions.append(Patient.mrn == text.upper().replace(" ", ""))
    key = search_key(text)
    if key:
        words = key.split()
        conditions.append(
            _and_all([Patient.name_search.contains(word, autoescape=True) for word in words])
        )
    digits = phonenumbers.normalize_digits_only(text)
    if len(digits) >= 5 and born is None:
        # The local form drops the country code and any trunk 0: match the number's tail.
        conditions.append(Patient.phone_digits.endswith(digits.lstrip("0"), autoescape=True))
    if digits and digits == text.strip().lstrip("0") and len(digits) <= 6:
        conditions.append(Patient.mrn == mrn_for(int(digits)))
    return conditions


def _and_all(conditions: list[Any]) -> Any:
    combined = conditions[0]
    for condition in conditions[1:]:
        combined = combined & condition
    return combined


def search_patients(text: str, limit: int = SEARCH_LIMIT) -> list[Patient]:
    """Patients (never merged duplicates) found by name part, phone, MRN or date of birth.

    Names match any part, ignoring case and accents ("jose" finds "José"); a phone matches in
    any format; a date reads as ISO (2001-02-03) or in the organisation's date format.
    """
    conditions = search_conditions(text)
    if not conditions:
        return []
    query = _active().where(or_(*conditions)).order_by(Patient.last_name, Patient.first_name)
    return list(db.session.scalars(query.limit(limit)))


def _patient_references() -> list[tuple[type, str]]:
    """Every (model, attribute) whose column is a foreign key to ``patient.id``, besides the
    merge pointer itself and the one-to-one clinical section (merged on its own)."""
    found = []
    for mapper in Model.registry.mappers:
        model = mapper.class_
        if model in (Patient, PatientClinical):
            continue
        for prop in mapper.column_attrs:
            for column in prop.columns:
                if any(fk.column.table.name == "patient" for fk in column.foreign_keys):
                    found.append((model, prop.key))
    return found


def _merge_clinical(survivor: Patient, duplicate: Patient) -> int:
    theirs = db.session.get(PatientClinical, duplicate.id)
    if theirs is None:
        return 0
    ours = db.session.get(PatientClinical, survivor.id)
    if ours is None:
        ours = PatientClinical(patient_id=survivor.id)
        db.session.add(ours)
    for field in ("allergies", "chronic_conditions", "clinical_notes"):
        mine, other = getattr(ours, field), getattr(theirs, field)
        if other and other != mine:
            setattr(ours, field, f"{mine}\n{other}" if mine else other)
        setattr(theirs, field, None)
    return 1


def merge_patients(survivor: Patient, duplicate: Patient) -> dict[str, int]:
    """Move every record of ``duplicate`` to ``survivor`` and mark the duplicate merged.

    Every foreign key to a patient is followed, so records of models added later move too. Each
    moved row is audited as usual, and one ``merge`` entry names both patients. The duplicate
    stays, pointing at the survivor. The caller commits.

    :raises PatientMergeError: for the same patient twice, or a patient already merged.
    """
    if survivor.id == duplicate.id:
        raise PatientMergeError("a patient cannot be merged into itself")
    if survivor.merged_into_id is not None or duplicate.merged_into_id is not None:
        raise PatientMergeError("one of these patients has already been merged")
    moved: dict[str, int] = {"PatientClinical": _merge_clinical(survivor, duplicate)}
    for model, attribute in _patient_references():
        rows = db.session.scalars(
            select(model).where(getattr(model, attribute) == duplicate.id)
        ).all()
        for row in rows:
            setattr(row, attribute, survivor.id)
        if rows:
            moved[model.__name__] = moved.get(model.__name__, 0) + len(rows)
    duplicate.merged_into_id = survivor.id
    db.session.flush()
    db.session.add(
        AuditEntry(
            **entry_row(
                "change",
                "merge",
                model="Patient",
                record_id=str(duplicate.id),
                branch_id=duplicate.registered_branch_id,
                subject_type="patient",
                subject_id=duplicate.id,
                details=to_json(
                    {"survivor": survivor.mrn, "duplicate": duplicate.mrn, "moved": moved}
                ),
            )
        )
    )
    return moved

