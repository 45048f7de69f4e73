"""Demo data for a fresh installation, and a smoke of every screen on it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import url_for

from app.extensions import db
from app.models.org import Branch
from app.security import policy
from tests.conftest import PASSWORD, Auth, login_as, required_permission

pytestmark = pytest.mark.sqlite_subset

DEMO_USERNAMES = [
    "admin", "owner", "doctor", "reception", "pharmacist", "labtech", "accountant",
    "doctor2", "reception2",
]


def counts(app) -> tuple[int, int, int]:
    with app.app_context():
        return (
            db.session.scalar(sa.text("SELECT count(*) FROM ab_user")),
            db.session.scalar(sa.text("SELECT count(*) FROM branch")),
            db.session.scalar(sa.text("SELECT count(*) FROM ab_user_branch")),
        )


@pytest.mark.parametrize("username", DEMO_USERNAMES)
def test_every_demo_user_can_sign_in(app, username):
    client = app.test_client()
    response = Auth(client).login(username)
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert "Sign out" in home.get_data(as_text=True)


def test_demo_users_have_their_roles_and_branches(app):
    with app.app_context():
        sm = app.appbuilder.sm
        doctor2 = sm.find_user(username="doctor2")
        assert [r.name for r in doctor2.roles] == [policy.DOCTOR]
        assert [b.code for b in doctor2.branches] == ["LS"]
        assert [b.code for b in sm.find_user(username="reception").branches] == ["DT"]


def test_seed_demo_is_idempotent(app):
    before = counts(app)
    result = app.test_cli_runner().invoke(args=["clinic", "seed-demo", "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    assert counts(app) == before
    assert Auth(app.test_client()).login("doctor").status_code == 302


def test_seed_demo_without_password_keeps_a_random_one(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["clinic", "seed-demo"])
    assert result.exit_code == 0, result.output
    password_file = app.instance_path + "/demo_password"
    with open(password_file) as handle:
        password = handle.read().strip()
    assert len(password) >= 12
    assert password in result.output
    assert password in runner.invoke(args=["clinic", "demo-logins"]).output
    assert Auth(app.test_client()).login("owner", password).status_code == 302
    # running again keeps the same password
    runner.invoke(args=["clinic", "seed-demo"])
    assert Auth(app.test_client()).login("owner", password).status_code == 302
    runner.invoke(args=["clinic", "seed-demo", "--password", PASSWORD])


def test_seed_demo_refuses_production(make_app):
    app = make_app(ENV_NAME="production")
    result = app.test_cli_runner().invoke(args=["clinic", "seed-demo", "--password", "x" * 16])
    assert result.exit_code != 0
    assert "never loaded into a production installation" in result.output


def screen_urls(app) -> list[str]:
    """Every GET screen (not API, not static), with a real record for <pk>."""
    urls = []
    views = {view.endpoint: view for view in app.appbuilder.baseviews}
    with app.app_context(), app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.rule.startswith(("/api/", "/static", "/swagger")):
                continue
            endpoint_view, _, method = rule.endpoint.partition(".")
            if method in {"action", "download", "delete", "logo"} or rule.endpoint == "LocaleView.index":
                continue
            view = views.get(endpoint_view)
            pair = required_permission(view, method) if view else None
            if pair and pair[0] not in view.base_permissions:
                continue  # a door this view keeps shut for everyone (e.g. no "add" on Staff)
            values = {}
            if "pk" in rule.arguments:
                record = db.session.query(view.datamodel.obj).first()
                if record is None:
                    continue
                values["pk"] = record.id
            if set(rule.arguments) - set(values):
                continue
            urls.append(url_for(rule.endpoint, **values))
    return sorted(set(urls))


def test_every_screen_renders_for_admin(app):
    client = login_as(app, "admin")
    urls = screen_urls(app)
    assert "/settings/" in urls and "/staff/list/" in urls
    failures = []
    for url in urls:
        response = client.get(url)
        if response.status_code not in (200, 302):
            failures.append(f"{url}: {response.status_code}")
        elif "Traceback" in response.get_data(as_text=True):
            failures.append(f"{url}: traceback in page")
    assert not failures, failures


def test_health_and_login_are_public(client):
    assert client.get("/health").status_code == 200
    assert client.get("/login/").status_code == 200
    assert client.get("/").headers["Location"].startswith("/login/")


def test_demo_branches_are_believable(app):
    with app.app_context():
        branches = db.session.scalars(sa.select(Branch).order_by(Branch.code)).all()
        assert [(b.code, b.currency, b.time_zone) for b in branches] == [
            ("DT", "INR", "Asia/Kolkata"),
            ("LS", "INR", "Asia/Kolkata"),
        ]
