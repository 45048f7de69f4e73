"""Passwords: at least 12 characters, not common, not the person's own names; scrypt hashes.

Through the real forms: an admin adding a user, a user changing their own password, an admin
setting someone's password. A refused password is never shown back in the page.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask_appbuilder.security.sqla.models import User

from app.extensions import db
from app.models.org import Branch
from app.security import policy
from app.security.passwords import (
    MIN_LENGTH,
    PasswordRejectedError,
    check_new_password,
    common_passwords,
)
from config import ProductionConfig
from tests.conftest import PASSWORD, Auth, csrf_token_from, login_as

GOOD = "tram-violet-harbour-9"
TOO_SHORT = "Lagoon-7-x!"  # 11 characters
COMMON = "Password1234!"
TOO_SHORT_MESSAGE = f"Use at least {MIN_LENGTH} characters"
COMMON_MESSAGE = "This password is too common"
PERSONAL_MESSAGE = "This password is too close to the person"


def post_form(client, path: str, data: dict):
    page = client.get(path).get_data(as_text=True)
    return client.post(path, data={**data, "csrf_token": csrf_token_from(page)})


def new_user(app, username: str, password: str) -> dict:
    with app.app_context():
        role = str(app.appbuilder.sm.find_role(policy.RECEPTIONIST).id)
        branch = str(db.session.scalar(sa.select(Branch.id).where(Branch.code == "DT")))
    return {
        "first_name": "Lena",
        "last_name": "Fischer",
        "username": username,
        "active": "y",
        "email": f"{username}@example.org",
        "roles": [role],
        "branches": [branch],
        "password": password,
        "conf_password": password,
    }


def user_exists(app, username: str) -> bool:
    with app.app_context():
        return app.appbuilder.sm.find_user(username=username) is not None


@pytest.mark.parametrize(
    ("password", "message"),
    [
        (TOO_SHORT, TOO_SHORT_MESSAGE),
        (COMMON, COMMON_MESSAGE),
        ("qwertyuiop12", COMMON_MESSAGE),
        ("LenaFischer2024", PERSONAL_MESSAGE),
        ("rehcsif-anel-7", PERSONAL_MESSAGE),  # the names reversed
        ("LENA.FI-20242024", PERSONAL_MESSAGE),  # the username, digits added
    ],
)
def test_admin_adding_a_user_gets_a_clear_refusal(app, password, message):
    admin = login_as(app, "admin")
    username = "lena.fi"
    response = post_form(admin, "/users/add", new_user(app, username, password))
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert message in body
    assert password not in body, "the refused password is shown back"
    assert 'value="lena.fi"' in body, "what the admin typed otherwise is kept"
    assert not user_exists(app, username)


def test_admin_adding_a_user_with_a_good_password(app, capsys):
    admin = login_as(app, "admin")
    response = post_form(admin, "/users/add", new_user(app, "lena.ok", GOOD))
    assert response.status_code == 302
    assert Auth(app.test_client()).login("lena.ok", GOOD).status_code == 302
    with capsys.disabled():
        print(
            f"\n[passwords] minimum {MIN_LENGTH} characters, {len(common_passwords())} common "
            "passwords shipped, own names refused"
        )


@pytest.mark.parametrize(
    ("password", "message"),
    [
        (TOO_SHORT, TOO_SHORT_MESSAGE),
        ("iloveyou2024", COMMON_MESSAGE),
        ("priya-nair-1990", PERSONAL_MESSAGE),
        ("Doctor12345678", PERSONAL_MESSAGE),  # the username with digits
        ("ayirp-rian-!!", PERSONAL_MESSAGE),  # reversed
    ],
)
def test_user_changing_their_own_password_gets_a_clear_refusal(app, password, message):
    client = login_as(app, "doctor")
    response = post_form(
        client, "/resetmypassword/form", {"current_password": PASSWORD, "password": password, "conf_password": password}
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert message in body
    assert password not in body


def test_user_changes_their_own_password(app):
    client = login_as(app, "labtech")
    response = post_form(
        client, "/resetmypassword/form", {"current_password": PASSWORD, "password": GOOD, "conf_password": GOOD}
    )
    assert response.status_code == 302
    assert Auth(app.test_client()).login("labtech", GOOD).status_code == 302


def test_admin_setting_a_password_checks_the_users_own_names(app):
    with app.app_context():
        pk = app.appbuilder.sm.find_user(username="reception2").id
    admin = login_as(app, "admin")
    path = f"/resetpassword/form?pk={pk}"
    response = post_form(admin, path, {"password": "NehaJoshi-2024", "conf_password": "NehaJoshi-2024"})
    assert PERSONAL_MESSAGE in response.get_data(as_text=True)
    response = post_form(admin, path, {"current_password": PASSWORD, "password": GOOD, "conf_password": GOOD})
    assert response.status_code == 302


def test_fab_forms_use_the_clinic_password_check(app):
    assert app.config["FAB_PASSWORD_COMPLEXITY_ENABLED"] is True
    assert app.config["FAB_PASSWORD_COMPLEXITY_VALIDATOR"] is check_new_password


@pytest.mark.parametrize(
    "password",
    [
        "correct-horse-battery-staple",
        "P@ssw0rd12345",
        "summer2024!!",
        "dragondragon",
        "123456789012",
        "abcdefghijkl",
        "aaaaaaaaaaaa",
        "clinicdesk2024",
        "Welcome@12345",
    ],
)
def test_common_passwords_and_their_variants_are_refused(password):
    with pytest.raises(PasswordRejectedError):
        check_new_password(password)


@pytest.mark.parametrize(
    "password",
    [GOOD, "love84239011", "ann-likes-hiking-in-the-alps", "Zw9#qL2!vR7@"],
)
def test_uncommon_passwords_need_no_special_characters(password):
    check_new_password(password, ("Rahul", "Iyer", "reception", "reception@example.org"))


def test_production_hashes_passwords_with_scrypt(make_app):
    assert ProductionConfig.FAB_PASSWORD_HASH_METHOD == "scrypt"
    app = make_app(FAB_PASSWORD_HASH_METHOD=ProductionConfig.FAB_PASSWORD_HASH_METHOD)
    client = login_as(app, "accountant")
    response = post_form(
        client, "/resetmypassword/form", {"current_password": PASSWORD, "password": GOOD, "conf_password": GOOD}
    )
    assert response.status_code == 302
    with app.app_context():
        stored = db.session.scalar(sa.select(User.password).where(User.username == "accountant"))
    assert stored.startswith("scrypt:")


def test_changing_my_password_asks_for_the_current_one(app):
    client = login_as(app, "pharmacist")
    response = post_form(
        client, "/resetmypassword/form",
        {"current_password": "not-my-password-at-all", "password": GOOD, "conf_password": GOOD},
    )
    assert response.status_code == 200
    assert "That is not your current password." in response.get_data(as_text=True)
    assert Auth(app.test_client()).login("pharmacist").status_code == 302  # unchanged
