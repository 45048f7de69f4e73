"""The lead pipeline at the front desk: a receptionist finds a lead on the board, opens it, logs
a call, moves it to "Appointment booked", converts it and sees the patient it became."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TZ = ZoneInfo("Asia/Kolkata")  # the demo branches' zone
TABLET = {"width": 1024, "height": 768}
WIDE = {"width": 1680, "height": 1000}
OWNER = "Asha Pipelineqp"


def convert_day():
    """A Monday eleven weeks ahead, clear of the demo's appointments."""
    today = datetime.now(TZ).date()
    return today + timedelta(days=77 - today.weekday())


@pytest.fixture(scope="module")
def pipeline(make_app):
    """Dr Priya Nair works every morning; a dedicated owner holds ~10 leads in every stage."""
    from app.extensions import db
    from app.models.leads import Lead
    from app.models.org import Branch
    from app.models.scheduling import DoctorLeave, Holiday, Service, WorkingHours
    from app.services.leads import create_lead
    from tests.conftest import PASSWORD

    app = make_app()
    now = datetime.now(timezone.utc)
    with app.app_context():
        sm = app.appbuilder.sm
        branch = db.session.scalar(sa.select(Branch).where(Branch.code == "DT"))
        priya = sm.find_user(username="doctor")
        asha = sm.add_user("pipe.owner", "Asha", "Pipelineqp", "asha.pipe@example.org",
                           sm.find_role("Receptionist"), password=PASSWORD)
        asha.branches = [branch]
        db.session.execute(sa.delete(WorkingHours).where(WorkingHours.doctor_id == priya.id))
        db.session.execute(sa.delete(DoctorLeave).where(DoctorLeave.doctor_id == priya.id))
        db.session.execute(sa.delete(Holiday).where(Holiday.branch_id == branch.id))
        for weekday in range(7):
            db.session.add(WorkingHours(doctor_id=priya.id, branch_id=branch.id,
                                        weekday=weekday, start_time=time(9), end_time=time(13)))
        services = {}
        for name in ("Dental check-up Qp", "Teeth whitening Qp", "Braces consultation Qp"):
            services[name] = Service(name=name, default_duration_min=30)
            db.session.add(services[name])
        db.session.flush()
        plan = [  # first, last, stage, source, service, days in stage, follow-up in days, lost
            ("Kavya", "Menon", "new", "web_form", "Dental check-up Qp", 0, 1, None),
            ("Arjun", "Pillai", "new", "phone", "Teeth whitening Qp", 2, -1, None),
            ("Meena", "Iyer", "new", "referral", None, 1, None, None),
            ("Rahul", "Desai", "contacted", "phone", "Braces consultation Qp", 3, -2, None),
            ("Sneha", "Kulkarni", "contacted", "campaign", "Teeth whitening Qp", 1, 2, None),
            ("Vikram", "Shetty", "qualified", "walk_in", "Dental check-up Qp", 4, 0.2, None),
            ("Ananya", "Rao", "qualified", "web_form", "Braces consultation Qp", 6, None, None),
            ("Farhan", "Qureshi", "booked", "phone", "Dental check-up Qp", 2, None, None),
            ("Lakshmi", "Nair", "converted", "referral", "Teeth whitening Qp", 5, None, None),
            ("Deepak", "Joshi", "lost", "campaign", None, 8, None, "price"),
        ]
        for index, (first, last, stage, source, service, days, follow, lost) in enumerate(plan):
            lead = create_lead(Lead(
                first_name=first, last_name=last, branch_id=branch.id, source=source,
                phone=f"098450 3{index:04d}", owner_id=asha.id, consent_contact=True,
                requested_service_id=services[service].id if service else None,
                next_follow_up_at=now + timedelta(days=follow) if follow is not None else None,
            ), obtained="web_form" if source == "web_form" else "phone")
            lead.stage, lead.lost_reason = stage, lost
            lead.stage_changed_at = now - timedelta(days=days, hours=2)
            lead.created_at = now - timedelta(days=days + 3, hours=5)
        db.session.commit()
        return {"owner": asha.id}


def open_board(page, pipeline) -> None:
    page.goto("/leads/board")
    page.get_by_label("Owner").select_option(label=OWNER)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(rf"/leads/board\?owner={pipeline['owner']}"))


def column(page, name: str):
    return page.get_by_role("region", name=name)


def test_receptionist_works_a_lead_from_the_board_to_a_patient(page, sign_in, screenshot,
                                                                 pipeline):
    sign_in("reception")
    nav = page.get_by_role("navigation", name="Main navigation")
    nav.get_by_role("link", name="Pipeline").click()
    expect(page.get_by_role("heading", name="Pipeline", level=1)).to_be_visible()
    open_board(page, pipeline)
    expect(column(page, "New").get_by_role("heading", name="New")).to_contain_text("3")
    expect(column(page, "Converted")).to_contain_text("Last 30 days")
    overdue = page.locator(".cd-lead-card").filter(has_text="Arjun Pillai")
    expect(overdue.locator(".cd-badge--danger")).to_have_text(re.compile("Overdue"))
    page.set_viewport_size(WIDE)
    screenshot("leads-board")
    page.set_viewport_size({"width": 1280, "height": 800})

    # The lead's page from its card.
    column(page, "New").get_by_role("link", name="Kavya Menon", exact=True).click()
    expect(page.get_by_role("heading", name="Kavya Menon", level=1)).to_be_visible()
    screenshot("lead-page")

    # Log the call.
    log_call = page.get_by_role("link", name="Log a call")
    if log_call.count() == 0:
        pytest.fail("the lead page offers no 'Log a call' link")
    log_call.click()
    page.get_by_label("Summary").fill("Called back; wants a check-up next month, mornings.")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Communication logged.")
    expect(page.get_by_role("heading", name="Kavya Menon", level=1)).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("wants a check-up next month")

    # Back on the board: move the card with its own form, by keyboard.
    open_board(page, pipeline)
    card = page.locator(".cd-lead-card").filter(has_text="Kavya Menon")
    card.get_by_label("Move to").focus()
    card.get_by_label("Move to").select_option(label="Appointment booked")
    page.keyboard.press("Tab")  # the Move button (the lost reason shows only for "Lost")
    expect(card.get_by_role("button", name=re.compile("^Move"))).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/leads/board\?owner={pipeline['owner']}"))
    expect(page.get_by_role("status")).to_contain_text("Kavya Menon: Appointment booked.")
    expect(column(page, "Appointment booked").get_by_role("link", name="Kavya Menon", exact=True)).to_be_visible()

    # Convert from the lead's page: a new patient with a booked appointment.
    column(page, "Appointment booked").get_by_role("link", name="Kavya Menon", exact=True).click()
    page.get_by_role("link", name="Convert and book").click()
    expect(page.get_by_role("heading", name="Convert Kavya Menon")).to_be_visible()
    expect(page.get_by_label("Register a new patient from this lead's details")).to_be_checked()
    page.get_by_label("Doctor").select_option(label="Priya Nair")
    page.get_by_label("Starts").fill(f"{convert_day().isoformat()}T10:00")
    page.get_by_role("button", name="Convert and book").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Kavya Menon is booked: the lead is converted.")

    # The patient exists, and the lead says what it became.
    open_board(page, pipeline)
    converted = column(page, "Converted")
    converted.get_by_role("link", name="Kavya Menon", exact=True).click()
    expect(page.get_by_role("main")).to_contain_text("Converted")
    page.get_by_role("main").get_by_role("link", name=re.compile(r"Kavya Menon · ")).click()
    expect(page.get_by_role("heading", name=re.compile("Kavya Menon"), level=1)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/patients/show/\d+"))


def test_lost_needs_a_reason_and_the_board_stays(page, sign_in, pipeline):
    sign_in("reception")
    open_board(page, pipeline)
    card = page.locator(".cd-lead-card").filter(has_text="Meena Iyer")
    card.get_by_label("Move to").select_option(label="Lost")
    card.get_by_role("button", name=re.compile("^Move")).click()
    expect(page).to_have_url(re.compile(rf"/leads/board\?owner={pipeline['owner']}"))
    expect(page.get_by_role("status")).to_contain_text("Please choose why the lead was lost.")
    card = column(page, "New").locator(".cd-lead-card").filter(has_text="Meena Iyer")
    expect(card.get_by_label("Lost reason")).to_be_hidden()
    card.get_by_label("Move to").select_option(label="Lost")
    card.get_by_label("Lost reason").select_option(label="Chose another clinic")
    card.get_by_role("button", name=re.compile("^Move")).click()
    expect(column(page, "Lost").get_by_role("link", name="Meena Iyer", exact=True)).to_be_visible()


def test_drag_and_drop_submits_the_cards_form(page, sign_in, pipeline):
    sign_in("reception")
    open_board(page, pipeline)
    expect(page.get_by_text("You can also drag a card to another column.")).to_be_visible()
    card = column(page, "Contacted").locator(".cd-lead-card").filter(has_text="Sneha Kulkarni")
    card.locator(".cd-lead-card__facts").drag_to(column(page, "Qualified"))
    expect(page.get_by_role("status")).to_contain_text("Sneha Kulkarni: Qualified.")
    expect(column(page, "Qualified").get_by_role("link", name="Sneha Kulkarni", exact=True)).to_be_visible()


def test_board_reads_well_on_a_tablet(page, sign_in, screenshot, pipeline):
    page.set_viewport_size(TABLET)
    sign_in("reception")
    open_board(page, pipeline)
    board = page.get_by_role("region", name="Pipeline board")
    expect(board).to_be_visible()
    # The columns scroll sideways inside the board, not the whole page.
    widths = page.evaluate(
        "() => { const b = document.querySelector('.cd-board');"
        " return [b.scrollWidth, b.clientWidth, document.documentElement.scrollWidth,"
        " window.innerWidth]; }"
    )
    assert widths[0] > widths[1], widths
    assert widths[2] <= widths[3], widths
    # The first card's name link takes the keyboard focus with a visible ring.
    column(page, "New").get_by_role("link").first.focus()
    screenshot("board-tablet")
