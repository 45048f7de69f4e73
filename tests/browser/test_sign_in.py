"""Signing in and out through the real login form, as reception does at the start of a day."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_visitor_is_sent_to_a_labelled_login_form(page, screenshot):
    page.goto("/")

    expect(page).to_have_url(re.compile(r"/login/"))
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    expect(page.get_by_label("Username")).to_be_focused()
    expect(page.get_by_label("Password")).to_have_attribute("type", "password")
    expect(page.get_by_role("navigation", name="Main navigation")).to_have_count(0)
    screenshot("login")


def test_reception_signs_in_and_sees_their_clinic(page, sign_in, screenshot):
    sign_in("reception")

    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Good to see you, Rahul")
    expect(page.get_by_role("banner")).to_contain_text("Rahul Iyer")
    branches = page.get_by_role("region", name="Your branches")
    expect(branches).to_contain_text("Downtown Clinic")
    expect(branches).not_to_contain_text("Lakeside Dental")
    nav = page.get_by_role("navigation", name="Main navigation")
    expect(nav.get_by_role("link", name="Staff")).to_be_visible()
    expect(nav.get_by_role("link", name="Settings")).to_have_count(0)
    expect(nav.get_by_role("link", name="Home")).to_have_attribute("aria-current", "page")
    screenshot("home-reception")


def test_wrong_password_keeps_the_username_and_explains(page, sign_in, screenshot):
    sign_in("reception", password="not-the-password")

    expect(page).to_have_url(re.compile(r"/login/"))
    expect(page.get_by_role("alert")).to_contain_text("username and password do not match")
    expect(page.get_by_label("Username")).to_have_value("reception")
    expect(page.get_by_label("Password")).to_have_value("")
    screenshot("login-wrong-password")


def test_sign_out_from_the_top_bar_returns_to_login(page, sign_in, screenshot):
    sign_in("reception")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Rahul")

    page.get_by_role("banner").get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(re.compile(r"/login/"))
    expect(page.get_by_role("status")).to_contain_text("You have signed out.")
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    screenshot("signed-out")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/"))
