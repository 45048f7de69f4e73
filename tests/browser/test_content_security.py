"""The Content Security Policy in a real browser: the screens work under it, and it bites.

Every journey here (and in the other browser modules) fails on anything the policy blocks:
the ``page`` fixture collects Chromium's "Content Security Policy" console reports.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP

pytestmark = pytest.mark.browser


def test_admin_screens_work_under_the_policy(page, sign_in, screenshot):
    sign_in("admin")
    expect(page).to_have_url(re.compile(r"/$"))

    page.goto("/users/list/")
    row = page.get_by_role("row").filter(has_text="Rahul")
    row.get_by_role("link", name="Show").click()
    expect(page.get_by_role("main")).to_contain_text("Rahul")

    page.goto("/staff/list/")
    page.get_by_text("Search and filter").click()
    search = page.locator("#filter_form")
    search.get_by_role("button", name=re.compile("Add Filter")).click()
    search.get_by_role("link", name="First name").click()
    expect(search.get_by_placeholder("First name")).to_be_visible()  # made by FAB's nonced script

    page.goto("/roles/list/")
    page.get_by_role("row").filter(has_text="Lab technician").get_by_role(
        "link", name="Delete"
    ).click()  # FAB's confirmation dialog, wired by an inline nonced script
    dialog = page.get_by_text("Are you sure you want to delete this item?")
    expect(dialog).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()

    page.goto("/resetmypassword/form")
    expect(page.locator("input#password")).to_be_visible()

    page.goto("/swagger/v1")
    expect(page.locator(".swagger-ui")).to_be_visible()
    expect(page.get_by_text("Security", exact=True).first).to_be_visible(timeout=10_000)
    screenshot("swagger-under-csp")

    page.goto("/no/such/page")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Reference [0-9A-F]{10}"))).to_be_visible()
    screenshot("error-404")


def test_the_policy_blocks_a_script_without_the_nonce(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport=DESKTOP)
    reports: list[str] = []
    tab = context.new_page()
    tab.on("console", lambda message: reports.append(message.text))
    tab.goto("/login/")
    tab.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.body.appendChild(script);
        }"""
    )
    tab.wait_for_timeout(200)
    assert tab.evaluate("() => window.injected === undefined")
    assert any("Content Security Policy" in report for report in reports), reports
    context.close()
