"""/settings/: the organisation and its branches, edited through the real forms."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.org import Branch, Organisation
from tests.conftest import Auth, bearer_headers, csrf_token_from, login_as

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

BRANCH_FORM = {
    "name": "Hillside Clinic",
    "code": "hs",
    "address": "1 Hill Road",
    "phone": "080 4123 4567",
    "email": "hillside@example.org",
    "country": "IN",
    "time_zone": "Asia/Kolkata",
    "currency": "INR",
    "tax_id": "29ABCDE1234F3Z3",
    "fy_start_month": "4",
    "letterhead_text": "Family medicine",
    "is_active": "y",
}


def signed_in(app, username):
    client = app.test_client()
    Auth(client).login(username)
    return client


def post_form(client, path, data, **kwargs):
    page = client.get(path).get_data(as_text=True)
    return client.post(path, data={**data, "csrf_token": csrf_token_from(page)}, **kwargs)


def branch(app, code):
    with app.app_context():
        return db.session.scalar(sa.select(Branch).where(Branch.code == code))


def test_owner_sees_organisation_and_branches(app):
    body = signed_in(app, "owner").get("/settings/").get_data(as_text=True)
    assert "Springfield Family Clinics" in body
    assert "Downtown Clinic" in body and "Lakeside Dental" in body
    assert "Add a branch" in body


def test_owner_adds_a_branch_with_normalised_phone_and_code(app):
    client = signed_in(app, "owner")
    response = post_form(client, "/settings/branches/add", BRANCH_FORM)
    assert response.status_code == 302
    hillside = branch(app, "HS")
    assert hillside.name == "Hillside Clinic"
    assert hillside.phone == "+918041234567"
    assert hillside.fy_start_month == 4


def test_bad_phone_is_refused_and_typed_values_kept(app):
    client = signed_in(app, "owner")
    downtown = branch(app, "DT")
    data = {**BRANCH_FORM, "name": "Downtown Clinic", "code": "DT", "phone": "12",
            "letterhead_text": "New letterhead wording"}
    response = post_form(client, f"/settings/branches/edit/{downtown.id}", data)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Enter a phone number with its area code" in body
    assert "New letterhead wording" in body
    assert branch(app, "DT").letterhead_text != "New letterhead wording"


def test_duplicate_branch_code_gets_a_message_not_an_error_page(app):
    client = signed_in(app, "owner")
    response = post_form(client, "/settings/branches/add", {**BRANCH_FORM, "name": "Other", "code": "DT"})
    assert response.status_code == 200
    assert "Already exists" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "field, value",
    [("time_zone", "Mars/Olympus"), ("currency", "XXY"), ("country", "ZZ")],
)
def test_unknown_regional_settings_are_refused(app, field, value):
    client = signed_in(app, "owner")
    data = {**BRANCH_FORM, "name": f"Bad {field}", "code": f"B{field[:2].upper()}", field: value}
    response = post_form(client, "/settings/branches/add", data)
    assert response.status_code == 200
    assert "Not a valid choice" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(Branch).where(Branch.name == f"Bad {field}")) is None


def test_logo_upload_is_checked_and_served(app):
    client = signed_in(app, "owner")
    lakeside = branch(app, "LS")
    base = {**BRANCH_FORM, "name": "Lakeside Dental", "code": "LS", "phone": ""}
    response = post_form(
        client, f"/settings/branches/edit/{lakeside.id}",
        {**base, "logo": (io.BytesIO(b"<svg>not an image</svg>"), "logo.svg")},
        content_type="multipart/form-data",
    )
    assert "The logo must be a PNG or JPEG image." in response.get_data(as_text=True)
    too_big = PNG + b"\x00" * (app.config["BRANCH_LOGO_MAX_BYTES"])
    response = post_form(
        client, f"/settings/branches/edit/{lakeside.id}",
        {**base, "logo": (io.BytesIO(too_big), "big.png")},
        content_type="multipart/form-data",
    )
    assert "The logo is too large" in response.get_data(as_text=True)
    response = post_form(
        client, f"/settings/branches/edit/{lakeside.id}",
        {**base, "logo": (io.BytesIO(PNG), "logo.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    logo = login_as(app, "doctor2").get(f"/branding/logo/{lakeside.id}")
    assert logo.status_code == 200
    assert logo.mimetype == "image/png"
    assert logo.data == PNG
    # editing without a new file keeps the logo
    post_form(client, f"/settings/branches/edit/{lakeside.id}", base)
    assert login_as(app, "doctor2").get(f"/branding/logo/{lakeside.id}").data == PNG


def test_owner_edits_the_organisation(app):
    client = signed_in(app, "owner")
    data = {"name": "Springfield Family Clinics", "legal_name": "Springfield Health LLP",
            "email": "hello@example.org", "phone": "", "website": "", "default_locale": "en"}
    response = post_form(client, "/settings/organisation/edit/1", data)
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Organisation, 1).legal_name == "Springfield Health LLP"


def test_accountant_reads_settings_but_cannot_change_them(app):
    client = signed_in(app, "accountant")
    body = client.get("/settings/").get_data(as_text=True)
    assert "Downtown Clinic" in body
    assert "Add a branch" not in body
    downtown = branch(app, "DT")
    assert client.get(f"/settings/branches/edit/{downtown.id}").status_code == 403
    assert client.get("/settings/branches/add").status_code == 403


@pytest.mark.parametrize("username", ["doctor", "reception", "pharmacist", "labtech"])
def test_branch_staff_cannot_open_settings(app, username):
    assert login_as(app, username).get("/settings/").status_code == 403


API_BRANCH = {
    "name": "Riverside Clinic", "code": "rv", "country": "IN", "time_zone": "Asia/Kolkata",
    "currency": "INR", "phone": "080 4000 1234", "fy_start_month": 4,
}


def test_owner_adds_a_branch_through_the_api(app):
    client = app.test_client()
    response = client.post("/api/v1/branches/", json=API_BRANCH, headers=bearer_headers(app, "owner"))
    assert response.status_code == 201, response.json
    riverside = branch(app, "RV")
    assert riverside.phone == "+918040001234"


@pytest.mark.parametrize(
    "field, value",
    [("currency", "XXY"), ("time_zone", "Mars/Olympus"), ("country", "ZZ"), ("fy_start_month", 13),
     ("phone", "12")],
)
def test_api_refuses_invalid_branch_settings(app, field, value):
    client = app.test_client()
    data = {**API_BRANCH, "name": f"API bad {field}", "code": f"X{field[:3].upper()}", field: value}
    response = client.post("/api/v1/branches/", json=data, headers=bearer_headers(app, "owner"))
    assert response.status_code == 422, response.json
    with app.app_context():
        assert db.session.scalar(sa.select(Branch).where(Branch.name == f"API bad {field}")) is None


def test_api_refuses_an_impossible_phone_number_without_an_error_page(app):
    client = app.test_client()
    data = {**API_BRANCH, "name": "API odd phone", "code": "XOP", "phone": "0000000000000000"}
    response = client.post("/api/v1/branches/", json=data, headers=bearer_headers(app, "owner"))
    assert response.status_code == 422, response.json


def test_doctor_cannot_add_branches_through_the_api(app):
    client = app.test_client()
    response = client.post(
        "/api/v1/branches/", json={**API_BRANCH, "code": "DOC"}, headers=bearer_headers(app, "doctor")
    )
    assert response.status_code == 403
