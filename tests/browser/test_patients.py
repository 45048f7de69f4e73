"""A receptionist registers a patient, is warned about a near-duplicate, and finds them by phone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_receptionist_registers_confirms_a_near_duplicate_and_finds_them(page, sign_in, screenshot):
    sign_in("reception")
    page.get_by_role("navigation", name="Main navigation").get_by_role("link", name="Patients").click()
    expect(page.get_by_role("heading", name="Patients", level=1)).to_be_visible()

    page.goto("/patients/add")
    page.get_by_label("First name").fill("Aarav")
    page.get_by_label("Last name").fill("Sharma")
    page.get_by_label("Date of birth").fill("1992-05-17")
    page.get_by_label("Sex").select_option("male")
    page.get_by_label("Phone", exact=True).fill("98450 00000")  # the demo's MRN-000001, typed locally
    page.get_by_label("Preferred language").fill("Hindi")
    page.get_by_label("Reminders by SMS").check()
    page.get_by_role("button", name="Save").click()

    warning = page.get_by_role("region", name="This patient may already be registered")
    expect(warning.get_by_role("alert")).to_be_visible()
    expect(warning.get_by_role("table")).to_contain_text("MRN-000001")
    expect(page.get_by_label("Date of birth")).to_have_value("1992-05-17")
    expect(page.get_by_label("Last name")).to_have_value("Sharma")
    expect(page.get_by_label("Preferred language")).to_have_value("Hindi")
    screenshot("patient-duplicates")

    page.get_by_label("This is a new patient").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").locator(".cd-alert--success")).to_be_visible()

    page.goto("/patients/list/")
    page.get_by_label("Find a patient").fill("+91 98450-00000")
    page.get_by_role("button", name="Search").click()
    table = page.get_by_role("table")
    expect(table.get_by_role("row")).to_have_count(3)  # header, the demo patient, the new one
    expect(table).to_contain_text("MRN-000001")
    screenshot("patient-search")

    page.get_by_role("row").filter(has_text=re.compile("Aarav Sharma")).filter(
        has_not_text="MRN-000001"
    ).get_by_role("link", name="Show").click()
    expect(page.get_by_role("heading", name="Aarav Sharma", level=1)).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("+91 98450 00000")
    expect(page.get_by_role("main")).to_contain_text("1992-05-17")
    expect(page.get_by_role("main")).to_contain_text("Consent given: Reminders by SMS")
    expect(page.get_by_role("main")).not_to_contain_text("Clinical section")
    screenshot("patient-page")
