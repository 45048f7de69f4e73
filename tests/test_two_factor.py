"""Two-factor sign-in through the real pages and the REST login, with CSRF on.

Admin and Owner must use it (the template database enrols them with ``TOTP_SECRETS``; a freshly
seeded database sends them to enrolment), everyone else may. Codes are accepted once, with one
time step of clock skew either way; recovery codes work once each; secrets are stored encrypted.
"""

from __future__ import annotations

import json
import re
import threading
import time
from urllib.parse import urlsplit

import pyotp
import pytest
import sqlalchemy as sa
from flask_jwt_extended import decode_token

from app import create_app
from app.extensions import db
from app.models.audit import AuditEntry
from app.models.org import Organisation
from app.models.security import RecoveryCode, UserSecurity
from app.security import totp
from tests.conftest import (
    PASSWORD,
    TOTP_SECRETS,
    Auth,
    bearer_headers,
    config_for,
    csrf_token_from,
    enrol_with_secret,
    login_as,
    migrate_and_seed,
)

pytestmark = pytest.mark.sqlite_subset

SECRET_RE = re.compile(r'<code id="totp-secret">([A-Z2-7 ]+)</code>')
RECOVERY_RE = re.compile(r"<li><code>([a-z2-9]{4}-[a-z2-9]{4})</code></li>")


# -- helpers ------------------------------------------------------------------------------------


def path_of(response) -> str:
    return urlsplit(response.headers.get("Location", "")).path


def away_from_step_boundary() -> None:
    """Wait out the last seconds of a 30-second step, so "the previous step" stays the same."""
    left = 30 - time.time() % 30
    if left < 3:
        time.sleep(left + 0.2)


def code_at(secret: str, steps: int = 0) -> str:
    """The code of the step ``steps`` away from now."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


def user_id(app, username: str) -> int:
    with app.app_context():
        return app.appbuilder.sm.find_user(username=username).id


def security_row(app, username: str) -> UserSecurity:
    with app.app_context():
        state = db.session.get(UserSecurity, user_id(app, username))
        db.session.expunge(state)
        return state


def audit_actions(app, username: str) -> list[str]:
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(AuditEntry.action)
                .where(AuditEntry.kind == "auth", AuditEntry.record_id == str(user_id(app, username)))
                .order_by(AuditEntry.id)
            )
        )


def forget_two_factor(app, username: str) -> None:
    """As if ``username`` had never enrolled (an Admin's reset, done directly)."""
    with app.app_context():
        sm = app.appbuilder.sm
        totp.reset_two_factor(sm.find_user(username=username), sm.find_user(username="admin"))
        db.session.commit()


def enrol_through_pages(client) -> tuple[str, list[str]]:
    """Enrol the signed-in user as a person would: read the key, type a code, see the codes."""
    page = client.get("/totp/enroll")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    secret = SECRET_RE.search(body).group(1).replace(" ", "")
    response = client.post(
        "/totp/enroll", data={"code": code_at(secret), "csrf_token": csrf_token_from(body)}
    )
    assert response.status_code == 200
    codes = RECOVERY_RE.findall(response.get_data(as_text=True))
    return secret, codes


def rest_login(client, username: str, password: str = PASSWORD, **extra):
    return client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db", **extra},
    )


# -- a fresh installation -----------------------------------------------------------------------


def test_fresh_demo_sends_admin_and_owner_to_enrolment(databases):
    url = databases.create_empty("fresh2fa")
    migrate_and_seed(url, enrol_two_factor=False)
    app = create_app(config_for(url))
    try:
        for username in ("admin", "owner"):
            client = app.test_client()
            response = Auth(client).login(username)
            assert path_of(response) == "/totp/enroll", username
            assert path_of(client.get("/")) == "/totp/enroll"
            assert "Set up two-factor sign-in" in client.get("/totp/enroll").get_data(as_text=True)
        assert path_of(Auth(app.test_client()).login("doctor")) == "/"
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        databases.drop(url)


# -- enrolment and signing in with a code --------------------------------------------------------


def test_doctor_enrols_and_signs_in_with_a_code(app, client, auth):
    assert path_of(auth.login("doctor")) == "/"  # optional for doctors: signed in at once
    page = client.get("/totp/enroll").get_data(as_text=True)
    assert "Your account needs two-factor sign-in" not in page
    assert '<svg viewBox="0 0' in page and "cd-qr__code" in page  # the QR code, drawn here
    assert "otpauth" not in page.replace("QR code", "")  # no external image, no raw URI shown
    secret = SECRET_RE.search(page).group(1).replace(" ", "")
    assert SECRET_RE.search(client.get("/totp/enroll").get_data(as_text=True)).group(1).replace(
        " ", ""
    ) == secret, "a reload shows the same key"
    assert not totp_is_on(app, "doctor")

    wrong = client.post("/totp/enroll", data={"code": "000000", "csrf_token": csrf_token_from(page)})
    assert wrong.status_code == 200
    assert "That code is not valid" in wrong.get_data(as_text=True)
    assert not totp_is_on(app, "doctor")

    away_from_step_boundary()
    shown = client.post(
        "/totp/enroll", data={"code": code_at(secret), "csrf_token": csrf_token_from(page)}
    )
    body = shown.get_data(as_text=True)
    codes = RECOVERY_RE.findall(body)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "I have saved them" in body
    assert "no-store" in shown.headers["Cache-Control"]
    assert totp_is_on(app, "doctor")
    assert "totp_enrolled" in audit_actions(app, "doctor")

    # stored encrypted and hashed, never as typed
    state = security_row(app, "doctor")
    assert secret not in state.totp_secret and state.totp_secret.startswith("gAAAAA")
    with app.app_context():
        assert totp.decrypt_secret(state.totp_secret) == secret
        hashes = list(db.session.scalars(
            sa.select(RecoveryCode.code_hash).where(RecoveryCode.user_id == state.user_id)
        ))
    assert len(hashes) == 10
    assert not any(code.replace("-", "") in h or code in h for h in hashes for code in codes)
    # the codes are shown once: the page now shows the status instead
    status = client.get("/totp/enroll").get_data(as_text=True)
    assert "10 of 10" in status and not RECOVERY_RE.search(status)

    auth.logout()
    step = auth.password_step("doctor")
    assert path_of(step) == "/totp/"
    assert path_of(client.get("/")) == "/login/", "half signed in is not signed in"
    form = client.get("/totp/").get_data(as_text=True)
    assert 'name="code"' in form
    wrong = auth.code_step("123456" if code_at(secret) != "123456" else "654321")
    assert wrong.status_code == 200
    assert "That code is not valid or has already been used" in wrong.get_data(as_text=True)
    away_from_step_boundary()
    code = code_at(secret, +1)
    assert path_of(auth.code_step(code)) == "/"
    assert client.get("/").status_code == 200
    assert audit_actions(app, "doctor")[-2:] == ["totp_failure", "login_success"]

    # the same code again, in a new sign-in: refused
    auth.logout()
    auth.password_step("doctor")
    replay = auth.code_step(code)
    assert replay.status_code == 200
    assert "already been used" in replay.get_data(as_text=True)
    assert path_of(client.get("/")) == "/login/"


def totp_is_on(app, username: str) -> bool:
    with app.app_context():
        return totp.is_enrolled(user_id(app, username))


def test_the_code_step_needs_a_pending_sign_in_that_is_recent(app, client, auth):
    assert path_of(client.get("/totp/")) == "/login/"
    token = csrf_token_from(client.get("/login/").get_data(as_text=True))
    assert path_of(client.post("/totp/", data={"code": "123456", "csrf_token": token})) == "/login/"
    assert path_of(auth.password_step("admin")) == "/totp/"
    with client.session_transaction() as session:
        pending = session["signin_pending"]
        pending["at"] -= 301
        session["signin_pending"] = pending
    response = client.get("/totp/")
    assert path_of(response) == "/login/"
    assert "took too long" in client.get("/login/").get_data(as_text=True)
    late = client.post("/totp/", data={"code": code_at(TOTP_SECRETS["admin"]), "csrf_token": token})
    assert path_of(late) == "/login/"
    assert path_of(client.get("/")) == "/login/"


@pytest.mark.parametrize(
    "steps, accepted", [(-2, False), (+2, False), (-1, True), (0, True), (+1, True)]
)
def test_one_step_of_clock_skew_either_way(app, client, auth, steps, accepted):
    with app.app_context():
        db.session.execute(
            sa.update(UserSecurity)
            .where(UserSecurity.user_id == user_id(app, "admin"))
            .values(totp_last_step=None)
        )
        db.session.commit()
    away_from_step_boundary()
    auth.password_step("admin")
    response = auth.code_step(code_at(TOTP_SECRETS["admin"], steps))
    assert (path_of(response) == "/") is accepted, response.status_code
    if accepted:
        auth.logout()


def test_concurrent_submissions_of_one_code_accept_exactly_one(app, capsys):
    """The conditional UPDATE decides: threads in their own app contexts race with one code."""
    threads_count = 8
    admin_id = user_id(app, "admin")
    with app.app_context():
        db.session.execute(
            sa.update(UserSecurity).where(UserSecurity.user_id == admin_id).values(totp_last_step=None)
        )
        db.session.commit()
    away_from_step_boundary()
    code = code_at(TOTP_SECRETS["admin"])
    barrier = threading.Barrier(threads_count)
    results: list[bool] = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                accepted = totp.verify_code(admin_id, code)
                db.session.commit()
                results.append(accepted)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=submit) for _ in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not errors, errors
    with capsys.disabled():
        print(
            f"\n[totp] {threads_count} concurrent submissions of one code "
            f"({db_kind(app)}): {sum(results)} accepted"
        )
    assert len(results) == threads_count
    assert sum(results) == 1


def test_concurrent_sign_ins_with_one_code_sign_in_once(make_app, capsys):
    """The same race through the pages: eight half-signed-in browsers send one code at once."""
    app = make_app(AUTH_LOCKOUT_THRESHOLD=100)
    with app.app_context():
        db.session.execute(
            sa.update(UserSecurity)
            .where(UserSecurity.user_id == user_id(app, "owner"))
            .values(totp_last_step=None)
        )
        db.session.commit()
    browsers = []
    for _ in range(8):
        client = app.test_client()
        auth = Auth(client)
        assert path_of(auth.password_step("owner")) == "/totp/"
        token = csrf_token_from(client.get("/totp/").get_data(as_text=True))
        browsers.append((client, token))
    away_from_step_boundary()
    code = code_at(TOTP_SECRETS["owner"])
    barrier = threading.Barrier(len(browsers))
    statuses: list[str] = []

    def submit(client, token) -> None:
        barrier.wait(timeout=10)
        response = client.post("/totp/", data={"code": code, "csrf_token": token})
        statuses.append(path_of(response) or str(response.status_code))

    workers = [threading.Thread(target=submit, args=browser) for browser in browsers]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    with capsys.disabled():
        print(
            f"\n[totp] {len(browsers)} browsers signing in with one code at once "
            f"({db_kind(app)}): {statuses.count('/')} signed in"
        )
    with app.app_context():
        db.session.execute(
            sa.update(UserSecurity)
            .where(UserSecurity.user_id == user_id(app, "owner"))
            .values(failed_attempts=0)
        )
        db.session.commit()
    assert statuses.count("/") == 1, statuses
    assert statuses.count("200") == len(browsers) - 1, statuses


def db_kind(app) -> str:
    return "PostgreSQL" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql") else "SQLite"


# -- recovery codes ----------------------------------------------------------------------------


def test_a_recovery_code_works_once(app, client, auth):
    auth.login("labtech")
    _, codes = enrol_through_pages(client)
    auth.logout()

    auth.password_step("labtech")
    response = auth.code_step(codes[0].upper())  # typed in capitals: still the code
    assert path_of(response) == "/"
    home = client.get("/").get_data(as_text=True)
    assert "You signed in with a recovery code. 9 recovery codes are left" in home
    assert "recovery_code_used" in audit_actions(app, "labtech")
    auth.logout()

    auth.password_step("labtech")
    again = auth.code_step(codes[0])
    assert again.status_code == 200
    assert "already been used" in again.get_data(as_text=True)
    assert path_of(auth.code_step(codes[1].replace("-", ""))) == "/"
    with app.app_context():
        assert totp.recovery_codes_left(user_id(app, "labtech")) == 8


# -- who must use it -----------------------------------------------------------------------------


@pytest.fixture
def owner_not_enrolled(app):
    """The owner as on their first day; enrolled again with the known secret afterwards."""
    forget_two_factor(app, "owner")
    yield
    enrol_with_secret(app, "owner", TOTP_SECRETS["owner"])


def test_owner_must_enrol_before_anything_else(app, client, auth, owner_not_enrolled):
    assert path_of(auth.login("owner")) == "/totp/enroll"
    page = client.get("/totp/enroll").get_data(as_text=True)
    assert "Your account needs two-factor sign-in" in page
    for path in ("/", "/settings/", "/staff/list/", "/users/userinfo/", "/no-such-page"):
        assert path_of(client.get(path)) == "/totp/enroll", path
    assert client.get("/static/css/clinic.css").status_code == 200
    blocked = client.get("/api/v1/branches/")
    assert blocked.status_code == 403
    token_call = app.test_client().get("/api/v1/branches/", headers=bearer_headers(app, "owner"))
    assert token_call.status_code == 403
    assert "Enrol two-factor sign-in first" in token_call.get_json()["message"]
    refused = rest_login(app.test_client(), "owner")
    assert refused.status_code == 403
    assert "enrol two-factor sign-in first" in refused.get_json()["message"].lower()

    enrol_through_pages(client)
    assert client.get("/").status_code == 200
    assert client.get("/settings/").status_code == 200
    assert app.test_client().get(
        "/api/v1/branches/", headers=bearer_headers(app, "owner")
    ).status_code == 200


def test_sign_out_still_works_while_enrolment_is_pending(app, client, auth):
    forget_two_factor(app, "admin")
    try:
        assert path_of(auth.login("admin")) == "/totp/enroll"
        token = csrf_token_from(client.get("/totp/enroll").get_data(as_text=True))
        assert path_of(client.post("/logout/", data={"csrf_token": token})) == "/login/"
        assert path_of(client.get("/totp/enroll")) == "/login/"
    finally:
        enrol_with_secret(app, "admin", TOTP_SECRETS["admin"])


def test_two_factor_is_optional_for_other_roles(app, client, auth):
    assert path_of(auth.login("reception")) == "/"
    assert client.get("/").status_code == 200
    assert client.get("/staff/list/").status_code == 200
    assert rest_login(app.test_client(), "reception").status_code == 200


def test_organisation_setting_makes_it_mandatory_for_everyone(app):
    reception = app.test_client()
    Auth(reception).login("reception")
    assert reception.get("/").status_code == 200
    owner = app.test_client()
    Auth(owner).login("owner")
    set_require_for_all(owner, True)
    try:
        with app.app_context():
            assert db.session.get(Organisation, 1).require_2fa_for_all is True
        assert "Required for everyone" in owner.get("/settings/").get_data(as_text=True)
        # a session that began before the change is held too
        assert path_of(reception.get("/")) == "/totp/enroll"
        assert path_of(Auth(app.test_client()).login("accountant")) == "/totp/enroll"
        assert app.test_client().get(
            "/api/v1/branches/", headers=bearer_headers(app, "accountant")
        ).status_code == 403
        assert rest_login(app.test_client(), "pharmacist").status_code == 403
    finally:
        set_require_for_all(owner, False)
    assert reception.get("/").status_code == 200


def set_require_for_all(client, value: bool) -> None:
    page = client.get("/settings/organisation/edit/1").get_data(as_text=True)
    assert "Require two-factor sign-in for everyone" in page
    data = {
        "name": "Springfield Family Clinics", "legal_name": "", "email": "", "phone": "",
        "website": "", "default_locale": "en", "csrf_token": csrf_token_from(page),
    }
    if value:
        data["require_2fa_for_all"] = "y"
    assert client.post("/settings/organisation/edit/1", data=data).status_code == 302


# -- the Admin's reset -----------------------------------------------------------------------------


def test_admin_resets_a_users_two_factor_sign_in(app):
    doctor2 = app.test_client()
    Auth(doctor2).login("doctor2")
    enrol_through_pages(doctor2)
    assert doctor2.get("/").status_code == 200
    target = user_id(app, "doctor2")
    version_before = security_row(app, "doctor2").session_version

    owner = app.test_client()
    Auth(owner).login("owner")
    owner_page = owner.get("/users/userinfo/").get_data(as_text=True)
    refused = owner.post(
        f"/users/action/totp_reset/{target}", data={"csrf_token": csrf_token_from(owner_page)}
    )
    assert refused.status_code == 403

    admin = app.test_client()
    Auth(admin).login("admin")
    show = admin.get(f"/users/show/{target}").get_data(as_text=True)
    assert "Sign-in security" in show and "Reset two-factor sign-in" in show
    assert admin.get(f"/users/action/totp_reset/{target}").status_code == 405
    response = admin.post(
        f"/users/action/totp_reset/{target}", data={"csrf_token": csrf_token_from(show)}
    )
    assert path_of(response) == f"/users/show/{target}"
    assert "Two-factor sign-in is off for doctor2" in admin.get(path_of(response)).get_data(as_text=True)

    assert not totp_is_on(app, "doctor2")
    state = security_row(app, "doctor2")
    assert state.totp_secret is None and state.session_version == version_before + 1
    with app.app_context():
        assert totp.recovery_codes_left(target) == 0
        entry = db.session.scalars(
            sa.select(AuditEntry).where(AuditEntry.action == "totp_reset").order_by(AuditEntry.id.desc())
        ).first()
        assert entry.record_id == str(target) and entry.actor == "admin"
        assert json.loads(entry.details)["by"] == "admin"
    assert path_of(doctor2.get("/")) == "/login/", "the user's sessions end with the reset"
    assert path_of(Auth(app.test_client()).login("doctor2")) == "/"  # optional again


# -- the REST login ------------------------------------------------------------------------------


def test_rest_login_requires_the_code_of_enrolled_users(app):
    client = app.test_client()
    with app.app_context():
        db.session.execute(
            sa.update(UserSecurity)
            .where(UserSecurity.user_id == user_id(app, "admin"))
            .values(totp_last_step=None, failed_attempts=0)
        )
        db.session.commit()

    missing = rest_login(client, "admin")
    assert missing.status_code == 401
    assert '"totp"' in missing.get_json()["message"]
    wrong = rest_login(client, "admin", totp="000000" if code_at(TOTP_SECRETS["admin"]) != "000000" else "111111")
    assert wrong.status_code == 401
    assert "not valid" in wrong.get_json()["message"]
    assert rest_login(client, "admin", password="wrong-password", totp="123456").status_code == 401

    away_from_step_boundary()
    code = code_at(TOTP_SECRETS["admin"])
    ok = rest_login(client, "admin", totp=code, refresh=True)
    assert ok.status_code == 200, ok.get_json()
    tokens = ok.get_json()
    version = security_row(app, "admin").session_version
    with app.app_context():
        assert decode_token(tokens["access_token"])["sv"] == version
        assert decode_token(tokens["refresh_token"])["sv"] == version
    assert client.get(
        "/api/v1/branches/", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).status_code == 200
    assert security_row(app, "admin").failed_attempts == 0, "success resets the counter"

    replay = rest_login(client, "admin", totp=code)
    assert replay.status_code == 401
    assert "already been used" in replay.get_json()["message"]
    assert security_row(app, "admin").failed_attempts == 1, "a replay counts as a failure"


def test_rest_login_without_two_factor_for_optional_users(app):
    response = rest_login(app.test_client(), "pharmacist")
    assert response.status_code == 200
    with app.app_context():
        claims = decode_token(response.get_json()["access_token"])
    assert claims["sv"] == security_row(app, "pharmacist").session_version


def test_enrolling_long_after_signing_in_asks_for_the_password(app):
    """Someone at a screen left unlocked must not bind the account to their own phone."""
    client = login_as(app, "reception2")
    with client.session_transaction() as session:
        session["started_at"] = time.time() - 11 * 60
    page = client.get("/totp/enroll").get_data(as_text=True)
    assert "Current password" in page
    secret = SECRET_RE.search(page).group(1).replace(" ", "")
    response = client.post("/totp/enroll", data={
        "code": pyotp.TOTP(secret).now(), "current_password": "someone-elses-guess",
        "csrf_token": csrf_token_from(page),
    })
    assert "That is not your current password." in response.get_data(as_text=True)
    assert not totp_is_on(app, "reception2")
