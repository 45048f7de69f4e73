"""A visitor asks for an appointment on the public form; reception sees the notification."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

#: The live server's public-form settings: a short minimum fill time keeps the journey quick, and
#: a generous limit keeps repeated runs (same address, same Redis) from being refused.
PUBLIC_FORM_ENV = {
    "CLINICDESK_PUBLIC_FORM_MIN_SECONDS": "1",
    "CLINICDESK_PUBLIC_FORM_RATE_LIMIT": "100 per minute",
}
MOBILE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def public_form_env():
    saved = {name: os.environ.get(name) for name in PUBLIC_FORM_ENV}
    os.environ.update(PUBLIC_FORM_ENV)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def live_server(public_form_env, live_server):
    """The suite's live server, started with this module's public-form settings."""
    return live_server


def test_visitor_requests_an_appointment_and_reception_is_told(page, sign_in, screenshot):
    page.goto("/request-appointment?utm_source=clinic-website&utm_medium=referral")
    expect(page.get_by_role("heading", name="Request an appointment", level=1)).to_be_visible()
    expect(page.get_by_role("navigation", name="Main navigation")).to_have_count(0)
    expect(page.get_by_label("Send me news and offers from the clinic")).not_to_be_checked()
    screenshot("request-form")

    page.get_by_label("First name").fill("Maya")
    page.get_by_label("Phone", exact=True).fill("12")
    page.get_by_label("Preferred clinic").select_option(label="Downtown Clinic")
    page.get_by_label("Preferred days and times").fill("Saturday morning")
    page.get_by_label("Reason for the visit").fill("Check-up and cleaning")
    page.wait_for_timeout(1100)  # the form's minimum fill time on this server
    page.get_by_role("button", name="Send my request").click()

    expect(page.get_by_role("alert")).to_contain_text("Please correct the marked fields")
    expect(page.get_by_text("Please tell us your last name.")).to_be_visible()
    expect(page.get_by_text("Please check the phone number")).to_be_visible()
    expect(page.get_by_text("We can only arrange your appointment if we may contact you")).to_be_visible()
    expect(page.get_by_label("First name")).to_have_value("Maya")
    expect(page.get_by_label("Preferred days and times")).to_have_value("Saturday morning")
    expect(page.get_by_label("Reason for the visit")).to_have_value("Check-up and cleaning")
    screenshot("request-form-error")

    page.get_by_label("Last name").fill("Fernandes")
    page.get_by_label("Phone", exact=True).fill("080 4123 4567")
    page.get_by_label("You may contact me about this request").check()
    page.get_by_label("Send me appointment reminders").check()
    page.get_by_role("button", name="Send my request").click()

    expect(page.get_by_role("heading", name="Thank you, we have your request")).to_be_visible()
    expect(page.get_by_role("main")).not_to_contain_text("Maya")
    screenshot("request-thanks")

    page.set_viewport_size(MOBILE)
    page.goto("/request-appointment")
    expect(page.get_by_role("button", name="Send my request")).to_be_visible()
    screenshot("request-form-mobile")
    page.set_viewport_size(DESKTOP)

    sign_in("reception")
    notices = page.get_by_role("link", name="Notifications")
    expect(notices).to_contain_text("1")
    notices.click()
    expect(page.get_by_role("heading", name="Notifications", level=1)).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text(
        "A new appointment request arrived at Downtown Clinic."
    )
    expect(page.get_by_role("main")).not_to_contain_text("Maya")
    screenshot("notifications")
    page.get_by_role("button", name="Mark all as read").click()
    expect(page.get_by_role("main")).to_contain_text("You are all caught up.")
