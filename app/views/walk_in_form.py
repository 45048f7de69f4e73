"""The walk-in form and what submitting it does: find or register the patient, then book and
check them in with a doctor who is free now. The screen is ``AppointmentCalendarView.walk_in``
(``app/views/calendar.py``); this module holds no view.
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from wtforms import BooleanField, DateField, HiddenField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError
from wtforms.widgets import DateInput

from app.extensions import db
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import RELEASED_STATUSES, Appointment, Service
from app.services.appointments import doctor_day, register_walk_in
from app.services.errors import ClinicError
from app.services.org import InvalidSettingError, normalise_phone
from app.services.patients import PatientPhoneError, find_possible_duplicates, register_patient

#: How many patients the walk-in search offers.
WALK_IN_MATCHES = 8
SEX_CHOICES = [
    ("female", _l("Female")),
    ("male", _l("Male")),
    ("other", _l("Other")),
    ("unknown", _l("Not stated")),
]


class WalkInForm(DynamicForm):
    """Who walked in (a patient found, or a new one typed), whom they see, and what for."""

    q = HiddenField()
    branch = SelectField(_l("Branch"), coerce=int, validators=[DataRequired()])
    patient = StringField(_l("Patient"))
    first_name = StringField(_l("First name"), validators=[Length(max=80)])
    last_name = StringField(_l("Last name"), validators=[Length(max=80)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)])
    date_of_birth = DateField(_l("Date of birth"), widget=DateInput(), validators=[Optional()])
    sex = SelectField(_l("Sex"), choices=SEX_CHOICES, default="unknown")
    confirm_new = BooleanField(_l("This is a new patient"))
    doctor = SelectField(
        _l("Doctor"), coerce=int, validators=[DataRequired(message=_l("Choose a doctor."))]
    )
    service = SelectField(_l("Service"), coerce=int, default=0)
    reason = StringField(_l("Reason for the visit"), validators=[Optional(), Length(max=200)])

    def validate_patient(self, field) -> None:
        value = (field.data or "").strip()
        if value != "new" and (not value.isdigit() or active_patient(int(value)) is None):
            raise ValidationError(str(_l("Choose a patient, or register a new one.")))

    def validate_first_name(self, field) -> None:
        if self.patient.data == "new" and not (field.data or "").strip():
            raise ValidationError(str(_l("Type the new patient's first name.")))

    def validate_last_name(self, field) -> None:
        if self.patient.data == "new" and not (field.data or "").strip():
            raise ValidationError(str(_l("Type the new patient's last name.")))


def active_patient(patient_id: int) -> Patient | None:
    patient = db.session.get(Patient, patient_id)
    return patient if patient is not None and patient.merged_into_id is None else None


def busy_now(doctor: User, now: datetime) -> bool:
    """Whether the doctor has a live appointment (in any branch) going on at ``now``."""
    moment = now.astimezone(timezone.utc)
    return db.session.scalar(
        select(Appointment.id).where(
            Appointment.doctor_id == doctor.id,
            Appointment.status.not_in(RELEASED_STATUSES),
            Appointment.starts_at <= moment,
            Appointment.ends_at > moment,
        ).limit(1)
    ) is not None


def first_available(branch: Branch, doctors: list[User]) -> int | None:
    """The first doctor working and free now; else the first working today; else the first."""
    now = datetime.now(ZoneInfo(branch.time_zone))
    working_today = []
    for doctor in doctors:
        schedule = doctor_day(doctor, branch, now.date())
        if not schedule.is_working:
            continue
        working_today.append(doctor)
        in_hours = any(start <= now.time() < end for start, end in schedule.intervals)
        if in_hours and not busy_now(doctor, now):
            return doctor.id
    pick = (working_today or doctors or [None])[0]
    return pick.id if pick is not None else None


def check_in_walk_in(
    form: WalkInForm, branch: Branch, doctors: list[User], services: list[Service]
) -> Appointment | list[Patient]:
    """Register the new patient if need be, book and check in; commit.

    Returns the appointment, or the possible duplicates of a new patient to show first (nothing
    saved). A refused rule becomes an error on the form, which keeps what was typed.
    """
    doctor = next((d for d in doctors if d.id == form.doctor.data), None)
    if doctor is None:
        form.doctor.errors = [str(_l("Choose one of this branch's doctors."))]
        return []
    service = next((s for s in services if s.id == form.service.data), None)
    if form.patient.data == "new":
        patient = Patient(
            first_name=form.first_name.data, last_name=form.last_name.data,
            phone=form.phone.data or None, date_of_birth=form.date_of_birth.data,
            sex=form.sex.data, registered_branch_id=branch.id,
        )
        try:
            normalise_phone(patient.phone, branch.country) if patient.phone else None
        except InvalidSettingError:
            form.phone.errors = [
                str(_l("Enter a phone number with its area code, e.g. 098765 43210."))
            ]
            return []
        if not form.confirm_new.data:
            duplicates = find_possible_duplicates(patient)
            if duplicates:
                return duplicates
    else:
        patient = active_patient(int(form.patient.data))
    try:
        if patient.id is None:
            register_patient(patient, "in_person")
        appointment = register_walk_in(
            patient=patient, doctor=doctor, branch=branch, service=service,
            reason=(form.reason.data or "").strip() or None,
        )
        db.session.commit()
    except PatientPhoneError:
        db.session.rollback()
        form.phone.errors = [str(_l("Enter a phone number with its area code, e.g. 098765 43210."))]
        return []
    except ClinicError as error:
        db.session.rollback()
        form.form_errors.append(str(error))
        return []
    return appointment
