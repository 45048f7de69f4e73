"""A doctor opens the day list, starts the visit, records vitals (one in °F), diagnosis and plan,
prescribes two medicines and prints the prescription."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

#: A day far from the demo's diary, so the walk-in never meets another appointment.
DAY = "2031-03-05"


@pytest.fixture(scope="module")
def arrived(make_app):
    """A patient checked in as a walk-in for Dr Priya Nair at Downtown on DAY; their name."""
    from app.extensions import db
    from app.models.org import Branch
    from app.models.patients import Patient
    from app.services.appointments import register_walk_in

    app = make_app()
    with app.app_context():
        patient = db.session.scalar(sa.select(Patient).order_by(Patient.id).offset(4))
        register_walk_in(
            patient=patient,
            doctor=app.appbuilder.sm.find_user(username="doctor"),
            branch=db.session.scalar(sa.select(Branch).where(Branch.code == "DT")),
            reason="Fever and sore throat",
            now=datetime(2031, 3, 5, 5, 0, tzinfo=timezone.utc),
        )
        db.session.commit()
        return patient.full_name


def test_doctor_records_a_visit_prescribes_and_prints(page, sign_in, screenshot, arrived):
    sign_in("doctor")
    page.goto(f"/appointments/day?date={DAY}&branch=")
    row = page.get_by_role("row").filter(has_text=arrived)
    row.get_by_role("link", name=re.compile("Start visit")).click()

    expect(page.get_by_role("heading", name="Start the visit", level=1)).to_be_visible()
    page.get_by_role("button", name="Start visit").click()

    expect(page.get_by_role("heading", name=f"Visit of {arrived}", level=1)).to_be_visible()
    page.get_by_role("textbox", name="Complaints").fill("Fever for two days, sore throat, no cough.")
    page.get_by_label("Systolic (mmHg)").fill("124")
    page.get_by_label("Diastolic (mmHg)").fill("82")
    page.get_by_label("Pulse (beats per minute)").fill("96")
    page.get_by_label("SpO₂ (%)").fill("98")
    page.get_by_label("Temperature", exact=True).fill("101.3")
    page.get_by_label("Unit of temperature").select_option("F")
    page.get_by_label("Weight", exact=True).fill("68")
    page.get_by_label("Height", exact=True).fill("172")
    page.get_by_role("textbox", name="Examination").fill("Congested pharynx, tonsils enlarged, no exudate.")
    page.get_by_label("Diagnosis", exact=True).fill("Acute pharyngitis")
    page.get_by_label("Diagnosis code").fill("J02.9")
    page.get_by_label("Plan", exact=True).fill("Warm saline gargles, paracetamol for fever, review in 5 days.")
    screenshot("consultation-form")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_contain_text("The consultation is saved.")
    vitals = page.get_by_role("region", name="Vitals")
    expect(vitals).to_contain_text("101.3 °F")
    expect(vitals).to_contain_text("(38.5 °C)")
    expect(vitals).to_contain_text("124/82 mmHg")

    page.get_by_role("link", name="Prescribe").click()
    expect(page.get_by_role("heading", name="New prescription", level=1)).to_be_visible()
    page.locator("#items-0-medicine").fill("Paracetamol")
    page.locator("#items-0-strength").fill("650 mg")
    page.locator("#items-0-dose").fill("1 tablet")
    page.locator("#items-0-frequency").fill("every 6 hours if fever")
    page.locator("#items-0-route").fill("Oral")
    page.locator("#items-0-duration").fill("3 days")
    page.locator("#items-0-quantity").fill("10")
    page.locator("#items-0-instructions").fill("after food")
    page.get_by_role("button", name="Add another medicine").click()
    expect(page.get_by_role("group", name="Medicine 2")).to_be_visible()
    page.locator("#items-1-medicine").fill("Chlorhexidine mouthwash")
    page.locator("#items-1-strength").fill("0.2 %")
    page.locator("#items-1-dose").fill("15 ml")
    page.locator("#items-1-frequency").fill("twice a day")
    page.locator("#items-1-route").fill("Gargle")
    page.locator("#items-1-duration").fill("5 days")
    page.locator("#items-1-quantity").fill("1")
    page.get_by_label("Advice", exact=True).fill("Drink warm fluids. Rest your voice.")
    page.get_by_label("Follow-up date").fill("2031-03-10")
    screenshot("prescription-form")
    page.get_by_role("button", name="Save prescription").click()

    expect(page.get_by_role("status")).to_contain_text("The prescription is saved.")
    medicines = page.get_by_role("region", name="Medicines")
    expect(medicines).to_contain_text("Paracetamol")
    expect(medicines).to_contain_text("Chlorhexidine mouthwash")

    page.get_by_role("link", name="Print").click()
    expect(page).to_have_url(re.compile(r"/prescriptions/\d+/print$"))
    expect(page.locator(".rx-letterhead")).to_contain_text("Downtown Clinic")
    expect(page.locator(".rx-items")).to_contain_text("Chlorhexidine mouthwash")
    expect(page.get_by_role("button", name="Print")).to_be_visible()
    screenshot("prescription-print")
    page.emulate_media(media="print")
    expect(page.locator(".rx-toolbar")).to_be_hidden()
    screenshot("prescription-print-media")
    page.emulate_media(media="screen")
    page.get_by_role("link", name="A5").click()
    expect(page.locator("body")).to_have_class(re.compile("rx-print--a5"))
    screenshot("prescription-print-a5")

    # The patient's page now tells the visit's story on its timeline.
    page.get_by_role("link", name="Back to the prescription").click()
    page.get_by_role("link", name=re.compile(r"^MRN-")).first.click()
    expect(page.get_by_role("heading", name=arrived, level=1)).to_be_visible()
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text("Visit")
    expect(timeline).to_contain_text("Prescription, version 1")
    expect(timeline).to_contain_text("Appointment with")
    screenshot("patient-timeline")
