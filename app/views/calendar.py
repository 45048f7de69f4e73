"""The front desk's screens: the appointment calendar, the day list and walk-ins.

``/appointments/calendar`` shows a branch's day (one column per doctor) or one doctor's week
(one column per day) in the branch's local time; free slots link to the booking form.
``/appointments/day`` lists a day's appointments with one-click status buttons, and
``/appointments/walk-in`` registers (or finds) a patient and checks them in at once.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.sqla.models import User
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import Appointment, Service, StaffProfile
from app.security.policy import APPOINTMENTS, CREATE, EDIT, READ
from app.security.scoping import allowed_branch_ids
from app.services.appointments import (
    APPOINTMENT_STATUS_LABELS,
    available_doctors,
    day_bounds,
    doctor_day,
    free_slots,
    is_doctor,
)
from app.services.audit import record_access
from app.services.patients import search_patients
from app.views.base import may_open
from app.views.calendar_grid import SLOT_MIN, ColumnSpec, as_utc, build_grid, local
from app.views.forms import LOCAL_INPUT_FORMAT
from app.views.walk_in_form import (
    WALK_IN_MATCHES,
    WalkInForm,
    active_patient,
    check_in_walk_in,
    first_available,
)

#: Where the status buttons post (AppointmentModelView's status route) and the booking form.
STATUS_ENDPOINT = "AppointmentModelView.status"
ADD_ENDPOINT = "AppointmentModelView.add"
SHOW_ENDPOINT = "AppointmentModelView.show"
VISIT_ENDPOINT = "ConsultationModelView.start"
PATIENT_ENDPOINT = "PatientModelView.show"
#: Icons that tell the statuses apart besides their colour (Font Awesome 6, served locally).
STATUS_ICONS = {
    "booked": "fa-regular fa-calendar",
    "confirmed": "fa-regular fa-circle-check",
    "arrived": "fa-solid fa-door-open",
    "in_consultation": "fa-solid fa-stethoscope",
    "completed": "fa-solid fa-check-double",
    "cancelled": "fa-solid fa-ban",
    "no_show": "fa-solid fa-user-slash",
}
#: The day list's one-click steps from each status: (target status, button label).
NEXT_STEPS = {
    "booked": [("arrived", _l("Check in")), ("confirmed", _l("Confirm")), ("no_show", _l("No-show"))],
    "confirmed": [("arrived", _l("Check in")), ("no_show", _l("No-show"))],
    "arrived": [("completed", _l("Complete"))],
    "in_consultation": [("completed", _l("Complete"))],
}


def doctor_label(doctor: User) -> str:
    return _("Dr %(name)s", name=f"{doctor.first_name} {doctor.last_name}".strip())


def _int_arg(name: str) -> int | None:
    try:
        return int(request.args.get(name, ""))
    except ValueError:
        return None


def chosen_branch(value: int | None = None) -> Branch:
    """The branch asked for when the user may see it, else the user's first branch (404: none).

    Another branch's id is ignored, never served.
    """
    allowed = allowed_branch_ids()
    if not allowed:
        abort(404)
    branch_id = value if value in allowed else allowed[0]
    return db.session.get(Branch, branch_id)


def branch_choices() -> list[Branch]:
    ids = allowed_branch_ids()
    return list(db.session.scalars(select(Branch).where(Branch.id.in_(ids)).order_by(Branch.name)))


def branch_today(branch: Branch) -> date:
    return datetime.now(ZoneInfo(branch.time_zone)).date()


def chosen_day(branch: Branch) -> date:
    try:
        return date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        return branch_today(branch)


def appointments_between(branch: Branch, first: date, last: date) -> list[Appointment]:
    """The branch's appointments touching the local days ``first``..``last``, by start."""
    start, _end = day_bounds(branch, first)
    _start, end = day_bounds(branch, last)
    query = (
        select(Appointment)
        .where(
            Appointment.branch_id == branch.id,
            Appointment.starts_at < end,
            Appointment.ends_at > start,
        )
        .options(selectinload(Appointment.patient), selectinload(Appointment.service))
        .order_by(Appointment.starts_at, Appointment.id)
    )
    return list(db.session.scalars(query))


def log_reads(branch: Branch, appointments: list[Appointment]) -> None:
    """One access-log entry naming the appointments (and so the patients) a page showed."""
    if appointments:
        record_access(
            "patient", None, "view", records=[a.id for a in appointments], model="Appointment",
            subject_ids=[a.patient_id for a in appointments], branch_id=branch.id,
        )


def desk_context(branch: Branch, day: date, today: date, step: timedelta) -> dict[str, Any]:
    """What the calendar and the day list share: the branch and day, the toolbar's links and
    choices, the status colours and icons, and which other screens the user may open."""
    return {
        "branch": branch,
        "branches": branch_choices(),
        "day": day,
        "today": today,
        "prev_day": (day - step).isoformat(),
        "next_day": (day + step).isoformat(),
        "statuses": APPOINTMENT_STATUS_LABELS,
        "icons": STATUS_ICONS,
        "can_walk_in": may_open("AppointmentCalendarView.walk_in"),
        "can_show": may_open(SHOW_ENDPOINT),
        "doctor_label": doctor_label,
        "format_date": format_date,
    }


def grid_labels() -> dict[str, str]:
    return {
        "closed": _("Closed: %(name)s"),  # filled in by the grid
        "leave": _("On leave"),
        "break": _("Break"),
        "off": _("Not working"),
    }


class AppointmentCalendarView(BaseView):
    """The calendar (day and week), the day list with one-click check-in, and walk-ins."""

    route_base = "/appointments"
    default_view = "calendar"
    class_permission_name = APPOINTMENTS
    method_permission_name = {"calendar": "read", "day": "read", "walk_in": "create"}
    # The same permissions as the appointments screen that shares this name (FAB keeps only the
    # pairs every view of one name declares).
    base_permissions = [READ, CREATE, EDIT]

    @expose("/calendar")
    @has_access
    def calendar(self):
        """A branch's day (a column per doctor) or a doctor's week (a column per day)."""
        branch = chosen_branch(_int_arg("branch"))
        tz = ZoneInfo(branch.time_zone)
        day = chosen_day(branch)
        mode = "week" if request.args.get("view") == "week" else "day"
        doctors = available_doctors(branch)
        doctor = next((d for d in doctors if d.id == _int_arg("doctor")), None)
        if mode == "week":
            doctor = doctor or (doctors[0] if doctors else None)
            first = day - timedelta(days=day.weekday())
            days = [first + timedelta(days=i) for i in range(7)]
        else:
            days = [day]
        appointments = appointments_between(branch, days[0], days[-1])
        if mode == "day" and doctor is None:
            # Someone booked with a doctor no longer on the branch's roster still shows.
            known = {d.id for d in doctors}
            for appointment in appointments:
                if appointment.doctor_id not in known:
                    doctors.append(appointment.doctor)
                    known.add(appointment.doctor_id)
        shown = [doctor] if doctor is not None else doctors
        today = branch_today(branch)
        specs = []
        if mode == "day":
            pairs = [(d, day) for d in shown]
        else:
            pairs = [(doctor, d) for d in days] if doctor is not None else []
        for column_doctor, column_day in pairs:
            schedule = doctor_day(column_doctor, branch, column_day)
            bounds = day_bounds(branch, column_day)
            specs.append(
                ColumnSpec(
                    key=f"{column_doctor.id}-{column_day.isoformat()}",
                    heading=(
                        doctor_label(column_doctor) if mode == "day"
                        else format_date(column_day, "EEE d MMM")
                    ),
                    subheading=_speciality(column_doctor) if mode == "day" else "",
                    doctor=column_doctor,
                    day=column_day,
                    intervals=schedule.intervals,
                    is_on_leave=schedule.is_on_leave,
                    holiday=schedule.holiday,
                    free=set(free_slots(column_doctor, branch, column_day, SLOT_MIN)),
                    appointments=[
                        a for a in appointments
                        if a.doctor_id == column_doctor.id
                        and as_utc(a.starts_at) < bounds[1] and as_utc(a.ends_at) > bounds[0]
                    ],
                    is_today=column_day == today,
                )
            )
        can_book = may_open(ADD_ENDPOINT)

        def book_url(spec: ColumnSpec, moment: datetime) -> str | None:
            if not can_book:
                return None
            return url_for(
                ADD_ENDPOINT, doctor=spec.doctor.id, branch=branch.id,
                starts_at=moment.strftime(LOCAL_INPUT_FORMAT),
            )

        grid = build_grid(specs, tz, grid_labels(), book_url)
        shown_appointments = [a for spec in specs for a in spec.appointments]
        log_reads(branch, shown_appointments)
        nav = {"branch": branch.id, "view": mode}
        if doctor is not None:
            nav["doctor"] = doctor.id
        return self.render_template(
            "clinic/appointments/calendar.html",
            title=_l("Calendar"),
            **desk_context(branch, day, today, timedelta(days=7 if mode == "week" else 1)),
            doctors=doctors,
            doctor=doctor,
            mode=mode,
            days=days,
            grid=grid,
            tz=tz,
            nav=nav,
            can_book=can_book,
            local=local,
        )

    @expose("/day")
    @has_access
    def day(self):
        """The day's appointments at a branch, in time order, with one-click status buttons."""
        branch = chosen_branch(_int_arg("branch"))
        tz = ZoneInfo(branch.time_zone)
        day = chosen_day(branch)
        user = g.user
        mine_only = is_doctor(user) and request.args.get("all") != "1"
        appointments = appointments_between(branch, day, day)
        start, end = day_bounds(branch, day)
        appointments = [a for a in appointments if start <= as_utc(a.starts_at) < end]
        if mine_only:
            appointments = [a for a in appointments if a.doctor_id == user.id]
        log_reads(branch, appointments)
        counts = Counter(a.status for a in appointments)
        return self.render_template(
            "clinic/appointments/day.html",
            title=_l("Today"),
            **desk_context(branch, day, branch_today(branch), timedelta(days=1)),
            appointments=appointments,
            counts=counts,
            next_steps=NEXT_STEPS,
            mine_only=mine_only,
            is_doctor=is_doctor(user),
            can_change=may_open(STATUS_ENDPOINT),
            can_visit=may_open(VISIT_ENDPOINT),
            can_patient=may_open(PATIENT_ENDPOINT),
            local=lambda when: local(when, tz),
        )

    @expose("/walk-in", methods=["GET", "POST"])
    @has_access
    def walk_in(self):
        """Find or quickly register a patient, pick a doctor, and check them in now."""
        posted = request.method == "POST"
        source = request.form if posted else request.args
        try:
            wanted_branch = int(source.get("branch", ""))
        except ValueError:
            wanted_branch = None
        branch = chosen_branch(wanted_branch)
        form = WalkInForm(request.form if posted else None)
        doctors = available_doctors(branch)
        services = list(
            db.session.scalars(
                select(Service).where(Service.is_active.is_(True)).order_by(Service.name)
            )
        )
        form.branch.choices = [(b.id, b.name) for b in branch_choices()]
        form.doctor.choices = [(d.id, doctor_label(d)) for d in doctors]
        form.service.choices = [(0, _("No particular service"))] + [
            (s.id, s.name) for s in services
        ]
        query = (source.get("q") or "").strip()
        matches = search_patients(query, limit=WALK_IN_MATCHES) if query else []
        if not posted:
            form.branch.data = branch.id
            form.q.data = query
            form.doctor.data = first_available(branch, doctors)
            chosen = _int_arg("patient")
            if chosen and (patient := active_patient(chosen)) is not None:
                matches = [patient] + [m for m in matches if m.id != patient.id]
                form.patient.data = str(patient.id)
            elif len(matches) == 1:
                form.patient.data = str(matches[0].id)
            elif query and not matches:
                form.patient.data = "new"
                if not any(ch.isdigit() for ch in query):
                    first, _sep, last = query.partition(" ")
                    form.first_name.data, form.last_name.data = first, last.strip()
        duplicates: list[Patient] = []
        if posted and form.validate():
            outcome = check_in_walk_in(form, branch, doctors, services)
            if isinstance(outcome, Appointment):
                starts = local(outcome.starts_at, ZoneInfo(branch.time_zone))
                flash(
                    _("%(patient)s is checked in to see %(doctor)s at %(time)s.",
                      patient=outcome.patient.full_name, doctor=doctor_label(outcome.doctor),
                      time=starts.strftime("%H:%M")),
                    "success",
                )
                return redirect(url_for(".day", branch=branch.id, date=starts.date().isoformat()))
            duplicates = outcome
        chosen_id = form.patient.data if form.patient.data not in (None, "", "new") else None
        if chosen_id and not any(str(m.id) == chosen_id for m in matches):
            patient = active_patient(int(chosen_id)) if chosen_id.isdigit() else None
            if patient is not None:
                matches = [patient] + matches
        choices = duplicates + [m for m in matches if m not in duplicates]
        if choices:  # names, birth dates and phones of the patients the search offers
            ids = [patient.id for patient in choices]
            record_access("patient", None, "view", records=ids, model="Patient",
                          subject_ids=ids, branch_id=branch.id)
        return self.render_template(
            "clinic/appointments/walk_in.html",
            title=_l("Walk-in"),
            form=form,
            branch=branch,
            choices=choices,
            duplicates=duplicates,
            query=query,
            searched=bool(query),
            can_day=may_open("AppointmentCalendarView.day"),
        )


def _speciality(doctor: User) -> str:
    profile = db.session.get(StaffProfile, doctor.id)
    return (profile.speciality or "") if profile else ""
