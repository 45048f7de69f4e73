"""Appointments: booking rules, status life-cycle, moves with history, walk-ins, branch isolation,
the REST API, and (on PostgreSQL) simultaneous bookings of one slot."""

from __future__ import annotations

import re
import threading
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

import app.services.appointments as appointments_service
from app.extensions import db
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import (
    Appointment,
    AppointmentChange,
    DoctorLeave,
    Holiday,
    Service,
    WorkingHours,
)
from app.services.appointments import (
    AppointmentError,
    AppointmentStatusError,
    SlotUnavailableError,
    book_appointment,
    change_status,
    doctor_day,
    free_slots,
    register_walk_in,
    reschedule_appointment,
)
from app.services.audit import acting_as
from app.services.patients import register_patient
from tests.conftest import bearer_headers, csrf_token_from, login_as
from tests.scheduling_support import Team, make_team

# The rules of the clinical core hold on SQLite too (the subset CI runs there).
pytestmark = pytest.mark.sqlite_subset

ZONE = ZoneInfo("Asia/Kolkata")  # both test branches
#: Days ahead of today that tests book on (each test its own day, so they never collide).
BASE = datetime.now(ZONE).date() + timedelta(days=10)


def day(offset: int) -> date:
    return BASE + timedelta(days=offset)


def at(on: date, hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime.combine(on, time(hour, minute), tzinfo=ZONE)


def local_input(on: date, hhmm: str) -> str:
    return f"{on.isoformat()}T{hhmm}"


def post_form(client, path: str, data: dict, page_path: str | None = None):
    page = client.get(page_path or path).get_data(as_text=True)
    return client.post(path, data={**data, "csrf_token": csrf_token_from(page)})


class World:
    """Ids of what the tests book with (tests/scheduling_support.py), plus two services."""

    def __init__(self, team: Team) -> None:
        self.alder, self.birch = team.alder, team.birch
        self.doc_a, self.doc_b, self.rover = team.doc_a, team.doc_b, team.rover
        self.desk_a = team.desk_a
        self.asha, self.bala, self.chitra = team.patients
        self.consult = self.retired = 0


@pytest.fixture(scope="module")
def world(app) -> World:
    w = World(make_team(app))
    with app.app_context(), acting_as("test:setup"):
        for weekday in range(7):
            db.session.add_all([
                WorkingHours(doctor_id=w.doc_a, branch_id=w.alder, weekday=weekday,
                             start_time=time(9), end_time=time(17), break_start=time(13),
                             break_end=time(14)),
                WorkingHours(doctor_id=w.doc_b, branch_id=w.birch, weekday=weekday,
                             start_time=time(9), end_time=time(17)),
                WorkingHours(doctor_id=w.rover, branch_id=w.alder, weekday=weekday,
                             start_time=time(9), end_time=time(13)),
                WorkingHours(doctor_id=w.rover, branch_id=w.birch, weekday=weekday,
                             start_time=time(9), end_time=time(18)),
            ])
        consult = Service(name="Consultation (test)", default_duration_min=30)
        retired = Service(name="Retired service (test)", default_duration_min=20, is_active=False)
        db.session.add_all([consult, retired])
        db.session.commit()
        w.consult, w.retired = consult.id, retired.id
    return w


def get(model, pk):
    return db.session.get(model, pk)


def book(w: World, *, patient=None, doctor=None, branch=None, when=None, minutes=None,
         service=None, **kwargs) -> Appointment:
    """Book through the service inside an app context; returns the committed appointment."""
    from flask_appbuilder.security.sqla.models import User

    appointment = book_appointment(
        patient=get(Patient, patient or w.asha),
        doctor=get(User, doctor or w.doc_a),
        branch=get(Branch, branch or w.alder),
        starts_at=when,
        duration_min=minutes,
        service=get(Service, service) if service else None,
        **kwargs,
    )
    db.session.commit()
    return appointment


def refused(w: World, error=SlotUnavailableError, **kwargs) -> str:
    with pytest.raises(error) as caught:
        book(w, **kwargs)
    db.session.rollback()
    return str(caught.value)


def live_count(doctor_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Appointment).where(
            Appointment.doctor_id == doctor_id, Appointment.status.not_in(("cancelled", "no_show"))
        )
    )


# Booking rules (service) ------------------------------------------------------------------------


def test_booking_inside_hours_records_the_step_and_the_service_duration(app, world):
    with app.app_context(), acting_as("test:desk"):
        appointment = book(world, when=at(day(0), "09:30"), service=world.consult)
        assert appointment.duration_min == 30
        assert appointment.ends_at.astimezone(ZONE).time() == time(10, 0)
        assert appointment.status == "booked"
        assert [c.kind for c in appointment.changes] == ["booked"]
        default = book(world, when=at(day(0), "10:00"))
        assert default.duration_min == 15


@pytest.mark.parametrize(
    "hhmm, minutes",
    [("08:45", 15), ("16:50", 15), ("13:15", 15), ("12:50", 15), ("17:00", 15)],
    ids=["before opening", "runs past closing", "in the break", "runs into the break", "at closing"],
)
def test_outside_working_hours_or_in_the_break_is_refused(app, world, hhmm, minutes):
    with app.app_context():
        message = refused(world, when=at(day(1), hhmm), minutes=minutes)
        assert "Anita Kapoor" in message and "working hours" in message


def test_a_day_without_hours_at_that_branch_is_refused(app, world):
    with app.app_context():
        # The rover works at Alder only until 13:00.
        refused(world, doctor=world.rover, when=at(day(1), "15:00"))
        # ... and Anita never works at Birch.
        message = refused(world, error=AppointmentError, branch=world.birch, when=at(day(1), "10:00"))
        assert "does not work at Birch Clinic" in message


def test_leave_and_holidays_are_refused(app, world):
    with app.app_context():
        db.session.add(DoctorLeave(doctor_id=world.doc_a, starts_on=day(2), ends_on=day(3),
                                   note="Conference"))
        db.session.add(Holiday(branch_id=world.birch, day=day(4), name="Lake festival"))
        db.session.commit()
        assert "on leave" in refused(world, when=at(day(2), "10:00"))
        assert "on leave" in refused(world, when=at(day(3), "16:00"))
        message = refused(world, doctor=world.doc_b, branch=world.birch, when=at(day(4), "10:00"))
        assert "closed" in message and "Lake festival" in message
        book(world, when=at(day(4), "10:00"))  # Alder is open that day
        schedule = doctor_day(get_user(world.doc_a), get(Branch, world.alder), day(2))
        assert schedule.is_on_leave and not schedule.is_working


def get_user(pk):
    from flask_appbuilder.security.sqla.models import User

    return db.session.get(User, pk)


def test_the_past_is_refused(app, world):
    with app.app_context():
        yesterday = datetime.now(ZONE).date() - timedelta(days=1)
        assert "already passed" in refused(world, when=at(yesterday, "10:00"))


def test_overlap_with_the_same_doctor_in_another_branch_is_refused(app, world):
    with app.app_context():
        book(world, doctor=world.rover, branch=world.alder, when=at(day(5), "10:05"), minutes=30)
        message = refused(
            world, doctor=world.rover, branch=world.birch, when=at(day(5), "10:20"),
            patient=world.bala,
        )
        assert message == "Roshan Varma is not available at that time. Choose another slot."
        # Another doctor is free then; and the rover is free again from 10:35.
        book(world, doctor=world.doc_b, branch=world.birch, when=at(day(5), "10:20"),
             patient=world.bala)
        book(world, doctor=world.rover, branch=world.birch, when=at(day(5), "10:35"),
             patient=world.bala)


def test_adjacent_appointments_are_allowed(app, world):
    with app.app_context():
        book(world, when=at(day(6), "11:00"), minutes=30)
        book(world, when=at(day(6), "11:30"), minutes=30, patient=world.bala)
        book(world, when=at(day(6), "10:30"), minutes=30, patient=world.chitra)
        refused(world, when=at(day(6), "11:29"), minutes=5)


@pytest.mark.parametrize("released", ["cancelled", "no_show"])
def test_cancelled_and_no_show_free_the_slot(app, world, released):
    slot = at(day(7), "15:00" if released == "cancelled" else "16:00")
    with app.app_context():
        first = book(world, when=slot)
        refused(world, when=slot, patient=world.bala)
        change_status(first, released, reason="Patient phoned" if released == "cancelled" else None)
        db.session.commit()
        second = book(world, when=slot, patient=world.bala)
        assert second.status == "booked"


def test_merged_patients_non_doctors_and_retired_services_are_refused(app, world):
    with app.app_context():
        merged = Patient(first_name="Old", last_name="Duplicate", sex="male",
                         registered_branch_id=world.alder, merged_into_id=world.asha)
        register_patient(merged)
        db.session.commit()
        assert "merged" in refused(world, error=AppointmentError, patient=merged.id,
                                   when=at(day(8), "10:00"))
        refused(world, error=AppointmentError, doctor=world.desk_a, when=at(day(8), "10:00"))
        assert "no longer offered" in refused(world, error=AppointmentError,
                                              service=world.retired, when=at(day(8), "10:00"))


# Status life-cycle and moves --------------------------------------------------------------------


def test_the_status_life_cycle(app, world):
    with app.app_context():
        appointment = book(world, when=at(day(9), "09:00"))
        for step in ("confirmed", "arrived", "in_consultation", "completed"):
            change_status(appointment, step)
        db.session.commit()
        assert appointment.checked_in_at is not None
        assert [c.to_status for c in appointment.changes if c.kind == "status"] == [
            "confirmed", "arrived", "in_consultation", "completed"
        ]
        for later in ("booked", "cancelled", "arrived"):
            with pytest.raises(AppointmentStatusError):
                change_status(appointment, later, reason="x")
        other = book(world, when=at(day(9), "09:30"))
        with pytest.raises(AppointmentStatusError):
            change_status(other, "in_consultation")
        with pytest.raises(AppointmentStatusError, match="reason"):
            change_status(other, "cancelled", reason="  ")
        change_status(other, "cancelled", reason="Unwell")
        db.session.commit()
        assert other.cancel_reason == "Unwell"
        with pytest.raises(AppointmentStatusError):
            change_status(other, "confirmed")


def test_rescheduling_keeps_the_history_and_the_rules(app, world):
    with app.app_context(), acting_as("test:desk"):
        appointment = book(world, when=at(day(10), "09:00"))
        blocker = book(world, when=at(day(10), "11:00"), patient=world.bala)
        reschedule_appointment(appointment, starts_at=at(day(10), "10:00"), note="Patient asked")
        db.session.commit()
        moved = [c for c in appointment.changes if c.kind == "rescheduled"]
        assert len(moved) == 1 and moved[0].note == "Patient asked"
        assert moved[0].from_starts_at.replace(tzinfo=timezone.utc) == at(day(10), "09:00")
        assert moved[0].to_starts_at.replace(tzinfo=timezone.utc) == at(day(10), "10:00")
        with pytest.raises(SlotUnavailableError):
            reschedule_appointment(appointment, starts_at=at(day(10), "11:05"))
        db.session.rollback()
        # Moving onto its own time (a longer slot overlapping itself) is fine.
        appointment = db.session.get(Appointment, appointment.id)
        reschedule_appointment(appointment, starts_at=at(day(10), "10:05"), duration_min=20)
        db.session.commit()
        change_status(blocker, "arrived")
        with pytest.raises(AppointmentStatusError):
            reschedule_appointment(blocker, starts_at=at(day(10), "15:00"))
        db.session.rollback()


def test_walk_ins_start_now_or_at_the_next_free_moment(app, world):
    with app.app_context():
        walk_day = day(11)
        book(world, when=at(walk_day, "10:00"), minutes=30)
        now = at(walk_day, "10:07")
        walk_in = register_walk_in(
            patient=get(Patient, world.bala), doctor=get_user(world.doc_a),
            branch=get(Branch, world.alder), now=now,
        )
        db.session.commit()
        assert walk_in.is_walk_in and walk_in.status == "arrived" and walk_in.checked_in_at
        assert walk_in.starts_at.replace(tzinfo=timezone.utc) == at(walk_day, "10:30")
        # Outside working hours a walk-in is still seen (rounded down to 5 minutes) ...
        late = register_walk_in(
            patient=get(Patient, world.chitra), doctor=get_user(world.doc_a),
            branch=get(Branch, world.alder), now=at(walk_day, "19:03"),
            service=get(Service, world.consult),
        )
        db.session.commit()
        assert late.starts_at.replace(tzinfo=timezone.utc) == at(walk_day, "19:00")
        assert late.duration_min == 30
        # ... but never on top of another appointment, nor past the end of the day.
        with pytest.raises(SlotUnavailableError):
            register_walk_in(
                patient=get(Patient, world.asha), doctor=get_user(world.doc_a),
                branch=get(Branch, world.alder), now=at(walk_day, "23:55"),
            )


def test_free_slots_skip_breaks_bookings_and_the_past(app, world):
    with app.app_context():
        slot_day = day(12)
        book(world, when=at(slot_day, "09:15"), minutes=30)
        slots = [s.astimezone(ZONE).strftime("%H:%M")
                 for s in free_slots(get_user(world.doc_a), get(Branch, world.alder), slot_day, 30)]
        assert slots[:3] == ["09:45", "10:00", "10:15"]
        assert "09:00" not in slots and "09:30" not in slots
        assert "12:30" in slots and "12:45" not in slots and "13:30" not in slots
        assert "14:00" in slots and slots[-1] == "16:30"


def test_working_hours_are_the_branch_local_time(app, world):
    with app.app_context():
        london = Branch(name="Thames Clinic", code="TH", country="GB",
                        time_zone="Europe/London", currency="GBP")
        db.session.add(london)
        rover = get_user(world.rover)
        rover.branches.append(london)
        db.session.flush()
        db.session.add(WorkingHours(doctor_id=rover.id, branch_id=london.id,
                                    weekday=day(13).weekday(), start_time=time(9),
                                    end_time=time(12)))
        db.session.commit()
        london_zone = ZoneInfo("Europe/London")
        nine_in_london = datetime.combine(day(13), time(9), tzinfo=london_zone)
        book(world, doctor=world.rover, branch=london.id, when=nine_in_london)
        refused(world, doctor=world.rover, branch=london.id,
                when=datetime.combine(day(13), time(8, 45), tzinfo=london_zone))


# Through the screens ----------------------------------------------------------------------------


def booking_form(world: World, on: date, hhmm: str, **overrides) -> dict:
    return {
        "patient": str(world.asha),
        "branch": str(world.alder),
        "doctor": str(world.doc_a),
        "service": "",
        "starts_at": local_input(on, hhmm),
        "duration_min": "",
        "reason": "Follow-up Xq7",
        "notes": "",
        **overrides,
    }


def test_booking_through_the_form(app, world):
    client = login_as(app, "desk_a")
    page = client.get(
        f"/appointments/add?doctor={world.doc_a}&branch={world.alder}&patient={world.asha}"
        f"&starts_at={local_input(day(14), '09:45')}"
    ).get_data(as_text=True)
    assert f'value="{local_input(day(14), "09:45")}"' in page
    assert re.search(rf'<option selected value="{world.doc_a}"|value="{world.doc_a}" selected', page)
    assert "Retired service (test)" not in page
    response = client.post(
        "/appointments/add",
        data={**booking_form(world, day(14), "09:45", service=str(world.consult)),
              "csrf_token": csrf_token_from(page)},
    )
    assert response.status_code == 302
    pk = int(response.headers["Location"].rstrip("/").split("/")[-1])
    with app.app_context():
        appointment = db.session.get(Appointment, pk)
        assert appointment.booked_by_id == world.desk_a
        assert appointment.duration_min == 30
        assert appointment.starts_at.replace(tzinfo=timezone.utc) == at(day(14), "09:45")
    show = client.get(f"/appointments/show/{pk}").get_data(as_text=True)
    assert "Asha Qwertyson" in show and "09:45" in show and "Booked for" in show


def test_a_refused_booking_keeps_the_form_and_reveals_nothing_of_the_other(app, world):
    with app.app_context():
        other = book(world, doctor=world.rover, branch=world.alder, when=at(day(15), "10:05"),
                     minutes=30, patient=world.chitra)
        mrn = other.patient.mrn
    client = login_as(app, "desk_b")  # Birch
    response = post_form(
        client, "/appointments/add",
        booking_form(world, day(15), "10:20", branch=str(world.birch), doctor=str(world.rover),
                     patient=str(world.bala), reason="Keep this Kq9"),
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Roshan Varma is not available at that time. Choose another slot." in body
    assert "Keep this Kq9" in body  # the form keeps what was typed
    # The patient dropdown lists every patient (organisation-wide); nothing else may name them.
    outside_dropdowns = re.sub(r"<select.*?</select>", "", body, flags=re.S)
    for leak in ("Chitra", "Plumtree", mrn, "10:05", "10:35"):
        assert leak not in outside_dropdowns, leak
    with app.app_context():
        assert live_count(world.rover) == db.session.scalar(
            sa.select(sa.func.count()).select_from(Appointment).where(
                Appointment.doctor_id == world.rover,
                Appointment.status.not_in(("cancelled", "no_show")),
            )
        )


def test_outside_hours_through_the_form(app, world):
    client = login_as(app, "desk_a")
    body = post_form(client, "/appointments/add",
                     booking_form(world, day(16), "13:30")).get_data(as_text=True)
    assert "does not see patients at Alder Clinic at that time" in body


def test_status_buttons_and_cancel_reason(app, world):
    with app.app_context():
        pk = book(world, when=at(day(17), "09:00")).id
    client = login_as(app, "desk_a")
    show = client.get(f"/appointments/show/{pk}").get_data(as_text=True)
    assert 'name="reason"' in show and 'value="confirmed"' in show
    token = csrf_token_from(show)
    response = client.post(f"/appointments/{pk}/status",
                           data={"status": "arrived", "csrf_token": token,
                                 "next": "/appointments/list/"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/appointments/list/")
    # Another site as "next" is ignored.
    response = client.post(f"/appointments/{pk}/status",
                           data={"status": "in_consultation", "csrf_token": token,
                                 "next": "https://evil.example/"})
    assert response.headers["Location"].endswith(f"/appointments/show/{pk}")
    refused_page = client.post(f"/appointments/{pk}/status",
                               data={"status": "booked", "csrf_token": token},
                               follow_redirects=True).get_data(as_text=True)
    assert "cannot become booked" in refused_page
    with app.app_context():
        pk2 = book(world, when=at(day(17), "10:00")).id
    page = client.post(f"/appointments/{pk2}/status",
                       data={"status": "cancelled", "csrf_token": token},
                       follow_redirects=True).get_data(as_text=True)
    assert "Give a reason for cancelling." in page
    client.post(f"/appointments/{pk2}/status",
                data={"status": "cancelled", "reason": "Travelling", "csrf_token": token})
    with app.app_context():
        assert db.session.get(Appointment, pk).status == "in_consultation"
        assert db.session.get(Appointment, pk).checked_in_at is not None
        cancelled = db.session.get(Appointment, pk2)
        assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "Travelling")
    history = client.get(f"/appointments/show/{pk2}").get_data(as_text=True)
    assert "Travelling" in history and "Cancelled" in history


def test_moving_through_the_edit_form_keeps_the_history(app, world):
    with app.app_context():
        pk = book(world, when=at(day(18), "09:00")).id
    client = login_as(app, "desk_a")
    page = client.get(f"/appointments/edit/{pk}").get_data(as_text=True)
    assert f'value="{local_input(day(18), "09:00")}"' in page  # branch-local in the form
    response = client.post(f"/appointments/edit/{pk}", data={
        "doctor": str(world.doc_a), "service": "", "starts_at": local_input(day(18), "15:00"),
        "duration_min": "20", "reason": "Moved Mv3", "notes": "", "change_note": "Bus strike",
        "csrf_token": csrf_token_from(page),
    })
    assert response.status_code == 302
    with app.app_context():
        appointment = db.session.get(Appointment, pk)
        assert appointment.starts_at.replace(tzinfo=timezone.utc) == at(day(18), "15:00")
        assert appointment.duration_min == 20 and appointment.reason == "Moved Mv3"
        kinds = [c.kind for c in appointment.changes]
        assert kinds == ["booked", "rescheduled", "edited"]
    show = client.get(f"/appointments/show/{pk}").get_data(as_text=True)
    assert "Moved from" in show and "Bus strike" in show
    # A move into the break is refused and the form keeps the typed values.
    body = client.post(f"/appointments/edit/{pk}", data={
        "doctor": str(world.doc_a), "service": "", "starts_at": local_input(day(18), "13:10"),
        "duration_min": "20", "reason": "Typed Tz5", "notes": "", "change_note": "",
        "csrf_token": csrf_token_from(page),
    }).get_data(as_text=True)
    assert "working hours" in body and "Typed Tz5" in body


def test_the_list_filters_and_the_patient_timeline(app, world):
    with app.app_context():
        pk = book(world, when=at(day(19), "11:00"), patient=world.chitra).id
        book(world, doctor=world.doc_b, branch=world.birch, when=at(day(19), "11:00"),
             patient=world.chitra)
    client = login_as(app, "owner")
    listed = client.get(f"/appointments/list/?date={day(19).isoformat()}&doctor={world.doc_a}"
                        ).get_data(as_text=True)
    assert f"/appointments/show/{pk}" in listed and listed.count("Chitra Plumtree") == 1
    assert "Plumtree" not in client.get(
        f"/appointments/list/?date={day(19).isoformat()}&status=cancelled").get_data(as_text=True)
    timeline = login_as(app, "desk_a").get(f"/patients/show/{world.chitra}").get_data(as_text=True)
    assert f"/appointments/show/{pk}" in timeline and "Appointment with Anita Kapoor" in timeline
    # The Birch appointment is not on an Alder receptionist's timeline.
    assert "Appointment with Bharat Shetty" not in timeline


# Branches and roles -----------------------------------------------------------------------------


def test_another_branchs_appointments_stay_out_of_reach(app, world):
    with app.app_context():
        pk = book(world, when=at(day(20), "09:00"), patient=world.chitra).id
    client = login_as(app, "desk_b")
    assert client.get(f"/appointments/show/{pk}").status_code == 404
    assert client.get(f"/appointments/edit/{pk}").status_code == 404
    listed = client.get("/appointments/list/").get_data(as_text=True)
    assert f"/appointments/show/{pk}" not in listed
    add_page = client.get("/appointments/add").get_data(as_text=True)
    assert "Anita Kapoor" not in add_page and "Alder Clinic" not in add_page
    assert "Bharat Shetty" in add_page
    token = csrf_token_from(add_page)
    assert client.post(f"/appointments/{pk}/status",
                       data={"status": "cancelled", "reason": "x", "csrf_token": token}
                       ).status_code == 404
    headers = bearer_headers(app, "desk_b")
    assert client.get(f"/api/v1/appointments/{pk}", headers=headers).status_code == 404
    ids = [row["id"] for row in client.get("/api/v1/appointments/", headers=headers).get_json()["result"]]
    assert pk not in ids
    # Booking an Alder doctor at Birch through the form is not possible either.
    body = client.post("/appointments/add", data={
        **booking_form(world, day(20), "10:00", branch=str(world.alder)), "csrf_token": token,
    }).get_data(as_text=True)
    assert "This field is required." in body  # neither the branch nor the doctor is offered
    with app.app_context():
        assert db.session.get(Appointment, pk).status == "booked"
        assert db.session.scalar(
            sa.select(sa.func.count()).select_from(Appointment).where(
                Appointment.doctor_id == world.doc_a,
                Appointment.starts_at == at(day(20), "10:00").astimezone(timezone.utc),
            )
        ) == 0


@pytest.mark.parametrize("username", ["pharmacist", "labtech", "accountant"])
def test_roles_without_the_diary_cannot_open_appointments(app, world, username):
    client = login_as(app, username)
    assert client.get("/appointments/list/").status_code == 403
    assert client.get("/appointments/add").status_code == 403
    headers = bearer_headers(app, username)
    assert client.get("/api/v1/appointments/", headers=headers).status_code == 403


def test_the_owner_reads_the_diary_but_does_not_book(app, world):
    client = login_as(app, "owner")
    assert client.get("/appointments/list/").status_code == 200
    assert client.get("/appointments/add").status_code == 403


# REST API ---------------------------------------------------------------------------------------


def test_the_api_books_and_moves_through_the_same_rules(app, world):
    client = app.test_client()
    headers = bearer_headers(app, "desk_a")
    payload = {"patient": world.asha, "doctor": world.doc_a, "branch": world.alder,
               "starts_at": at(day(21), "09:00").isoformat(), "reason": "API booking"}
    response = client.post("/api/v1/appointments/", json=payload, headers=headers)
    assert response.status_code == 201, response.get_json()
    pk = response.get_json()["id"]
    clash = client.post("/api/v1/appointments/", headers=headers, json={
        **payload, "patient": world.bala, "starts_at": at(day(21), "09:10").isoformat(),
    })
    assert clash.status_code == 422
    message = clash.get_json()["message"]
    assert message == "Anita Kapoor is not available at that time. Choose another slot."
    naive_local = client.post("/api/v1/appointments/", headers=headers, json={
        **payload, "patient": world.bala, "starts_at": f"{day(21).isoformat()}T13:30:00",
    })
    assert naive_local.status_code == 422 and "working hours" in naive_local.get_json()["message"]
    moved = client.put(f"/api/v1/appointments/{pk}", headers=headers,
                       json={"starts_at": at(day(21), "15:00").isoformat()})
    assert moved.status_code == 200, moved.get_json()
    blocked = client.put(f"/api/v1/appointments/{pk}", headers=headers,
                         json={"starts_at": at(day(21), "13:15").isoformat()})
    assert blocked.status_code == 422
    other_branch = client.post("/api/v1/appointments/", headers=headers, json={
        **payload, "branch": world.birch, "doctor": world.doc_b,
    })
    assert other_branch.status_code == 422
    with app.app_context():
        appointment = db.session.get(Appointment, pk)
        assert appointment.starts_at.replace(tzinfo=timezone.utc) == at(day(21), "15:00")
        assert [c.kind for c in appointment.changes] == ["booked", "rescheduled"]
        assert appointment.booked_by_id == world.desk_a


def test_the_api_info_does_not_list_the_patient_register(app, world):
    """FAB's ``_info`` would list every patient (name and MRN) as the ``patient`` choices, a
    read of the register that no access log records; doctors and branches are still offered."""
    response = app.test_client().get("/api/v1/appointments/_info",
                                     headers=bearer_headers(app, "desk_a"))
    assert response.status_code == 200
    fields = {field["name"]: field for field in response.get_json()["add_columns"]}
    assert fields["patient"]["values"] == [] and "MRN-" not in response.get_data(as_text=True)
    assert fields["doctor"]["values"]


# Simultaneous bookings (PostgreSQL) -------------------------------------------------------------


def test_simultaneous_bookings_of_one_slot_book_exactly_one(app, world, monkeypatch, capsys):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: the exclusion constraint is PostgreSQL's")
    # Every request passes the service's own check at the same moment: the database decides.
    monkeypatch.setattr(appointments_service, "_busy", lambda *args, **kwargs: [])
    writers = 8
    start, booked, refusals, errors = threading.Barrier(writers), [], [], []
    slot = at(day(22), "10:00")

    def attempt(number: int) -> None:
        try:
            with app.app_context(), acting_as(f"test:desk-{number}"):
                patient = db.session.get(Patient, (world.asha, world.bala, world.chitra)[number % 3])
                doctor, branch = get_user(world.rover), db.session.get(Branch, world.birch)
                start.wait(timeout=30)
                try:
                    appointment = book_appointment(
                        patient=patient, doctor=doctor, branch=branch,
                        starts_at=slot + timedelta(minutes=number % 3 * 5), duration_min=20,
                    )
                    db.session.commit()
                    booked.append(appointment.id)
                except SlotUnavailableError as exc:
                    # The savepoint took the refusal: the request's transaction still works.
                    assert db.session.scalar(sa.select(sa.func.count()).select_from(Patient))
                    db.session.rollback()
                    refusals.append(str(exc))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(booked) == 1 and len(refusals) == writers - 1
    assert set(refusals) == {"Roshan Varma is not available at that time. Choose another slot."}
    with app.app_context():
        day_start, day_end = slot - timedelta(hours=2), slot + timedelta(hours=2)
        live = db.session.scalar(
            sa.select(sa.func.count()).select_from(Appointment).where(
                Appointment.doctor_id == world.rover,
                Appointment.starts_at >= day_start, Appointment.starts_at < day_end,
                Appointment.status.not_in(("cancelled", "no_show")),
            )
        )
        assert live == 1
        assert db.session.scalar(
            sa.select(sa.func.count()).select_from(AppointmentChange)
            .where(AppointmentChange.appointment_id == booked[0])
        ) == 1
    with capsys.disabled():
        print(f"\n[appointments] {writers} concurrent bookings of one slot: {len(booked)} booked")
