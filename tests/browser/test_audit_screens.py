"""The Admin reads the audit trail: a change just made, in the list and on its own page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

NEW_LETTERHEAD = "Family medicine · Dentistry · Laboratory · Physiotherapy"


def test_admin_finds_a_change_in_the_audit_log(page, sign_in, screenshot):
    sign_in("admin")
    page.goto("/settings/")
    page.get_by_role("link", name="Edit Downtown Clinic").click()
    page.get_by_label("Letterhead text").fill(NEW_LETTERHEAD)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").locator(".cd-alert--success")).to_be_visible()

    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="Audit log"
    ).click()
    expect(page.get_by_role("heading", name="Audit log", level=1)).to_be_visible()
    page.get_by_text("Search and filter").click()
    search = page.locator("#filter_form")
    search.get_by_role("button", name=re.compile("Add Filter")).click()
    search.get_by_role("link", name="Who").click()
    search.get_by_placeholder("Who").fill("admin")
    search.get_by_role("button", name="Search").click()

    table = page.locator(".cd-audit-list").get_by_role("table")
    expect(table).not_to_contain_text("cli:seed-demo")
    row = table.get_by_role("row").filter(has_text="letterhead_text").first
    expect(row).to_contain_text("admin")
    expect(row).to_contain_text("Branch #")
    expect(row).to_contain_text("Downtown Clinic")
    expect(row).to_contain_text("Physiotherapy")  # the changed value, old → new
    screenshot("audit-list")

    row.get_by_role("link", name="Show").click()
    expect(page.get_by_role("heading", name="Audit entry", level=1)).to_be_visible()
    changes = page.get_by_role("region", name="What changed")
    expect(changes).to_contain_text("letterhead_text")
    expect(changes).to_contain_text(NEW_LETTERHEAD)
    screenshot("audit-entry")
