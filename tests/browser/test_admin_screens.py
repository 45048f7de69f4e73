"""The owner's settings and the admin's lists: FAB's generated screens inside ClinicDesk's frame."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TABLET = {"width": 768, "height": 1024}
TABLET_LANDSCAPE = {"width": 1024, "height": 768}


def test_owner_corrects_a_branch_phone_number(page, sign_in, screenshot):
    sign_in("owner")
    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="Settings"
    ).click()
    expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()
    screenshot("settings")

    page.get_by_role("link", name="Edit Downtown Clinic").click()
    expect(page.get_by_role("heading", name="Edit branch", level=1)).to_be_visible()
    page.get_by_label("Phone").fill("80412")
    page.get_by_label("Letterhead text").fill("Family medicine · Dentistry · Laboratory · X-ray")
    page.get_by_role("button", name="Save").click()

    phone = page.get_by_label("Phone")
    expect(page.get_by_text("Enter a phone number with its area code")).to_be_visible()
    expect(phone).to_have_value("80412")
    expect(page.get_by_label("Letterhead text")).to_have_value(
        "Family medicine · Dentistry · Laboratory · X-ray"
    )
    expect(page.get_by_role("textbox", name=re.compile(r"^Name"))).to_have_value("Downtown Clinic")
    screenshot("branch-edit-invalid-phone")

    phone.fill("+91 80 4123 4500")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status").locator(".cd-alert--success")).to_be_visible()
    screenshot("branch-saved")
    page.goto("/settings/")
    row = page.get_by_role("row").filter(has_text="Downtown Clinic")
    expect(row).to_contain_text("+91 80 4123 4500")  # stored in international form, shown grouped
    row.get_by_role("link", name="Downtown Clinic", exact=True).click()
    expect(page.get_by_role("main")).to_contain_text("Laboratory · X-ray")


def test_admin_opens_the_users_and_staff_lists(page, sign_in, screenshot):
    sign_in("admin")

    page.goto("/users/list/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    expect(page.get_by_role("table")).to_contain_text("reception")
    screenshot("users-list")
    page.get_by_role("row").filter(has_text="Rahul").get_by_role("link", name="Show").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("Rahul")
    screenshot("user-show")

    page.goto("/staff/list/")
    expect(page.get_by_role("heading", name="Staff", level=1)).to_be_visible()
    table = page.locator(".cd-card--list").get_by_role("table")
    expect(table).to_contain_text("Rahul")
    expect(table).to_contain_text("Downtown Clinic")
    screenshot("staff-list")

    page.get_by_text("Search and filter").click()
    search = page.locator("#filter_form")
    search.get_by_role("button", name=re.compile("Add Filter")).click()
    search.get_by_role("link", name="First name").click()
    search.get_by_placeholder("First name").fill("Rah")
    search.get_by_role("button", name="Search").click()

    expect(table).to_contain_text("Rahul")
    expect(table).not_to_contain_text("Vikram")
    expect(page.get_by_text("Filters on")).to_be_visible()  # the search panel stays open
    expect(page.locator("#filter_form").get_by_placeholder("First name")).to_have_value("Rah")
    screenshot("staff-search")


def test_admin_screens_at_tablet_width(page, sign_in, screenshot):
    page.set_viewport_size(TABLET)
    sign_in("admin")
    page.goto("/staff/list/")

    nav = page.get_by_role("navigation", name="Main navigation")
    toggle = page.get_by_role("button", name="Menu")
    expect(nav).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    screenshot("tablet-staff-list")

    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(toggle).to_be_focused()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(nav).to_be_visible()
    expect(nav.get_by_role("link", name="Home")).to_be_focused()
    screenshot("tablet-menu-open")

    page.keyboard.press("Escape")
    expect(nav).to_be_hidden()
    expect(toggle).to_be_focused()
    expect(toggle).to_have_attribute("aria-expanded", "false")

    page.goto("/users/add")
    screenshot("tablet-user-add")

    page.set_viewport_size(TABLET_LANDSCAPE)
    page.goto("/users/list/")
    expect(nav).to_be_visible()
    expect(toggle).to_be_hidden()
    screenshot("tablet-landscape-users-list")
