"""Doctors' rosters: working hours, leave and branch holidays, checked before they are saved.

The database refuses the worst (end before start, a break outside the hours, two rows for one
weekday); these checks come first so the user reads which field to fix.
"""

from __future__ import annotations

import re
from datetime import date, time

from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models.scheduling import DoctorLeave, Holiday, StaffProfile, WorkingHours
from app.services.appointments import is_doctor
from app.services.errors import ClinicError

WEEKDAYS = (
    (0, _l("Monday")),
    (1, _l("Tuesday")),
    (2, _l("Wednesday")),
    (3, _l("Thursday")),
    (4, _l("Friday")),
    (5, _l("Saturday")),
    (6, _l("Sunday")),
)
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


class ScheduleError(ClinicError):
    """A roster entry that cannot be saved; ``field`` names the form field to fix, if one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def hours_problem(
    start: time | None, end: time | None, break_start: time | None, break_end: time | None
) -> tuple[str, str] | None:
    """(field, message) for the first thing wrong with a day's hours, or None."""
    if start is None or end is None:
        return None
    if end <= start:
        return "end_time", str(_l("The day must end after it starts."))
    if (break_start is None) != (break_end is None):
        # On the time that was given: an empty field's own checks stop at "optional".
        field = "break_start" if break_end is None else "break_end"
        return field, str(_l("Give both the start and the end of the break, or neither."))
    if break_start is not None and break_end is not None:
        if break_end <= break_start:
            return "break_end", str(_l("The break must end after it starts."))
        if break_start < start or break_end > end:
            return "break_start", str(_l("The break must fall within the working hours."))
    return None


def working_day_taken(
    doctor_id: int | None, branch_id: int | None, weekday: int | None, ignore_id: int | None = None
) -> bool:
    """Whether the doctor already has hours at the branch on that weekday."""
    if None in (doctor_id, branch_id, weekday):
        return False
    query = select(WorkingHours.id).where(
        WorkingHours.doctor_id == doctor_id,
        WorkingHours.branch_id == branch_id,
        WorkingHours.weekday == weekday,
    )
    if ignore_id is not None:
        query = query.where(WorkingHours.id != ignore_id)
    return db.session.scalar(query.limit(1)) is not None


def _doctor(doctor: User | None, doctor_id: int | None) -> User | None:
    return doctor or (db.session.get(User, doctor_id) if doctor_id else None)


def check_working_hours(row: WorkingHours) -> None:
    """:raises ScheduleError: for a non-doctor, a doctor of another branch, hours out of order,
    a break outside them, or a second row for the same weekday."""
    doctor = _doctor(row.doctor, row.doctor_id)
    if not is_doctor(doctor):
        raise ScheduleError(str(_l("Choose a doctor.")), "doctor")
    branch_id = row.branch.id if row.branch is not None else row.branch_id
    if branch_id not in {b.id for b in doctor.branches}:
        raise ScheduleError(str(_l("This doctor does not work at that branch.")), "doctor")
    problem = hours_problem(row.start_time, row.end_time, row.break_start, row.break_end)
    if problem:
        raise ScheduleError(problem[1], problem[0])
    if working_day_taken(doctor.id, branch_id, row.weekday, row.id):
        raise ScheduleError(
            str(_l("This doctor already has hours at this branch on that day. Edit them instead.")),
            "weekday",
        )


def check_leave(leave: DoctorLeave) -> None:
    """:raises ScheduleError: for a non-doctor or a range that ends before it starts."""
    if not is_doctor(_doctor(leave.doctor, leave.doctor_id)):
        raise ScheduleError(str(_l("Choose a doctor.")), "doctor")
    if leave.starts_on and leave.ends_on and leave.ends_on < leave.starts_on:
        raise ScheduleError(str(_l("The leave must end on or after its first day.")), "ends_on")


def holiday_taken(branch_id: int | None, day: date | None, ignore_id: int | None = None) -> bool:
    if branch_id is None or day is None:
        return False
    query = select(Holiday.id).where(Holiday.branch_id == branch_id, Holiday.day == day)
    if ignore_id is not None:
        query = query.where(Holiday.id != ignore_id)
    return db.session.scalar(query.limit(1)) is not None


def check_holiday(holiday: Holiday) -> None:
    """:raises ScheduleError: for a second holiday on the same day at the same branch."""
    branch_id = holiday.branch.id if holiday.branch is not None else holiday.branch_id
    if holiday_taken(branch_id, holiday.day, holiday.id):
        raise ScheduleError(str(_l("This branch already has a holiday on that day.")), "day")


def check_profile(profile: StaffProfile) -> None:
    """:raises ScheduleError: for a non-doctor or a colour that is not #rrggbb."""
    if not is_doctor(_doctor(profile.user, profile.user_id)):
        raise ScheduleError(str(_l("Choose a doctor.")), "user")
    if profile.calendar_colour and not COLOUR.match(profile.calendar_colour):
        raise ScheduleError(
            str(_l("Enter the colour as # and six hex digits, e.g. #2f6fde.")), "calendar_colour"
        )
