"""The front desk's day: register a patient, book them from the calendar, check them in from the
day list with one click, and check in a walk-in."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TZ = ZoneInfo("Asia/Kolkata")  # the demo branches' zone
TABLET = {"width": 1024, "height": 768}
TALL = {"width": 1280, "height": 1280}


def bookable_day() -> date:
    """A Monday ten weeks ahead, clear of the demo's appointments (a month around today)."""
    today = datetime.now(TZ).date()
    return today + timedelta(days=70 - today.weekday())


@pytest.fixture(scope="module")
def roster(make_app):
    """Downtown's week: Dr Priya Nair works 09:00–13:00 (break 11:00–11:30) every day, Dr Rohan
    Verma 09:30–13:30; the test day already holds a few appointments in every status."""
    from app.extensions import db
    from app.models.org import Branch
    from app.models.patients import Patient
    from app.models.scheduling import DoctorLeave, Holiday, Service, WorkingHours
    from app.services.appointments import book_appointment, change_status
    from tests.conftest import PASSWORD

    app = make_app()
    with app.app_context():
        sm = app.appbuilder.sm
        priya = sm.find_user(username="doctor")
        branch = db.session.scalar(sa.select(Branch).where(Branch.code == "DT"))
        rohan = sm.add_user("desk.doctor", "Rohan", "Verma", "rohan.desk@example.org",
                            sm.find_role("Doctor"), password=PASSWORD)
        rohan.branches = [branch]
        doctors = [priya.id, rohan.id]
        db.session.execute(sa.delete(WorkingHours).where(WorkingHours.doctor_id.in_(doctors)))
        db.session.execute(sa.delete(DoctorLeave).where(DoctorLeave.doctor_id.in_(doctors)))
        db.session.execute(sa.delete(Holiday).where(Holiday.branch_id == branch.id))
        for weekday in range(7):
            db.session.add(WorkingHours(
                doctor_id=priya.id, branch_id=branch.id, weekday=weekday, start_time=time(9),
                end_time=time(13), break_start=time(11), break_end=time(11, 30),
            ))
            db.session.add(WorkingHours(
                doctor_id=rohan.id, branch_id=branch.id, weekday=weekday,
                start_time=time(9, 30), end_time=time(13, 30),
            ))
        service = db.session.scalar(sa.select(Service).where(Service.name == "Scaling and polishing"))
        if service is None:  # the demo's catalogue may already offer it
            service = Service(name="Scaling and polishing", default_duration_min=45)
            db.session.add(service)
            db.session.flush()
        patients = list(db.session.scalars(
            sa.select(Patient).where(Patient.merged_into_id.is_(None)).order_by(Patient.id).limit(8)
        ))
        day = bookable_day()
        plan = [  # doctor, start, minutes, service, statuses to walk through
            (priya, time(9, 30), 30, None, ["confirmed"]),
            (priya, time(10), 15, None, ["arrived"]),
            (priya, time(12), 45, service, []),
            (priya, time(12, 45), 15, None, ["no_show"]),
            (rohan, time(9, 30), 30, None, ["arrived", "in_consultation"]),
            (rohan, time(10, 15), 15, None, ["arrived", "completed"]),
            (rohan, time(11), 15, None, ["cancelled"]),
            (rohan, time(11, 15), 60, service, []),  # longer than the service's usual
        ]
        for patient, (doctor, start, minutes, what, steps) in zip(patients, plan):
            appointment = book_appointment(
                patient=patient, doctor=doctor, branch=branch, service=what,
                starts_at=datetime.combine(day, start, tzinfo=TZ), duration_min=minutes,
            )
            for status in steps:
                change_status(appointment, status, reason="Rescheduling" if status == "cancelled" else None)
        db.session.commit()


def test_receptionist_books_from_the_calendar_and_checks_in(page, sign_in, screenshot, roster):
    day = bookable_day()
    sign_in("reception")

    # A new patient at the desk.
    page.goto("/patients/add")
    page.get_by_label("First name").fill("Devika")
    page.get_by_label("Last name").fill("Calendarqx")
    page.get_by_label("Date of birth").fill("1988-02-14")
    page.get_by_label("Sex").select_option("female")
    page.get_by_label("Phone", exact=True).fill("98111 22334")
    page.get_by_label("This is a new patient").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").locator(".cd-alert--success")).to_be_visible()

    # The calendar, from the menu, then the day three weeks ahead.
    page.get_by_role("navigation", name="Main navigation").get_by_role("link", name="Calendar").click()
    expect(page.get_by_role("heading", name="Calendar", level=1)).to_be_visible()
    page.get_by_label("Date").fill(day.isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("columnheader", name=re.compile("Dr Priya Nair"))).to_be_visible()
    page.get_by_role("link", name="Book 10:30 with Dr Priya Nair").click()

    # The booking form arrives with the doctor, branch and time filled in.
    expect(page.get_by_role("heading", name=re.compile("Book an appointment"))).to_be_visible()
    expect(page.locator("#starts_at")).to_have_value(f"{day.isoformat()}T10:30")
    page.locator("#s2id_patient, .select2-container").first.click()
    page.keyboard.type("Calendarqx")
    page.get_by_role("option", name=re.compile("Devika Calendarqx")).click()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").locator(".cd-alert--success")).to_be_visible()

    # Back on the calendar, the appointment sits in Dr Nair's 10:30 slot.
    page.goto(f"/appointments/calendar?date={day.isoformat()}")
    block = page.get_by_role("link", name=re.compile(r"10:30–10:45.*Devika Calendarqx.*Booked"))
    expect(block).to_be_visible()
    expect(page.get_by_role("link", name="Book 10:30 with Dr Priya Nair")).to_have_count(0)
    page.set_viewport_size(TALL)  # the whole morning in one picture
    block.focus()
    screenshot("calendar-day")

    page.get_by_role("columnheader").get_by_role("link", name="Dr Priya Nair").click()  # her week
    expect(page.get_by_role("heading", name="Calendar", level=1)).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("Week of")
    expect(page.get_by_role("link", name=re.compile("Devika Calendarqx"))).to_be_visible()
    screenshot("calendar-week")
    page.set_viewport_size({"width": 1280, "height": 800})

    # The day list: one click checks her in, and the list comes back.
    page.goto(f"/appointments/day?date={day.isoformat()}")
    row = page.get_by_role("row").filter(has_text="Devika Calendarqx")
    expect(row).to_contain_text("Booked")
    row.get_by_role("button", name=re.compile("^Check in")).click()
    expect(page).to_have_url(re.compile(r"/appointments/day\?date="))
    row = page.get_by_role("row").filter(has_text="Devika Calendarqx")
    expect(row).to_contain_text("Arrived")
    expect(page.get_by_role("status")).to_contain_text("Devika Calendarqx: Arrived.")
    screenshot("day-list")


def test_receptionist_checks_in_a_walk_in(page, sign_in, screenshot, roster):
    sign_in("reception")
    page.goto("/appointments/day")
    page.get_by_role("link", name="Walk-in").click()
    expect(page.get_by_role("heading", name="Walk-in", level=1)).to_be_visible()
    page.get_by_label("Name, phone, MRN or date of birth").fill("Tara Walkinqx")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("Nobody found")).to_be_visible()
    expect(page.get_by_label("New patient")).to_be_checked()
    expect(page.get_by_label("First name")).to_have_value("Tara")
    page.get_by_label("Phone", exact=True).fill("98111 99887")
    page.get_by_label("Sex").select_option("female")
    page.get_by_label("Doctor").select_option(label="Dr Priya Nair")
    page.get_by_label("Reason for the visit").fill("Fever since morning")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot("walk-in")
    page.get_by_role("button", name="Check in").click()

    expect(page).to_have_url(re.compile(r"/appointments/day\?"))
    expect(page.get_by_role("status")).to_contain_text("Tara Walkinqx is checked in to see Dr Priya Nair")
    row = page.get_by_role("row").filter(has_text="Tara Walkinqx")
    expect(row).to_contain_text("Arrived")
    expect(row).to_contain_text("Walk-in")


def test_calendar_reads_well_on_a_tablet(page, sign_in, screenshot, roster):
    page.set_viewport_size(TABLET)
    sign_in("reception")
    page.goto(f"/appointments/calendar?date={bookable_day().isoformat()}")
    expect(page.get_by_role("link", name="Book 09:00 with Dr Priya Nair")).to_be_visible()
    # Keyboard: Tab reaches the slots; arrow keys move between them.
    slot = page.get_by_role("link", name="Book 09:00 with Dr Priya Nair")
    slot.focus()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("link", name="Book 09:15 with Dr Priya Nair")).to_be_focused()
    screenshot("calendar-tablet")
