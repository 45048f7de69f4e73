"""The doctors' diaries and the service catalogue: screens, their validation messages, branch
scoping of rosters, leave and holidays, and who may change them."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.scheduling import DoctorLeave, Holiday, Service, StaffProfile, WorkingHours
from app.services.schedules import ScheduleError, check_working_hours
from tests.conftest import bearer_headers, csrf_token_from, login_as
from tests.scheduling_support import make_team

# The rules of the clinical core hold on SQLite too (the subset CI runs there).
pytestmark = pytest.mark.sqlite_subset

FUTURE = date.today() + timedelta(days=40)


def post_form(client, path: str, data: dict):
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    return client.post(path, data={**data, "csrf_token": csrf_token_from(page.get_data(as_text=True))})


@pytest.fixture(scope="module")
def who(app) -> dict[str, int]:
    """The tests' own branches and people (tests/scheduling_support.py), by short names."""
    team = make_team(app)
    return {"DT": team.alder, "LS": team.birch, "doctor": team.doc_a, "doctor2": team.doc_b,
            "reception": team.desk_a}


def hours_form(who: dict, **overrides) -> dict:
    return {
        "doctor": str(who["doctor"]), "branch": str(who["DT"]), "weekday": "2",
        "start_time": "09:00", "end_time": "17:00", "break_start": "13:00", "break_end": "14:00",
        **overrides,
    }


# Services ---------------------------------------------------------------------------------------


def test_the_service_catalogue(app):
    client = login_as(app, "owner")
    response = post_form(client, "/services/add", {
        "name": "Gum care review Qs1", "category": "Dental", "default_duration_min": "45",
        "description": "", "is_active": "y",
    })
    assert response.status_code == 302
    body = post_form(client, "/services/add", {
        "name": "Too long", "category": "", "default_duration_min": "600", "description": "",
    }).get_data(as_text=True)
    assert "Enter a duration between 5 and 480 minutes." in body
    assert "Gum care review Qs1" in client.get("/services/list/").get_data(as_text=True)
    with app.app_context():
        service = db.session.scalar(sa.select(Service).where(Service.name == "Gum care review Qs1"))
        assert service.default_duration_min == 45 and service.is_active
        assert db.session.scalar(sa.select(Service).where(Service.name == "Too long")) is None
    # Everyone who books can read it; only the owner (and admin) changes it.
    assert login_as(app, "accountant").get("/services/list/").status_code == 200
    assert login_as(app, "reception").get("/services/add").status_code == 403
    api = app.test_client()
    listed = api.get("/api/v1/services/", headers=bearer_headers(app, "doctor")).get_json()
    assert "Gum care review Qs1" in [row["name"] for row in listed["result"]]
    refused = api.post("/api/v1/services/", headers=bearer_headers(app, "owner"),
                       json={"name": "Api long", "default_duration_min": 3})
    assert refused.status_code == 422
    assert "between 5 and 480" in str(refused.get_json())


# Doctor profiles --------------------------------------------------------------------------------


def test_doctor_profiles_validate_the_colour_and_offer_only_doctors(app, who):
    client = login_as(app, "owner")
    page = client.get("/doctors/add").get_data(as_text=True)
    assert "Anita Kapoor" in page and "Deepa Alva" not in page  # the receptionist is no doctor
    body = post_form(client, "/doctors/add", {
        "user": str(who["doctor"]), "registration_number": "KMC 12345", "qualifications": "MBBS",
        "speciality": "Family medicine", "calendar_colour": "red",
    }).get_data(as_text=True)
    assert "Enter the colour as # and six hex digits" in body
    response = post_form(client, "/doctors/add", {
        "user": str(who["doctor"]), "registration_number": "KMC 12345", "qualifications": "MBBS",
        "speciality": "Family medicine", "calendar_colour": "#2f6fde",
    })
    assert response.status_code == 302
    with app.app_context():
        profile = db.session.get(StaffProfile, who["doctor"])
        assert (profile.registration_number, profile.calendar_colour) == ("KMC 12345", "#2f6fde")
    assert "KMC 12345" in client.get("/doctors/list/").get_data(as_text=True)
    assert login_as(app, "desk_a").get(f"/doctors/show/{who['doctor']}").status_code == 200
    assert login_as(app, "desk_a").get(f"/doctors/edit/{who['doctor']}").status_code == 403


# Working hours ----------------------------------------------------------------------------------


def test_working_hours_with_clear_messages(app, who):
    client = login_as(app, "desk_a")
    page = client.get("/working-hours/add").get_data(as_text=True)
    assert ">Wednesday<" in page
    assert post_form(client, "/working-hours/add", hours_form(who)).status_code == 302
    cases = [
        ({"end_time": "08:00"}, "The day must end after it starts."),
        ({"break_start": "08:00"}, "The break must fall within the working hours."),
        ({"break_end": "12:00"}, "The break must end after it starts."),
        ({"break_end": ""}, "Give both the start and the end of the break, or neither."),
        ({}, "This doctor already has hours at this branch on that day."),
    ]
    for overrides, message in cases:
        response = post_form(client, "/working-hours/add", hours_form(who, weekday="2", **overrides)
                             if not overrides else hours_form(who, weekday="3", **overrides))
        body = response.get_data(as_text=True)
        assert response.status_code == 200, message
        assert message in body, message
    with app.app_context():
        rows = db.session.scalars(
            sa.select(WorkingHours).where(WorkingHours.doctor_id == who["doctor"])
        ).all()
        assert [(r.weekday, r.start_time, r.break_end) for r in rows] == [(2, time(9), time(14))]
        pk = rows[0].id
    # Editing its own row is not a duplicate.
    response = post_form(client, f"/working-hours/edit/{pk}",
                         hours_form(who, end_time="16:30"))
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(WorkingHours, pk).end_time == time(16, 30)
    listed = client.get("/working-hours/list/").get_data(as_text=True)
    assert "Wednesday" in listed and "16:30" in listed


def test_working_hours_stay_in_their_branch(app, who):
    lakeside = login_as(app, "desk_b")
    page = lakeside.get("/working-hours/add").get_data(as_text=True)
    assert "Anita Kapoor" not in page and "Alder Clinic" not in page and "Bharat Shetty" in page
    assert post_form(lakeside, "/working-hours/add",
                     hours_form(who, doctor=str(who["doctor2"]), branch=str(who["LS"]),
                                weekday="4")).status_code == 302
    # A Downtown doctor at Lakeside: neither is offered, so nothing is saved.
    body = post_form(lakeside, "/working-hours/add",
                     hours_form(who, branch=str(who["DT"]), weekday="5")).get_data(as_text=True)
    assert "This field is required." in body
    with app.app_context():
        downtown = db.session.scalar(sa.select(WorkingHours.id).where(
            WorkingHours.branch_id == who["DT"]))
        if downtown is None:  # this test run alone
            row = WorkingHours(doctor_id=who["doctor"], branch_id=who["DT"], weekday=6,
                               start_time=time(9), end_time=time(12))
            db.session.add(row)
            db.session.commit()
            downtown = row.id
        lakeside_row = db.session.scalar(sa.select(WorkingHours.id).where(
            WorkingHours.branch_id == who["LS"]))
    assert lakeside.get(f"/working-hours/show/{downtown}").status_code == 404
    assert lakeside.get(f"/working-hours/edit/{downtown}").status_code == 404
    assert f"/working-hours/show/{downtown}" not in lakeside.get("/working-hours/list/").get_data(as_text=True)
    downtown_desk = login_as(app, "desk_a")
    assert downtown_desk.get(f"/working-hours/show/{lakeside_row}").status_code == 404
    # A doctor reads the roster but does not change it.
    assert login_as(app, "doctor").get("/working-hours/list/").status_code == 200
    assert login_as(app, "doctor").get("/working-hours/add").status_code == 403
    for username in ("pharmacist", "labtech", "accountant"):
        assert login_as(app, username).get("/working-hours/list/").status_code == 403


def test_the_service_refuses_a_doctor_of_another_branch(app, who):
    with app.app_context():
        row = WorkingHours(doctor_id=who["doctor"], branch_id=who["LS"], weekday=0,
                           start_time=time(9), end_time=time(12))
        with pytest.raises(ScheduleError, match="does not work at that branch"):
            check_working_hours(row)
        row = WorkingHours(doctor_id=who["reception"], branch_id=who["DT"], weekday=0,
                           start_time=time(9), end_time=time(12))
        with pytest.raises(ScheduleError, match="Choose a doctor"):
            check_working_hours(row)


# Leave and holidays -----------------------------------------------------------------------------


def test_leave_is_checked_and_scoped_to_the_doctors_of_my_branches(app, who):
    client = login_as(app, "desk_a")
    page = client.get("/leave/add").get_data(as_text=True)
    assert "Anita Kapoor" in page and "Bharat Shetty" not in page
    body = post_form(client, "/leave/add", {
        "doctor": str(who["doctor"]), "starts_on": FUTURE.isoformat(),
        "ends_on": (FUTURE - timedelta(days=2)).isoformat(), "note": "",
    }).get_data(as_text=True)
    assert "The leave must end on or after its first day." in body
    assert post_form(client, "/leave/add", {
        "doctor": str(who["doctor"]), "starts_on": FUTURE.isoformat(),
        "ends_on": (FUTURE + timedelta(days=4)).isoformat(), "note": "Conference Lv8",
    }).status_code == 302
    # Lakeside's receptionist neither sees it nor may pick a Downtown doctor.
    lakeside = login_as(app, "desk_b")
    assert lakeside.post("/leave/add", data={
        "doctor": str(who["doctor"]), "starts_on": FUTURE.isoformat(),
        "ends_on": FUTURE.isoformat(), "note": "",
        "csrf_token": csrf_token_from(lakeside.get("/leave/add").get_data(as_text=True)),
    }).status_code == 200
    with app.app_context():
        leave = db.session.scalars(sa.select(DoctorLeave).where(
            DoctorLeave.doctor_id.in_((who["doctor"], who["doctor2"])))).all()
        assert [(l.doctor_id, l.note) for l in leave] == [(who["doctor"], "Conference Lv8")]
        pk = leave[0].id
    assert "Conference Lv8" not in lakeside.get("/leave/list/").get_data(as_text=True)
    assert lakeside.get(f"/leave/show/{pk}").status_code == 404
    assert "Conference Lv8" in login_as(app, "owner").get("/leave/list/").get_data(as_text=True)
    assert "Conference Lv8" in client.get(f"/leave/show/{pk}").get_data(as_text=True)


def test_holidays_one_per_branch_and_day(app, who):
    client = login_as(app, "desk_a")
    data = {"branch": str(who["DT"]), "day": FUTURE.isoformat(), "name": "Founders' day"}
    assert post_form(client, "/holidays/add", data).status_code == 302
    body = post_form(client, "/holidays/add", {**data, "name": "Again"}).get_data(as_text=True)
    assert "This branch already has a holiday on that day." in body
    with app.app_context():
        holidays = db.session.scalars(
            sa.select(Holiday).where(Holiday.branch_id == who["DT"])).all()
        assert [h.name for h in holidays] == ["Founders' day"]
        pk = holidays[0].id
    assert login_as(app, "desk_b").get(f"/holidays/show/{pk}").status_code == 404
    assert "Founders" in client.get("/holidays/list/").get_data(as_text=True)
