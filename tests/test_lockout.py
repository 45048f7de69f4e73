"""Per-account lockout through the real pages and the REST login, with CSRF on.

Password and two-factor failures share one counter; a correct password does not reset it while
the code step fails; a locked account answers 423 with a clear message, even to the right
password, from any address; an Admin can unlock it; the lock ends by itself.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pyotp
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.audit import AuditEntry
from app.models.base import utcnow
from app.models.org import Branch
from app.models.security import UserSecurity
from tests.conftest import PASSWORD, TOTP_SECRETS, Auth, csrf_token_from, enrol_with_secret

pytestmark = pytest.mark.sqlite_subset

THRESHOLD = 5
LOCKED_TEXT = "This account is locked after too many failed sign-in attempts"


def path_of(response) -> str:
    return urlsplit(response.headers.get("Location", "")).path


@pytest.fixture
def new_user(app):
    """``new_user(username)``: a fresh doctor at Downtown, so each test has its own counter."""

    def make(username: str, secret: str | None = None):
        with app.app_context():
            sm = app.appbuilder.sm
            user = sm.add_user(
                username, "Test", username.title(), f"{username}@example.org",
                sm.find_role("Doctor"), password=PASSWORD,
            )
            user.branches = [db.session.scalars(sa.select(Branch).where(Branch.code == "DT")).one()]
            db.session.commit()
        if secret:
            enrol_with_secret(app, username, secret)
        return username

    return make


def state_of(app, username: str) -> UserSecurity:
    with app.app_context():
        user = app.appbuilder.sm.find_user(username=username)
        state = db.session.get(UserSecurity, user.id)
        db.session.expunge(state)
        return state


def auth_events(app, username: str) -> list[AuditEntry]:
    with app.app_context():
        user = app.appbuilder.sm.find_user(username=username)
        entries = list(
            db.session.scalars(
                sa.select(AuditEntry)
                .where(AuditEntry.kind == "auth", AuditEntry.record_id == str(user.id))
                .order_by(AuditEntry.id)
            )
        )
        db.session.expunge_all()
        return entries


def test_repeated_wrong_passwords_lock_the_account(app, client, auth, new_user):
    username = new_user("lock.password")
    for attempt in range(1, THRESHOLD):
        response = auth.password_step(username, "wrong-password-123")
        assert response.status_code == 200, attempt
        assert "do not match" in response.get_data(as_text=True)
    locking = auth.password_step(username, "wrong-password-123")
    assert locking.status_code == 423
    assert LOCKED_TEXT in locking.get_data(as_text=True)

    right = auth.password_step(username, PASSWORD)
    assert right.status_code == 423, "the right password does not open a locked account"
    body = right.get_data(as_text=True)
    assert LOCKED_TEXT in body and "Try again in 15 minutes" in body
    assert "Traceback" not in body
    assert path_of(client.get("/")) == "/login/"

    events = auth_events(app, username)
    actions = [entry.action for entry in events]
    # THRESHOLD counted failures, then the refused attempt while locked, recorded as such
    assert actions.count("login_failure") == THRESHOLD + 1
    assert json.loads(events[-1].details) == {"step": "password", "locked": True}
    assert actions.count("lockout") == 1
    state = state_of(app, username)
    assert state.locked_until is not None


def test_the_lock_message_is_translated(app, client, auth, new_user):
    username = new_user("lock.spanish")
    client.get("/lang/es")
    for _ in range(THRESHOLD):
        response = auth.password_step(username, "wrong-password-123")
    assert response.status_code == 423
    body = response.get_data(as_text=True)
    assert LOCKED_TEXT not in body
    assert "bloqueada" in body


def test_rotating_spoofed_addresses_does_not_escape_the_lock(make_app, new_user, capsys):
    """Even an app that trusts one proxy hop (so every attempt comes from "another" address)."""
    app = make_app(PROXY_FIX_HOPS=1)
    username = new_user("lock.spoofed")
    client = app.test_client()
    auth = Auth(client)
    statuses = []
    for attempt in range(12):
        address = f"203.0.113.{attempt + 10}"
        page = client.get("/login/")
        response = client.post(
            "/login/",
            data={
                "username": username,
                "password": "wrong-password-123",
                "csrf_token": csrf_token_from(page.get_data(as_text=True)),
            },
            headers={"X-Forwarded-For": address},
        )
        statuses.append(response.status_code)
    locked_after = statuses.index(423) + 1
    with capsys.disabled():
        print(
            f"\n[lockout] {len(statuses)} attempts from {len(statuses)} spoofed IPs: "
            f"locked after {locked_after}"
        )
    assert locked_after == THRESHOLD
    assert all(status == 423 for status in statuses[THRESHOLD - 1:])
    assert auth.password_step(username, PASSWORD).status_code == 423
    failures = [e for e in auth_events(app, username) if e.action == "login_failure"]
    counted = {e.ip for e in failures if "locked" not in json.loads(e.details)}
    assert len(counted) == THRESHOLD, "each counted failure came from a different address"
    assert len(failures) == len(statuses) + 1, "attempts while locked are recorded too"


def test_password_and_code_failures_share_one_counter(app, client, auth, new_user):
    secret = pyotp.random_base32()
    username = new_user("lock.shared", secret)
    wrong_code = "000000"
    assert auth.password_step(username, "wrong-password-123").status_code == 200
    assert auth.password_step(username, "wrong-password-123").status_code == 200
    assert state_of(app, username).failed_attempts == 2

    assert path_of(auth.password_step(username)) == "/totp/"
    assert state_of(app, username).failed_attempts == 2, "a right password alone resets nothing"
    while pyotp.TOTP(secret).verify(wrong_code, valid_window=1):
        wrong_code = f"{int(wrong_code) + 1:06d}"
    assert auth.code_step(wrong_code).status_code == 200
    assert auth.code_step(wrong_code).status_code == 200
    assert state_of(app, username).failed_attempts == 4

    assert path_of(auth.password_step(username)) == "/totp/"
    assert state_of(app, username).failed_attempts == 4
    locking = auth.code_step(wrong_code)
    assert locking.status_code == 423
    assert LOCKED_TEXT in locking.get_data(as_text=True)

    # locked: the right password and a right code change nothing
    assert auth.password_step(username).status_code == 423
    assert path_of(client.get("/totp/")) == "/login/"
    events = auth_events(app, username)
    actions = [entry.action for entry in events]
    assert actions.count("login_failure") == 2 + 1  # the last: refused while locked
    assert actions.count("totp_failure") == 3
    assert actions[-2:] == ["lockout", "login_failure"]
    assert json.loads(events[-1].details) == {"step": "password", "locked": True}


def test_a_full_sign_in_resets_the_counter(app, auth, new_user):
    secret = pyotp.random_base32()
    username = new_user("lock.reset", secret)
    for _ in range(THRESHOLD - 1):
        auth.password_step(username, "wrong-password-123")
    assert state_of(app, username).failed_attempts == THRESHOLD - 1
    auth.password_step(username)
    assert path_of(auth.code_step(pyotp.TOTP(secret).now())) == "/"
    assert state_of(app, username).failed_attempts == 0
    assert [e.action for e in auth_events(app, username)][-1] == "login_success"


def test_the_lock_ends_after_the_configured_time(make_app, new_user):
    app = make_app(AUTH_LOCKOUT_THRESHOLD=3, AUTH_LOCKOUT_MINUTES=2)
    username = new_user("lock.expiry")
    auth = Auth(app.test_client())
    for _ in range(3):
        response = auth.password_step(username, "wrong-password-123")
    assert response.status_code == 423
    assert "Try again in 2 minutes" in response.get_data(as_text=True)
    until = state_of(app, username).locked_until
    until = until if until.tzinfo else until.replace(tzinfo=utcnow().tzinfo)
    assert timedelta(seconds=100) < until - utcnow() <= timedelta(minutes=2)
    assert auth.password_step(username).status_code == 423

    with app.app_context():  # two minutes pass
        user_id = app.appbuilder.sm.find_user(username=username).id
        db.session.execute(
            sa.update(UserSecurity)
            .where(UserSecurity.user_id == user_id)
            .values(locked_until=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert path_of(auth.password_step(username)) == "/"
    assert state_of(app, username).failed_attempts == 0


def test_admin_unlocks_an_account(app, auth, new_user):
    username = new_user("lock.unlock")
    for _ in range(THRESHOLD):
        auth.password_step(username, "wrong-password-123")
    assert auth.password_step(username).status_code == 423
    with app.app_context():
        target = app.appbuilder.sm.find_user(username=username).id

    owner = app.test_client()
    Auth(owner).login("owner")
    token = csrf_token_from(owner.get("/users/userinfo/").get_data(as_text=True))
    assert owner.post(f"/users/action/unlock/{target}", data={"csrf_token": token}).status_code == 403

    admin = app.test_client()
    Auth(admin).login("admin")
    show = admin.get(f"/users/show/{target}").get_data(as_text=True)
    assert "Locked" in show and "Unlock sign-in" in show
    assert admin.get(f"/users/action/unlock/{target}").status_code == 405
    response = admin.post(f"/users/action/unlock/{target}", data={"csrf_token": csrf_token_from(show)})
    assert path_of(response) == f"/users/show/{target}"
    after = admin.get(f"/users/show/{target}").get_data(as_text=True)
    assert f"{username} can sign in again." in after and "Not locked" in after

    entry = [e for e in auth_events(app, username) if e.action == "unlock"][-1]
    assert entry.actor == "admin"  # the Admin acted; the account is the record
    assert json.loads(entry.details) == {"by": "admin"}
    assert path_of(auth.password_step(username)) == "/"


def test_rest_login_counts_failures_and_honours_the_lock(app, new_user):
    username = new_user("lock.api")
    client = app.test_client()
    body = {"username": username, "password": "wrong-password-123", "provider": "db"}
    answers = [client.post("/api/v1/security/login", json=body).status_code for _ in range(THRESHOLD)]
    assert answers == [401] * (THRESHOLD - 1) + [423]
    locked = client.post("/api/v1/security/login", json={**body, "password": PASSWORD})
    assert locked.status_code == 423
    assert LOCKED_TEXT in locked.get_json()["message"]
    # the form refuses too: one counter, whatever the door
    assert Auth(app.test_client()).password_step(username).status_code == 423


def test_unknown_usernames_are_refused_plainly(app, auth):
    for _ in range(THRESHOLD + 2):
        response = auth.password_step("nobody-by-this-name", "wrong-password-123")
        assert response.status_code == 200
        assert "do not match" in response.get_data(as_text=True)
    with app.app_context():
        failures = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "login_failure", AuditEntry.record_id.is_(None),
                   AuditEntry.details.contains("unknown_account"))
        )
        typed = db.session.scalar(
            sa.select(sa.func.count()).select_from(AuditEntry)
            .where(sa.or_(AuditEntry.actor == "nobody-by-this-name",
                          AuditEntry.details.contains("nobody-by-this-name")))
        )
    assert failures >= THRESHOLD + 2
    assert typed == 0  # what a visitor typed for no account is never stored


def test_admin_totp_failures_lock_the_admin_too(app, auth):
    """Admin is no exception; unlocking by a second Admin is not needed to read the figure."""
    with app.app_context():
        admin_id = app.appbuilder.sm.find_user(username="admin").id
        db.session.execute(
            sa.update(UserSecurity).where(UserSecurity.user_id == admin_id).values(failed_attempts=0)
        )
        db.session.commit()
    codes = {pyotp.TOTP(TOTP_SECRETS["admin"]).at(time.time() + 30 * s) for s in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1000000) if f"{n:06d}" not in codes)
    statuses = []
    for _ in range(THRESHOLD):
        auth.password_step("admin")
        statuses.append(auth.code_step(wrong).status_code)
    assert statuses == [200] * (THRESHOLD - 1) + [423]
    with app.app_context():
        db.session.execute(
            sa.update(UserSecurity)
            .where(UserSecurity.user_id == admin_id)
            .values(failed_attempts=0, locked_until=None)
        )
        db.session.commit()
