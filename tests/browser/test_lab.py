"""A lab technician collects a doctor's order, enters results (one out of range), a colleague
verifies them, and the report is printed."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from app.extensions import db
from app.models.lab import LabTest
from app.models.org import Branch
from app.models.patients import Patient
from app.security import policy
from app.services.lab import add_reference_range, create_order
from app.services.patients import register_patient
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def order_id(app):
    """Dr's order for Sunita (female, 46) at Downtown; a second lab technician to verify it."""
    with app.app_context():
        sm = app.appbuilder.sm
        downtown = db.session.scalar(sa.select(Branch).where(Branch.code == "DT"))
        colleague = sm.add_user(
            "labtech2", "Meera", "Iyer", "labtech2@example.org",
            sm.find_role(policy.LAB_TECHNICIAN), password=PASSWORD, commit=False,
        )
        colleague.branches = [downtown]
        tests = {
            "HBJ": LabTest(code="HBJ", name="Haemoglobin", sample_type="Whole blood (EDTA)",
                           unit="g/dL", turnaround_hours=4),
            "FBSJ": LabTest(code="FBSJ", name="Fasting blood glucose", sample_type="Plasma",
                            unit="mg/dL", turnaround_hours=2),
            "ABOJ": LabTest(code="ABOJ", name="Blood group and Rh type",
                            sample_type="Whole blood (EDTA)", turnaround_hours=4),
        }
        db.session.add_all(tests.values())
        db.session.flush()
        add_reference_range(tests["HBJ"], sex="female", age_min_years=18, low=Decimal("12"), high=Decimal("15.5"))
        add_reference_range(tests["HBJ"], sex="male", age_min_years=18, low=Decimal("13.5"), high=Decimal("17.5"))
        add_reference_range(tests["FBSJ"], sex="any", low=Decimal("70"), high=Decimal("100"))
        today = date.today()
        patient = Patient(first_name="Sunita", last_name="Rao", sex="female",
                          date_of_birth=date(today.year - 46, 3, 14), phone="+919845012345",
                          registered_branch_id=downtown.id)
        register_patient(patient, "in_person")
        order = create_order(
            tests=list(tests.values()), patient=patient, branch=downtown, priority="urgent",
            clinical_notes="Tiredness for six weeks; on iron tablets.",
            by=sm.find_user(username="doctor"),
        )
        db.session.commit()
        return order.id


def test_lab_technician_enters_results_and_a_colleague_verifies(page, sign_in, screenshot, order_id):
    sign_in("labtech")
    page.get_by_role("navigation", name="Main navigation").get_by_role("link", name="Lab orders").click()
    expect(page.get_by_role("heading", name="Lab orders", level=1)).to_be_visible()
    page.get_by_role("navigation", name="Filter lab orders").get_by_role("link", name="Open").click()
    row = page.get_by_role("row").filter(has_text="Sunita Rao")
    expect(row).to_contain_text("Urgent")
    screenshot("lab-orders")
    row.get_by_role("link", name="Show").click()
    expect(page.get_by_role("heading", name=f"Lab order #{order_id}")).to_be_visible()

    page.get_by_role("button", name="Sample collected").click()
    expect(page.get_by_role("status")).to_contain_text("Sample collected")
    page.get_by_role("link", name="Enter results").click()
    page.get_by_label("Haemoglobin", exact=True).fill("9,8")
    page.get_by_label("Fasting blood glucose", exact=True).fill("eighty")
    page.get_by_label("Blood group and Rh type", exact=True).fill("O positive")
    page.get_by_role("button", name="Save results").click()
    expect(page.get_by_role("alert").first).to_contain_text("nothing was saved")
    expect(page.get_by_text("Fasting blood glucose: enter a number, e.g. 5.4.")).to_be_visible()
    expect(page.get_by_label("Haemoglobin", exact=True)).to_have_value("9,8")
    screenshot("lab-enter-results")
    page.get_by_label("Fasting blood glucose", exact=True).fill("92")
    page.get_by_label("Comment on Haemoglobin").fill("Microcytic picture; repeat after 4 weeks.")
    page.get_by_role("button", name="Save results").click()

    results = page.get_by_role("region", name="Results")
    flagged = results.get_by_role("row").filter(has_text="Haemoglobin")
    expect(flagged).to_contain_text("9.8")
    expect(flagged).to_contain_text("12–15.5")
    expect(flagged).to_contain_text("Low")
    expect(results.get_by_role("row").filter(has_text="Fasting blood glucose")).to_contain_text("Normal")
    expect(page.get_by_role("note")).to_contain_text("another person verifies them")
    expect(page.get_by_role("button", name="Verify results")).to_have_count(0)

    page.context.clear_cookies()
    sign_in("labtech2")
    page.goto(f"/lab-orders/show/{order_id}")
    page.get_by_role("button", name="Verify results").click()
    expect(page.get_by_role("status")).to_contain_text("Results verified.")
    expect(page.locator(".cd-lab-head")).to_contain_text("Verified")
    expect(page.get_by_role("link", name="Enter results")).to_have_count(0)
    screenshot("lab-results")

    page.get_by_role("link", name="Print report").click()
    expect(page.get_by_role("heading", name="Laboratory report")).to_be_visible()
    report = page.get_by_role("main")
    expect(report).to_contain_text("Downtown Clinic")
    expect(report).to_contain_text("Sunita Rao")
    expect(report).to_contain_text("Arjun Das")
    expect(report).to_contain_text("Meera Iyer")
    expect(report).not_to_contain_text("Provisional")
    expect(page.get_by_role("row").filter(has_text="Haemoglobin")).to_contain_text(re.compile("Low"))
    screenshot("lab-report")
    page.emulate_media(media="print")
    expect(page.get_by_role("button", name="Print")).to_be_hidden()
    screenshot("lab-report-print")
