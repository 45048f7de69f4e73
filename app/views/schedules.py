"""The doctors' diaries: profiles, working hours per branch and weekday, leave, branch holidays."""

from __future__ import annotations

from typing import Any

from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.security.sqla.models import Role, User
from flask_babel import lazy_gettext as _l
from wtforms import DateField, SelectField, StringField, TimeField
from wtforms.validators import DataRequired, InputRequired, Optional, Regexp, ValidationError
from wtforms.widgets import ColorInput, DateInput, TimeInput

from app.formatting import or_dash
from app.models.org import Branch
from app.models.scheduling import DoctorLeave, Holiday, StaffProfile, WorkingHours
from app.security.policy import (
    CREATE,
    DELETE,
    DOCTOR,
    DOCTOR_PROFILES,
    EDIT,
    READ,
    SCHEDULES,
)
from app.security.scoping import FilterWorksInMyBranches, allowed_branch_ids
from app.services.schedules import (
    COLOUR,
    WEEKDAYS,
    check_holiday,
    check_leave,
    check_profile,
    check_working_hours,
    holiday_taken,
    hours_problem,
    working_day_taken,
)
from app.views.base import BranchNotAllowedError, BranchScopedMixin, ClinicModelView, ClinicSQLAInterface

SCHEDULE_PERMISSIONS = [READ, CREATE, EDIT, DELETE]
WEEKDAY_LABELS = dict(WEEKDAYS)


class FilterDoctors(BaseFilter):
    """Users holding the Doctor role (for dropdowns of users)."""

    name = "Doctors"
    arg_name = "doctors"

    def apply(self, query, value):
        return query.filter(User.roles.any(Role.name == DOCTOR))


class FilterDoctorInMyBranches(BaseFilter):
    """Rows whose doctor works at one of the signed-in user's branches."""

    name = "Doctor works in my branches"
    arg_name = "doctorbranch"

    def apply(self, query, value):
        doctor = getattr(self.model, self.column_name)
        return query.filter(doctor.has(User.branches.any(Branch.id.in_(allowed_branch_ids()))))


def _time(value) -> str:
    return value.strftime("%H:%M") if value is not None else "—"


def _doctor_name(user) -> str:
    return f"{user.first_name} {user.last_name}" if user is not None else "—"


def _form_id(form) -> Any:
    """The record being edited (FAB sets ``form._id`` on edit forms), else None."""
    return getattr(form, "_id", None)


def _hours_check(field_name: str):
    def check(form, field) -> None:
        problem = hours_problem(
            form.start_time.data, form.end_time.data, form.break_start.data, form.break_end.data
        )
        if problem and problem[0] == field_name:
            raise ValidationError(problem[1])

    return check


def _weekday_free(form, field) -> None:
    doctor, branch = form.doctor.data, form.branch.data
    if doctor is None or branch is None:
        return
    if working_day_taken(doctor.id, branch.id, field.data, _form_id(form)):
        raise ValidationError(
            str(_l("This doctor already has hours at this branch on that day. Edit them instead."))
        )


def _doctor_at_branch(form, field) -> None:
    doctor, branch = field.data, form.branch.data
    if doctor is not None and branch is not None and branch not in doctor.branches:
        raise ValidationError(str(_l("This doctor does not work at that branch.")))


def _time_field(label, *, required: bool, extra=(), description=None) -> TimeField:
    first = InputRequired(message=_l("Enter a time.")) if required else Optional()
    return TimeField(
        label, format="%H:%M", widget=TimeInput(), validators=[first, *extra],
        description=description,
    )


class ScheduleFormMixin:
    """Rules the service checks again before saving (the form has already said what to fix)."""

    def _service_check(self, item: Any) -> None:
        raise NotImplementedError

    def pre_add(self, item: Any) -> None:
        super().pre_add(item)
        self._service_check(item)

    def pre_update(self, item: Any) -> None:
        super().pre_update(item)
        self._service_check(item)


class DoctorProfileModelView(ClinicModelView):
    """Doctors' profiles: registration number for prescriptions, calendar colour."""

    route_base = "/doctors"
    datamodel = ClinicSQLAInterface(StaffProfile)
    class_permission_name = DOCTOR_PROFILES
    base_permissions = [READ, CREATE, EDIT]
    list_title = _l("Doctors")
    show_title = _l("Doctor")
    add_title = _l("Add a doctor's profile")
    edit_title = _l("Edit doctor's profile")
    list_columns = ["user", "speciality", "registration_number", "qualifications", "calendar_colour"]
    show_columns = list_columns
    add_columns = list_columns
    edit_columns = ["registration_number", "qualifications", "speciality", "calendar_colour"]
    search_columns = ["speciality", "registration_number"]
    order_columns = ["speciality", "registration_number"]
    label_columns = {
        "user": _l("Doctor"),
        "registration_number": _l("Registration number"),
        "qualifications": _l("Qualifications"),
        "speciality": _l("Speciality"),
        "calendar_colour": _l("Calendar colour"),
    }
    description_columns = {
        "registration_number": _l("Printed on prescriptions."),
        "calendar_colour": _l("The accent of this doctor's column in the calendar."),
    }
    formatters_columns = {
        "user": _doctor_name,
        **{name: or_dash for name in ("registration_number", "qualifications", "speciality",
                                      "calendar_colour")},
    }
    add_form_query_rel_fields = {"user": [["roles", FilterDoctors, None]]}
    _colour = {
        "calendar_colour": StringField(
            _l("Calendar colour"),
            widget=ColorInput(),
            default="#2f6fde",
            validators=[
                Optional(),
                Regexp(COLOUR, message=_l("Enter the colour as # and six hex digits, e.g. #2f6fde.")),
            ],
            description=_l("The accent of this doctor's column in the calendar."),
        )
    }
    add_form_extra_fields = _colour
    edit_form_extra_fields = _colour
    validators_columns = {"user": [DataRequired(message=_l("Choose a doctor."))]}

    def pre_add(self, item: StaffProfile) -> None:
        if item.user is not None and self.datamodel.session.get(StaffProfile, item.user.id):
            raise BranchNotAllowedError(
                str(_l("This doctor already has a profile. Edit it instead."))
            )
        check_profile(item)

    def pre_update(self, item: StaffProfile) -> None:
        check_profile(item)


class WorkingHoursModelView(BranchScopedMixin, ScheduleFormMixin, ClinicModelView):
    """When each doctor sees patients at a branch, weekday by weekday, with a break."""

    route_base = "/working-hours"
    datamodel = ClinicSQLAInterface(WorkingHours)
    class_permission_name = SCHEDULES
    base_permissions = SCHEDULE_PERMISSIONS
    list_title = _l("Working hours")
    show_title = _l("Working hours")
    add_title = _l("Add working hours")
    edit_title = _l("Edit working hours")
    list_columns = ["doctor", "branch", "weekday", "start_time", "end_time", "break_start",
                    "break_end"]
    show_columns = list_columns
    add_columns = ["doctor", "branch", "weekday", "start_time", "end_time", "break_start",
                   "break_end"]
    edit_columns = add_columns
    search_columns = ["doctor", "branch", "weekday"]
    order_columns = ["weekday", "start_time"]
    base_order = ("weekday", "asc")
    label_columns = {
        "doctor": _l("Doctor"),
        "branch": _l("Branch"),
        "weekday": _l("Day"),
        "start_time": _l("Starts"),
        "end_time": _l("Ends"),
        "break_start": _l("Break starts"),
        "break_end": _l("Break ends"),
    }
    formatters_columns = {
        "doctor": _doctor_name,
        "weekday": lambda value: str(WEEKDAY_LABELS.get(value, value)),
        **{name: _time for name in ("start_time", "end_time", "break_start", "break_end")},
    }
    add_form_query_rel_fields = {"doctor": [["roles", FilterDoctors, None]]}
    edit_form_query_rel_fields = {"doctor": [["roles", FilterDoctors, None]]}
    validators_columns = {"doctor": [DataRequired(message=_l("Choose a doctor.")),
                                     _doctor_at_branch]}
    _fields = {
        "weekday": SelectField(
            _l("Day"), choices=list(WEEKDAYS), coerce=int, validators=[_weekday_free],
        ),
        "start_time": _time_field(_l("Starts"), required=True),
        "end_time": _time_field(_l("Ends"), required=True, extra=[_hours_check("end_time")]),
        "break_start": _time_field(
            _l("Break starts"), required=False, extra=[_hours_check("break_start")],
            description=_l("Leave both break times empty for a day without a break."),
        ),
        "break_end": _time_field(_l("Break ends"), required=False,
                                 extra=[_hours_check("break_end")]),
    }
    add_form_extra_fields = _fields
    edit_form_extra_fields = _fields

    def _service_check(self, item: WorkingHours) -> None:
        check_working_hours(item)


def _leave_order(form, field) -> None:
    if form.starts_on.data and field.data and field.data < form.starts_on.data:
        raise ValidationError(str(_l("The leave must end on or after its first day.")))


def _date_field(label, extra=()) -> DateField:
    return DateField(
        label, widget=DateInput(),
        validators=[InputRequired(message=_l("Enter a date.")), *extra],
    )


class DoctorLeaveModelView(ScheduleFormMixin, ClinicModelView):
    """Days a doctor is away (from every branch); staff see the doctors of their branches."""

    route_base = "/leave"
    datamodel = ClinicSQLAInterface(DoctorLeave)
    class_permission_name = SCHEDULES
    base_permissions = SCHEDULE_PERMISSIONS
    base_filters = [["doctor", FilterDoctorInMyBranches, None]]
    list_title = _l("Leave")
    show_title = _l("Leave")
    add_title = _l("Add leave")
    edit_title = _l("Edit leave")
    list_columns = ["doctor", "starts_on", "ends_on", "note"]
    show_columns = list_columns
    add_columns = list_columns
    edit_columns = list_columns
    search_columns = ["doctor", "starts_on", "ends_on"]
    order_columns = ["starts_on", "ends_on"]
    base_order = ("starts_on", "desc")
    label_columns = {
        "doctor": _l("Doctor"),
        "starts_on": _l("First day"),
        "ends_on": _l("Last day"),
        "note": _l("Note"),
    }
    formatters_columns = {"doctor": _doctor_name, "note": or_dash}
    _doctors = {"doctor": [["branches", FilterWorksInMyBranches, None],
                           ["roles", FilterDoctors, None]]}
    add_form_query_rel_fields = _doctors
    edit_form_query_rel_fields = _doctors
    search_form_query_rel_fields = _doctors
    validators_columns = {"doctor": [DataRequired(message=_l("Choose a doctor."))]}
    _fields = {
        "starts_on": _date_field(_l("First day")),
        "ends_on": _date_field(_l("Last day"), extra=[_leave_order]),
    }
    add_form_extra_fields = _fields
    edit_form_extra_fields = _fields

    def _service_check(self, item: DoctorLeave) -> None:
        allowed = set(allowed_branch_ids())
        if item.doctor is not None and not any(b.id in allowed for b in item.doctor.branches):
            raise BranchNotAllowedError(
                str(_l("This record links to something outside your branches."))
            )
        check_leave(item)


def _holiday_free(form, field) -> None:
    branch = form.branch.data
    if branch is not None and holiday_taken(branch.id, field.data, _form_id(form)):
        raise ValidationError(str(_l("This branch already has a holiday on that day.")))


class HolidayModelView(BranchScopedMixin, ScheduleFormMixin, ClinicModelView):
    """Days a branch is closed: nobody can be booked there."""

    route_base = "/holidays"
    datamodel = ClinicSQLAInterface(Holiday)
    class_permission_name = SCHEDULES
    base_permissions = SCHEDULE_PERMISSIONS
    list_title = _l("Holidays")
    show_title = _l("Holiday")
    add_title = _l("Add a holiday")
    edit_title = _l("Edit holiday")
    list_columns = ["day", "name", "branch"]
    show_columns = list_columns
    add_columns = ["branch", "day", "name"]
    edit_columns = add_columns
    search_columns = ["branch", "day", "name"]
    order_columns = ["day", "name"]
    base_order = ("day", "desc")
    label_columns = {"day": _l("Day"), "name": _l("Name"), "branch": _l("Branch")}
    _fields = {"day": _date_field(_l("Day"), extra=[_holiday_free])}
    add_form_extra_fields = _fields
    edit_form_extra_fields = _fields

    def _service_check(self, item: Holiday) -> None:
        check_holiday(item)
