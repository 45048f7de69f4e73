"""Sessions that really end: idle and absolute limits, logout and password changes, API tokens.

Limits are enforced on the server: a test moves a session's timestamps back, as time passing
would, and the next request must be refused. A copy of a cookie or an API token taken before a
logout or a password change must be refused afterwards, while the browser that changed its own
password stays signed in; and a Redis outage must sign nobody out.
"""

from __future__ import annotations

import time

import jwt
import sqlalchemy as sa
from flask_login.utils import encode_cookie

from app.extensions import db
from app.models.security import UserSecurity
from app.security.sessions import SEEN_KEY, STARTED_KEY, VERSION_KEY
from tests.conftest import PASSWORD, Auth, csrf_token_from, login_as, stop

NEW_PASSWORD = "violet-harbour-tram-cinnamon"


def signed_in(app, username: str):
    client = app.test_client()
    response = Auth(client).login(username)
    assert response.status_code == 302, f"{username} could not sign in"
    assert is_signed_in(client)
    return client


def is_signed_in(client) -> bool:
    response = client.get("/")
    return response.status_code == 200 and "Sign out" in response.get_data(as_text=True)


def sent_to_login(response) -> bool:
    return response.status_code == 302 and "/login/" in response.headers["Location"]


def move_back(client, key: str, seconds: int) -> None:
    """Make the session look ``seconds`` older on ``key`` (as if that much time had passed)."""
    with client.session_transaction() as session:
        session[key] = session[key] - seconds


def session_cookie(client) -> str:
    return client.get_cookie("session").value


def replay(app, cookie: str):
    """Another browser presenting a copied session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief


def api_tokens(client, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db", "refresh": True},
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def api_get(client, token: str):
    return client.get("/api/v1/_openapi", headers={"Authorization": f"Bearer {token}"})


def change_own_password(client, new_password: str):
    page = client.get("/resetmypassword/form").get_data(as_text=True)
    return client.post(
        "/resetmypassword/form",
        data={
            "current_password": PASSWORD,
            "password": new_password,
            "conf_password": new_password,
            "csrf_token": csrf_token_from(page),
        },
    )


# -- idle timeout and absolute lifetime ----------------------------------------------------------


def test_an_idle_session_ends_on_the_server(app, capsys):
    client = signed_in(app, "reception")
    idle = app.config["SESSION_IDLE_MINUTES"]
    move_back(client, SEEN_KEY, (idle - 1) * 60)
    assert is_signed_in(client), "a session idle for less than the limit must go on"

    move_back(client, SEEN_KEY, (idle + 1) * 60)  # the request above counted as activity
    response = client.get("/staff/list/")
    assert sent_to_login(response)
    login_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your session has ended" in login_page
    assert sent_to_login(client.get("/")), "the ended session must stay ended"
    with capsys.disabled():
        print(f"\n[sessions] idle limit {idle} min: refused after {idle + 1} min idle")


def test_a_session_ends_after_its_absolute_lifetime_even_when_busy(app, capsys):
    client = signed_in(app, "reception")
    hours = app.config["SESSION_MAX_HOURS"]
    move_back(client, STARTED_KEY, hours * 3600 - 120)
    assert is_signed_in(client)

    move_back(client, STARTED_KEY, 180)
    assert sent_to_login(client.get("/"))
    with capsys.disabled():
        print(f"[sessions] absolute limit {hours} h: refused after {hours} h 1 min while active")


def test_limits_follow_the_configuration(make_app):
    app = make_app(SESSION_IDLE_MINUTES=2, SESSION_MAX_HOURS=1)
    client = signed_in(app, "reception")
    move_back(client, SEEN_KEY, 3 * 60)
    assert sent_to_login(client.get("/"))

    client = signed_in(app, "reception")
    move_back(client, STARTED_KEY, 3600 + 60)
    assert sent_to_login(client.get("/"))


def test_last_seen_is_rewritten_at_most_once_a_minute(app):
    client = signed_in(app, "reception")
    client.get("/")
    assert "Set-Cookie" not in client.get("/").headers, "the cookie must not change on each request"

    move_back(client, SEEN_KEY, 61)
    response = client.get("/")
    assert response.status_code == 200
    assert "Set-Cookie" in response.headers
    with client.session_transaction() as session:
        assert abs(session[SEEN_KEY] - time.time()) < 5


def test_an_api_request_on_an_ended_session_gets_401(app):
    client = signed_in(app, "reception")
    assert client.get("/api/v1/_openapi").status_code == 200  # the browser's own session
    move_back(client, SEEN_KEY, (app.config["SESSION_IDLE_MINUTES"] + 1) * 60)
    response = client.get("/api/v1/_openapi")
    assert response.status_code == 401


def test_a_session_without_a_version_is_refused(app):
    client = login_as(app, "reception")
    with client.session_transaction() as session:
        del session[VERSION_KEY]
    assert sent_to_login(client.get("/"))


def test_a_remember_me_cookie_signs_nobody_in(app):
    with app.app_context():
        user_id = app.appbuilder.sm.find_user(username="reception").id
    with app.test_request_context():
        remember = encode_cookie(str(user_id))
    client = app.test_client()
    client.set_cookie("remember_token", remember)
    response = client.get("/")
    assert sent_to_login(response)
    assert "remember_token=;" in response.headers.get("Set-Cookie", ""), "the cookie is deleted"
    assert sent_to_login(client.get("/"))


# -- logout and password change -------------------------------------------------------------------


def test_a_cookie_captured_before_logout_is_refused(app, capsys):
    client = signed_in(app, "reception")
    other_device = signed_in(app, "reception")
    captured = session_cookie(client)
    assert is_signed_in(replay(app, captured)), "the copy works while the session lives"

    assert Auth(client).logout().status_code == 302
    assert sent_to_login(client.get("/"))
    response = replay(app, captured).get("/")
    assert sent_to_login(response)
    # Documented: a logout also ends the user's sessions on other devices.
    assert sent_to_login(other_device.get("/"))
    with capsys.disabled():
        print(f"[sessions] cookie replayed after logout: {response.status_code} to the login page")


def test_a_password_change_ends_other_sessions_but_keeps_this_browser(app, capsys):
    client = signed_in(app, "pharmacist")
    other_device = signed_in(app, "pharmacist")
    captured = session_cookie(client)
    with app.app_context():
        user_id = app.appbuilder.sm.find_user(username="pharmacist").id
        before = db.session.get(UserSecurity, user_id).session_version

    response = change_own_password(client, NEW_PASSWORD)
    assert response.status_code == 302
    page = client.get(response.headers["Location"], follow_redirects=True).get_data(as_text=True)
    assert "Your password is changed" in page
    assert is_signed_in(client), "the browser that changed the password stays signed in"
    assert sent_to_login(other_device.get("/"))
    assert sent_to_login(replay(app, captured).get("/"))
    with app.app_context():
        state = db.session.get(UserSecurity, user_id)
        assert state.session_version == before + 1
        assert state.password_changed_at is not None
    assert Auth(app.test_client()).login("pharmacist", PASSWORD).status_code == 200  # refused
    assert Auth(app.test_client()).login("pharmacist", NEW_PASSWORD).status_code == 302
    with capsys.disabled():
        print("[sessions] password change: other device and copied cookie refused, this one kept")


def test_an_admin_password_reset_ends_the_users_sessions(app):
    victim = signed_in(app, "labtech")
    with app.app_context():
        user_id = app.appbuilder.sm.find_user(username="labtech").id
    admin = login_as(app, "admin")
    path = f"/resetpassword/form?pk={user_id}"
    page = admin.get(path).get_data(as_text=True)
    response = admin.post(
        path,
        data={
            "password": NEW_PASSWORD,
            "conf_password": NEW_PASSWORD,
            "csrf_token": csrf_token_from(page),
        },
    )
    assert response.status_code == 302
    assert sent_to_login(victim.get("/"))
    assert is_signed_in(admin)


# -- API tokens -----------------------------------------------------------------------------------


def test_api_tokens_issued_before_logout_are_refused(app, capsys):
    api = app.test_client()
    tokens = api_tokens(api, "accountant")
    assert api_get(api, tokens["access_token"]).status_code == 200

    browser = signed_in(app, "accountant")
    Auth(browser).logout()

    access = api_get(api, tokens["access_token"])
    refresh = api.post(
        "/api/v1/security/refresh",
        headers={"Authorization": f"Bearer {tokens['refresh_token']}"},
    )
    assert access.status_code == 401
    assert refresh.status_code == 401
    fresh = api_tokens(api, "accountant")
    assert api_get(api, fresh["access_token"]).status_code == 200
    with capsys.disabled():
        print(
            f"[sessions] API tokens after logout: access {access.status_code}, "
            f"refresh {refresh.status_code}"
        )


def test_api_tokens_issued_before_a_password_change_are_refused(app):
    api = app.test_client()
    tokens = api_tokens(api, "doctor")
    assert api_get(api, tokens["access_token"]).status_code == 200
    browser = signed_in(app, "doctor")
    assert change_own_password(browser, NEW_PASSWORD).status_code == 302
    assert api_get(api, tokens["access_token"]).status_code == 401
    refresh = api.post(
        "/api/v1/security/refresh",
        headers={"Authorization": f"Bearer {tokens['refresh_token']}"},
    )
    assert refresh.status_code == 401


def test_tokens_without_or_with_a_stale_version_are_refused(app):
    from flask_jwt_extended import create_access_token

    with app.app_context():
        user_id = app.appbuilder.sm.find_user(username="reception").id
        good = create_access_token(identity=str(user_id))
        stale = create_access_token(identity=str(user_id), additional_claims={VERSION_KEY: 0})
        text = create_access_token(identity=str(user_id), additional_claims={VERSION_KEY: "1"})
    key = app.config.get("JWT_SECRET_KEY") or app.config["SECRET_KEY"]
    claims = jwt.decode(good, key, algorithms=["HS256"])
    assert VERSION_KEY in claims, "tokens are issued with the session version"
    del claims[VERSION_KEY]
    missing = jwt.encode(claims, key, algorithm="HS256")

    client = app.test_client()
    assert api_get(client, good).status_code == 200
    for token in (missing, stale, text):
        assert api_get(client, token).status_code == 401


# -- Redis ----------------------------------------------------------------------------------------


def test_a_redis_outage_signs_nobody_out(make_app, own_redis):
    url, process = own_redis
    app = make_app(REDIS_URL=url, RATELIMIT_STORAGE_URI=url, JOBS_INLINE=False)
    browser = signed_in(app, "reception")
    other = signed_in(app, "accountant")
    tokens = api_tokens(app.test_client(), "accountant")

    stop(process)

    assert is_signed_in(browser)
    assert is_signed_in(other)
    assert api_get(app.test_client(), tokens["access_token"]).status_code == 200
    captured = session_cookie(browser)
    assert Auth(browser).logout().status_code == 302
    assert sent_to_login(replay(app, captured).get("/")), "logout works without Redis too"
    with app.app_context():
        versions = db.session.scalars(sa.select(UserSecurity.session_version)).all()
    assert versions, "session versions live in the database"
