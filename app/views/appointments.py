"""Appointments: the list, each appointment's page with its history, booking and moving through
the appointments service, one-click status changes, and the REST API."""

from __future__ import annotations

from datetime import date, datetime, timezone

from flask import abort, current_app, flash, g, has_request_context, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.security.sqla.models import Role, User
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError as MarshmallowValidationError
from sqlalchemy import and_, false, or_, select
from wtforms import DateTimeLocalField, IntegerField, StringField
from wtforms.validators import InputRequired, NumberRange, Optional
from wtforms.widgets import DateTimeLocalInput

from app.extensions import db
from app.formatting import branch_time, or_dash
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import Appointment
from app.security.policy import (
    APPOINTMENTS,
    CONSULTATIONS,
    CREATE,
    DOCTOR,
    EDIT,
    READ,
    VIEW_METHOD_PERMISSIONS,
)
from app.security.scoping import allowed_branch_ids
from app.services.appointments import (
    APPOINTMENT_STATUS_LABELS,
    AppointmentStatusError,
    SlotUnavailableError,
    allowed_statuses,
    book_appointment,
    branch_zone,
    change_status,
    day_bounds,
    edit_appointment,
    from_local,
    place_appointment,
)
from app.services.errors import ClinicError
from app.views.base import BranchScopedMixin, ClinicModelApi, ClinicModelView, ClinicSQLAInterface
from app.views.forms import LOCAL_INPUT_FORMAT, local_path
from app.views.timeline import timeline_source

#: Pseudo-column: the start in the branch's local time.
LOCAL_START = "local_start"


def status_label(status: str | None) -> str:
    return str(APPOINTMENT_STATUS_LABELS.get(status, status or "—"))


def _person(user: User | None) -> str:
    return f"{user.first_name} {user.last_name}" if user is not None else "—"


class AppointmentInterface(ClinicSQLAInterface):
    """Appointments' data, with their start shown in the branch's own time zone."""

    @staticmethod
    def _get_attr_value(item, col):
        if col == LOCAL_START:
            return branch_time(item.starts_at, item.branch)
        return ClinicSQLAInterface._get_attr_value(item, col)


class FilterActivePatients(BaseFilter):
    """Patients who are not merged duplicates (the dropdown of patients to book)."""

    name = "Active patients"
    arg_name = "activepatients"

    def apply(self, query, value):
        return query.filter(Patient.merged_into_id.is_(None))


class FilterDoctorRole(BaseFilter):
    """Users holding the Doctor role."""

    name = "Doctors"
    arg_name = "doctorrole"

    def apply(self, query, value):
        return query.filter(User.roles.any(Role.name == DOCTOR))


def _arg_int(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() else None


def _arg_date(name: str = "date") -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


class FilterListArgs(BaseFilter):
    """On the list page: the day (branch-local), doctor and status chosen in the filter bar."""

    name = "List filters"
    arg_name = "listargs"

    def apply(self, query, value):
        if not has_request_context() or request.endpoint != "AppointmentModelView.list":
            return query
        day = _arg_date()
        if day is not None:
            branches = db.session.scalars(
                select(Branch).where(Branch.id.in_(allowed_branch_ids()))
            ).all()
            spans = []
            for branch in branches:
                start, end = day_bounds(branch, day)
                spans.append(and_(Appointment.branch_id == branch.id,
                                  Appointment.starts_at >= start, Appointment.starts_at < end))
            # One day reads in time order; without a day the newest bookings come first.
            query = query.filter(or_(*spans) if spans else false()).order_by(
                Appointment.starts_at.asc()
            )
        doctor_id = _arg_int("doctor")
        if doctor_id is not None:
            query = query.filter(Appointment.doctor_id == doctor_id)
        status = request.args.get("status", "")
        if status in APPOINTMENT_STATUS_LABELS:
            query = query.filter(Appointment.status == status)
        return query


def _starts_field() -> DateTimeLocalField:
    return DateTimeLocalField(
        _l("Starts"),
        format=LOCAL_INPUT_FORMAT,
        widget=DateTimeLocalInput(),
        validators=[InputRequired(message=_l("Enter the date and time."))],
        description=_l("In the branch's local time."),
    )


def _duration_field() -> IntegerField:
    return IntegerField(
        _l("Duration (minutes)"),
        validators=[
            Optional(),
            NumberRange(min=5, max=480, message=_l("Enter a duration between 5 and 480 minutes.")),
        ],
        description=_l("Leave empty to use the service's usual duration."),
    )


def _doctors_of_my_branches() -> list[User]:
    """Doctors working at the signed-in user's branches (the list's doctor filter)."""
    return list(db.session.scalars(
        select(User)
        .where(User.roles.any(Role.name == DOCTOR),
               User.branches.any(Branch.id.in_(allowed_branch_ids())))
        .order_by(User.first_name, User.last_name)
    ))


class AppointmentModelView(BranchScopedMixin, ClinicModelView):
    """Appointments of the user's branches: find, open, book, move, and move along the day."""

    route_base = "/appointments"
    datamodel = AppointmentInterface(Appointment)
    class_permission_name = APPOINTMENTS
    method_permission_name = {**VIEW_METHOD_PERMISSIONS, "status": "edit"}
    base_permissions = [READ, CREATE, EDIT]
    base_filters = [["id", FilterListArgs, None]]
    access_log = "patient"
    list_template = "clinic/appointments/list.html"
    show_template = "clinic/appointments/show.html"
    list_title = _l("Appointments")
    show_title = _l("Appointment")
    add_title = _l("Book an appointment")
    edit_title = _l("Edit appointment")
    add_row_message = _l("Appointment booked.")
    edit_row_message = _l("Your changes are saved.")
    list_columns = [LOCAL_START, "patient", "doctor", "branch", "service", "reason", "status"]
    show_columns = [LOCAL_START, "patient", "doctor", "branch", "service", "duration_min",
                    "status", "reason", "notes", "cancel_reason"]
    add_columns = ["patient", "branch", "doctor", "service", "starts_at", "duration_min",
                   "reason", "notes"]
    edit_columns = ["doctor", "service", "starts_at", "duration_min", "reason", "notes",
                    "change_note"]
    search_columns: list[str] = []
    order_columns = ["starts_at"]
    base_order = ("id", "desc")
    label_columns = {
        LOCAL_START: _l("When"),
        "patient": _l("Patient"),
        "doctor": _l("Doctor"),
        "branch": _l("Branch"),
        "service": _l("Service"),
        "starts_at": _l("Starts"),
        "duration_min": _l("Duration (minutes)"),
        "status": _l("Status"),
        "reason": _l("Reason"),
        "notes": _l("Notes"),
        "cancel_reason": _l("Why cancelled"),
        "change_note": _l("Why it moves"),
    }
    formatters_columns = {
        "status": status_label,
        "doctor": _person,
        "patient": lambda patient: f"{patient.full_name} · {patient.mrn}" if patient else "—",
        **{name: or_dash for name in ("service", "reason", "notes", "cancel_reason")},
    }
    _rel_filters = {
        "patient": [["id", FilterActivePatients, None]],
        "doctor": [["roles", FilterDoctorRole, None]],
        "service": [["is_active", FilterEqual, True]],
    }
    add_form_query_rel_fields = _rel_filters
    edit_form_query_rel_fields = {
        "doctor": [["roles", FilterDoctorRole, None]],
        "service": [["is_active", FilterEqual, True]],
    }
    add_form_extra_fields = {"starts_at": _starts_field(), "duration_min": _duration_field()}
    edit_form_extra_fields = {
        "starts_at": _starts_field(),
        "duration_min": _duration_field(),
        "change_note": StringField(
            _l("Why it moves"),
            validators=[Optional()],
            description=_l("Kept in the appointment's history when the time or doctor changes."),
        ),
    }

    def render_template(self, template, **kwargs):
        if template == self.list_template:
            kwargs.update(filter_doctors=_doctors_of_my_branches(),
                          filter_statuses=APPOINTMENT_STATUS_LABELS)
        return super().render_template(template, **kwargs)

    # Booking and editing go through the appointments service ---------------------------------

    def _refused(self, form, error: ClinicError) -> None:
        """Show a refused rule on the form, which keeps what the user typed."""
        db.session.rollback()
        message = str(error)
        if isinstance(error, (SlotUnavailableError, AppointmentStatusError)):
            form.starts_at.errors = [*form.starts_at.errors, message]
        flash(message, "danger")

    def _prefill(self, form) -> None:
        """Values from the calendar or the patient page: ?doctor=&branch=&starts_at=&patient=."""
        allowed = set(allowed_branch_ids())
        branch = db.session.get(Branch, _arg_int("branch") or 0)
        if branch is not None and branch.id in allowed:
            form.branch.data = branch
        doctor = db.session.get(User, _arg_int("doctor") or 0)
        if doctor is not None and any(b.id in allowed for b in doctor.branches):
            form.doctor.data = doctor
        patient = db.session.get(Patient, _arg_int("patient") or 0)
        if patient is not None and patient.merged_into_id is None:
            form.patient.data = patient
        try:
            form.starts_at.data = datetime.fromisoformat(request.args.get("starts_at", ""))
        except ValueError:
            pass
        else:
            form.starts_at.data = form.starts_at.data.replace(tzinfo=None, second=0,
                                                              microsecond=0)

    def _add(self):
        form = self.add_form.refresh()
        if request.method != "POST":
            self._prefill(form)
            return self._get_add_widget(form=form)
        if form.validate():
            branch = form.branch.data
            try:
                if branch.id not in allowed_branch_ids():
                    raise ClinicError(str(_l("Choose one of your own branches for this record.")))
                appointment = book_appointment(
                    patient=form.patient.data,
                    doctor=form.doctor.data,
                    branch=branch,
                    starts_at=from_local(branch, form.starts_at.data),
                    duration_min=form.duration_min.data,
                    service=form.service.data,
                    reason=form.reason.data or None,
                    notes=form.notes.data or None,
                )
                db.session.commit()
            except ClinicError as error:
                self._refused(form, error)
            else:
                g.appointment_id = appointment.id
                flash(str(self.add_row_message), "success")
                return None
        return self._get_add_widget(form=form)

    def post_add_redirect(self):
        return redirect(url_for(".show", pk=g.appointment_id))

    def _edit(self, pk):
        appointment = self.datamodel.get(pk, self._base_filters)
        if appointment is None:
            abort(404)
        if request.method != "POST":
            form = self.edit_form.refresh(obj=appointment)
            form.starts_at.data = from_utc_local(appointment)
            form.change_note.data = ""
            return self._get_edit_widget(form=form)
        form = self.edit_form.refresh(request.form)
        form._id = pk
        if form.validate():
            try:
                edit_appointment(
                    appointment,
                    starts_at=from_local(appointment.branch, form.starts_at.data),
                    doctor=form.doctor.data,
                    duration_min=form.duration_min.data,
                    service=form.service.data,
                    reason=form.reason.data or None,
                    notes=form.notes.data or None,
                    note=form.change_note.data or None,
                )
                db.session.commit()
            except ClinicError as error:
                self._refused(form, error)
            else:
                g.appointment_id = appointment.id
                flash(str(self.edit_row_message), "success")
                return None
        return self._get_edit_widget(form=form)

    def post_edit_redirect(self):
        return redirect(url_for(".show", pk=g.appointment_id))

    # The appointment's page and its status buttons ----------------------------------------------

    @expose("/show/<pk>")
    @has_access
    def show(self, pk):
        pk = self._deserialize_pk_if_composite(pk)
        widgets = self._show(pk)  # 404 for another branch's appointment
        appointment = self.datamodel.get(pk, self._base_filters)
        sm = self.appbuilder.sm
        can_edit = sm.has_access(EDIT, APPOINTMENTS)
        return self.render_template(
            self.show_template,
            pk=pk,
            title=self.show_title,
            widgets=widgets,
            appointment=appointment,
            can_edit=can_edit,
            next_statuses=allowed_statuses(appointment) if can_edit else [],
            status_labels=APPOINTMENT_STATUS_LABELS,
            start_visit_url=self._start_visit_url(appointment),
        )

    def _start_visit_url(self, appointment: Appointment) -> str | None:
        endpoint = "ConsultationModelView.start"
        if endpoint not in current_app.view_functions:
            return None
        if appointment.status not in ("arrived", "in_consultation"):
            return None
        if not self.appbuilder.sm.has_access(CREATE, CONSULTATIONS):
            return None
        return url_for(endpoint, appointment_id=appointment.id)

    @expose("/<int:pk>/status", methods=["POST"])
    @has_access
    def status(self, pk: int):
        """Move the appointment to the posted status; back to ``next`` (a local path) or its page."""
        appointment = self.datamodel.get(pk, self._base_filters)
        if appointment is None:
            abort(404)
        to_status = request.form.get("status", "")
        try:
            change_status(appointment, to_status, reason=request.form.get("reason"))
            db.session.commit()
        except ClinicError as error:
            db.session.rollback()
            flash(str(error), "danger")
        else:
            flash(str(_l("%(patient)s: %(status)s.", patient=appointment.patient.full_name,
                         status=status_label(to_status))), "success")
        target = local_path(request.form.get("next"))
        return redirect(target or url_for(".show", pk=pk))


def from_utc_local(appointment: Appointment) -> datetime:
    """The appointment's start as a naive wall-clock time at its branch (for the form)."""
    start = appointment.starts_at
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    return start.astimezone(branch_zone(appointment.branch)).replace(tzinfo=None)


class AppointmentApi(BranchScopedMixin, ClinicModelApi):
    """``/api/v1/appointments/``: booking and moving through the same rules as the screens.

    Times carry an offset (ISO 8601); a time without one is the branch's local time. A refused
    rule answers 422 with the sentence the screen would show.
    """

    resource_name = "appointments"
    datamodel = ClinicSQLAInterface(Appointment)
    class_permission_name = APPOINTMENTS
    base_permissions = [READ, CREATE, EDIT]
    access_log = "patient"
    list_columns = [
        "id", "patient.id", "patient.mrn", "doctor.id", "doctor.first_name", "doctor.last_name",
        "branch.id", "branch.name", "service.id", "service.name", "starts_at", "ends_at",
        "duration_min", "status", "reason", "notes", "cancel_reason", "is_walk_in",
        "checked_in_at",
    ]
    show_columns = list_columns
    add_columns = ["patient", "doctor", "branch", "service", "starts_at", "duration_min",
                   "reason", "notes"]
    edit_columns = ["doctor", "service", "starts_at", "duration_min", "reason", "notes"]
    order_columns = ["starts_at", "status"]
    search_columns = ["starts_at", "status", "doctor", "branch", "patient"]
    base_order = ("starts_at", "desc")

    def _init_model_schemas(self) -> None:
        super()._init_model_schemas()
        for schema in (self.add_model_schema, self.edit_model_schema):
            duration = schema.fields.get("duration_min")
            if duration is not None:  # the service's duration applies when none is given
                duration.required = False
                duration.allow_none = True

    @staticmethod
    def _with_zone(appointment: Appointment, branch: Branch) -> None:
        if appointment.starts_at is not None and appointment.starts_at.tzinfo is None:
            appointment.starts_at = from_local(branch, appointment.starts_at)

    def pre_add(self, item: Appointment) -> None:
        super().pre_add(item)  # the branch must be one of the user's
        branch = item.branch or db.session.get(Branch, item.branch_id)
        self._with_zone(item, branch)
        place_appointment(item)

    def put_headless(self, pk):
        """Edit through the service: a changed time or doctor is a move, kept in the history."""
        appointment = self.datamodel.get(pk, self._base_filters)
        if not request.is_json:
            return self.response_400(message="Request is not JSON")
        if appointment is None:
            return self.response_404()
        try:
            data = self._merge_update_item(appointment, request.json)
            with db.session.no_autoflush:
                wanted = self.edit_model_schema.load(data)
        except MarshmallowValidationError as err:
            return self.response_422(message=err.messages)
        try:
            self._check_related(wanted)
            self._with_zone(wanted, appointment.branch)
            edit_appointment(
                appointment,
                starts_at=wanted.starts_at or appointment.starts_at,
                doctor=wanted.doctor or appointment.doctor,
                duration_min=wanted.duration_min,
                service=wanted.service,
                reason=wanted.reason,
                notes=wanted.notes,
            )
            db.session.commit()
        except ClinicError as exc:
            db.session.rollback()
            return self.response_422(message=str(exc))
        return self.response(200, result=self.edit_model_schema.dump(appointment, many=False))


@timeline_source("appointment", READ, APPOINTMENTS)
def appointment_items(patient: Patient, branch_ids: list[int]):
    """The patient's appointments at the user's branches."""
    appointments = db.session.scalars(
        select(Appointment)
        .where(Appointment.patient_id == patient.id, Appointment.branch_id.in_(branch_ids))
        .order_by(Appointment.starts_at.desc())
    )
    return [(appointment.starts_at, appointment) for appointment in appointments]
