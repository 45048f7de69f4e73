"""Admins manage staff accounts with their roles and branches through FAB's user screens."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.org import Branch
from app.security import policy
from tests.conftest import Auth, csrf_token_from, login_as


def ids(app, model, column, *values):
    with app.app_context():
        return [
            str(db.session.scalar(sa.select(model.id).where(column == value))) for value in values
        ]


def role_id(app, name):
    with app.app_context():
        return str(app.appbuilder.sm.find_role(name).id)


def new_user_form(app, **changes):
    form = {
        "first_name": "Lena",
        "last_name": "Fischer",
        "username": "lena",
        "active": "y",
        "email": "lena@example.org",
        "roles": [role_id(app, policy.RECEPTIONIST)],
        "branches": ids(app, Branch, Branch.code, "LS"),
        "password": "a-long-enough-password",
        "conf_password": "a-long-enough-password",
    }
    form.update(changes)
    return form


@pytest.fixture
def admin(app):
    client = app.test_client()
    Auth(client).login("admin")
    return client


def post(client, path, data):
    token = csrf_token_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={**data, "csrf_token": token})


def test_admin_creates_a_receptionist_for_one_branch(app, admin):
    response = post(admin, "/users/add", new_user_form(app))
    assert response.status_code == 302
    with app.app_context():
        user = app.appbuilder.sm.find_user(username="lena")
        assert [b.code for b in user.branches] == ["LS"]
        assert [r.name for r in user.roles] == [policy.RECEPTIONIST]
    new_client = app.test_client()
    assert Auth(new_client).login("lena", "a-long-enough-password").status_code == 302
    staff = new_client.get("/staff/list/").get_data(as_text=True)
    assert "Sanjay" in staff and "Priya" not in staff  # Lakeside colleagues only


def test_branch_role_without_a_branch_is_refused_with_a_message(app, admin):
    form = new_user_form(app, username="nobranch", email="nobranch@example.org", branches=[])
    response = post(admin, "/users/add", form)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Choose at least one branch" in body
    assert 'value="nobranch"' in body  # what the admin typed is still there
    with app.app_context():
        assert app.appbuilder.sm.find_user(username="nobranch") is None


def test_owner_needs_no_branch(app, admin):
    form = new_user_form(
        app, username="owner2", email="owner2@example.org", branches=[],
        roles=[role_id(app, policy.OWNER)],
    )
    assert post(admin, "/users/add", form).status_code == 302


def test_a_user_needs_a_role(app, admin):
    form = new_user_form(app, username="norole", email="norole@example.org", roles=[])
    response = post(admin, "/users/add", form)
    assert "Choose at least one role" in response.get_data(as_text=True)


def test_admin_moves_a_user_to_another_branch(app, admin):
    with app.app_context():
        reception = app.appbuilder.sm.find_user(username="reception2")
        pk = reception.id
    form = {
        "first_name": "Neha", "last_name": "Joshi", "username": "reception2", "active": "y",
        "email": "reception2@example.org", "roles": [role_id(app, policy.RECEPTIONIST)],
        "branches": ids(app, Branch, Branch.code, "DT", "LS"),
    }
    assert post(admin, f"/users/edit/{pk}", form).status_code == 302
    with app.app_context():
        user = app.appbuilder.sm.find_user(username="reception2")
        assert sorted(b.code for b in user.branches) == ["DT", "LS"]


@pytest.mark.parametrize("username", ["owner", "doctor", "reception", "accountant"])
def test_only_admin_manages_users(app, username):
    client = login_as(app, username)
    assert client.get("/users/list/").status_code == 403
    assert client.get("/users/add").status_code == 403


def test_staff_see_their_own_profile(app):
    client = login_as(app, "doctor")
    body = client.get("/users/userinfo/").get_data(as_text=True)
    assert "Priya" in body
    assert client.get("/resetmypassword/form").status_code == 200


def test_no_default_accounts_exist_without_the_seed(databases):
    from app import create_app
    from tests.conftest import config_for

    url = databases.create_empty("no_seed")
    app = create_app(config_for(url))
    result = app.test_cli_runner().invoke(args=["clinic", "init"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert app.appbuilder.sm.count_users() == 0
    databases.drop(url)
