"""The owner's first day: sent to set up two-factor sign-in, then signing in with a code."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def forget_two_factor(database_url: str, username: str) -> None:
    """As on a freshly seeded installation: the user has no authenticator yet."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            user_id = conn.execute(
                sa.text("SELECT id FROM ab_user WHERE username = :u"), {"u": username}
            ).scalar_one()
            conn.execute(
                sa.text(
                    "UPDATE user_security SET totp_secret = NULL, totp_confirmed_at = NULL, "
                    "totp_last_step = NULL WHERE user_id = :id"
                ),
                {"id": user_id},
            )
            conn.execute(sa.text("DELETE FROM recovery_code WHERE user_id = :id"), {"id": user_id})
    finally:
        engine.dispose()


def wait_out_step_end() -> None:
    """Do not start typing a code in the last seconds of its 30-second step."""
    left = 30 - time.time() % 30
    if left < 3:
        time.sleep(left + 0.2)


def test_owner_enrols_at_first_sign_in_then_signs_in_with_a_code(page, database_url, screenshot):
    forget_two_factor(database_url, "owner")

    page.goto("/login/")
    page.get_by_label("Username").fill("owner")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(re.compile(r"/totp/enroll$"))
    expect(page.get_by_role("heading", name="Set up two-factor sign-in", level=1)).to_be_visible()
    expect(page.get_by_text("Your account needs two-factor sign-in.")).to_be_visible()
    expect(page.locator("figure.cd-qr svg")).to_be_visible()
    screenshot("totp-enroll")

    # Anything else waits until the owner has enrolled.
    page.goto("/settings/")
    expect(page).to_have_url(re.compile(r"/totp/enroll$"))

    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    wait_out_step_end()
    enrolled_at = time.time()
    page.get_by_label("Code", exact=True).fill(totp.at(enrolled_at))
    page.get_by_role("button", name="Turn on two-factor sign-in").click()

    expect(page.get_by_role("heading", name="Save your recovery codes", level=1)).to_be_visible()
    codes = page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    expect(codes.first).to_have_text(re.compile(r"^[a-z2-9]{4}-[a-z2-9]{4}$"))
    screenshot("totp-recovery-codes")

    page.get_by_role("link", name="I have saved them, continue").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Good to see you")
    page.get_by_role("banner").get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login/"))

    page.get_by_label("Username").fill("owner")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/totp/$"))
    expect(page.get_by_role("heading", name="Two-factor sign-in", level=1)).to_be_visible()
    expect(page.get_by_label("Code", exact=True)).to_be_focused()
    screenshot("totp-verify")

    # The enrolment used its step's code: the next code is the following step's, which the
    # app accepts a step early (clock skew), so nobody waits 30 seconds here.
    wait_out_step_end()
    step = max(int(time.time() // 30), int(enrolled_at // 30) + 1)
    page.get_by_label("Code", exact=True).fill(totp.generate_otp(step))
    page.get_by_role("button", name="Verify and sign in").click()

    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Good to see you")
    page.get_by_role("banner").get_by_role("link", name="Two-factor sign-in").click()
    expect(page.get_by_text("10 of 10")).to_be_visible()


def test_a_wrong_code_is_explained(page, screenshot):
    page.goto("/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/totp/$"))

    page.get_by_label("Code", exact=True).fill("12345")
    page.get_by_role("button", name="Verify and sign in").click()

    expect(page.get_by_role("alert")).to_contain_text("That code is not valid")
    expect(page.get_by_label("Code", exact=True)).to_have_value("")
    screenshot("totp-verify-wrong-code")
