"""Per-address limits on every authentication door, counted in the real Redis.

Each door takes ``AUTH_RATE_LIMIT`` attempts (the production default here) from one address and
refuses the next with 429: a friendly page for forms, JSON for the API, never a 500. A spoofed
``X-Forwarded-For`` gets an attacker nothing unless the app is configured to sit behind a proxy.
"""

from __future__ import annotations

import os

import pytest
import redis
from limits import parse

from config import Config
from tests.conftest import csrf_token_from, login_as

LIMIT = Config.AUTH_RATE_LIMIT


def limit_amount(app) -> int:
    return parse(app.config["AUTH_RATE_LIMIT"]).amount


def limiter_keys(app) -> list[str]:
    """The limiter's counters in Redis for this app (its own RATELIMIT_KEY_PREFIX)."""
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    prefix = app.config["RATELIMIT_KEY_PREFIX"]
    return sorted(key.decode() for key in connection.scan_iter(f"*{prefix}*"))


@pytest.fixture
def limited_app(make_app):
    """An app with the default sign-in limit and its own counters."""
    return make_app(AUTH_RATE_LIMIT=LIMIT)


def run_until_refused(app, attempt) -> list:
    """Make ``limit + 1`` attempts; return every response."""
    return [attempt(number) for number in range(limit_amount(app) + 1)]


def assert_refused_only_at_the_end(app, responses, door: str, capsys) -> None:
    allowed = limit_amount(app)
    codes = [response.status_code for response in responses]
    assert 429 not in codes[:allowed], f"{door}: refused too early: {codes}"
    assert all(code < 500 for code in codes), f"{door}: server error: {codes}"
    last = responses[-1]
    assert last.status_code == 429, f"{door}: attempt {allowed + 1} answered {last.status_code}"
    with capsys.disabled():
        print(f"\n[rate limit] {door}: {allowed} allowed, {allowed + 1}th refused (429)")


def assert_friendly_page(response) -> None:
    body = response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    assert "Too many attempts" in body
    assert "Reference" in body
    assert "Traceback" not in body


def test_login_form_is_limited(limited_app, capsys):
    client = limited_app.test_client()
    token = csrf_token_from(client.get("/login/").get_data(as_text=True))

    def attempt(number):
        # A different unknown username each time: the per-account lockout stays out of it.
        return client.post(
            "/login/",
            data={"username": f"nobody-{number}", "password": "wrong", "csrf_token": token},
        )

    responses = run_until_refused(limited_app, attempt)
    assert_refused_only_at_the_end(limited_app, responses, "login form", capsys)
    assert_friendly_page(responses[-1])
    assert any("ClinicAuthView.login" in key for key in limiter_keys(limited_app))


def test_rest_login_and_refresh_are_limited(limited_app, capsys):
    client = limited_app.test_client()

    def attempt(number):
        return client.post(
            "/api/v1/security/login",
            json={"username": f"nobody-{number}", "password": "wrong", "provider": "db"},
        )

    responses = run_until_refused(limited_app, attempt)
    assert_refused_only_at_the_end(limited_app, responses, "REST login", capsys)
    refused = responses[-1]
    assert refused.is_json
    assert "Too many attempts" in refused.get_json()["message"]
    assert refused.get_json()["reference"]

    def refresh(number):
        return client.post("/api/v1/security/refresh", headers={"Authorization": "Bearer x"})

    responses = run_until_refused(limited_app, refresh)
    assert_refused_only_at_the_end(limited_app, responses, "REST refresh", capsys)
    keys = limiter_keys(limited_app)
    assert any("SecurityApi.login" in key for key in keys), keys
    assert any("SecurityApi.refresh" in key for key in keys), keys


@pytest.mark.parametrize(
    ("door", "path"),
    [
        ("own password form", "/resetmypassword/form"),
        ("admin password form", "/resetpassword/form?pk={pk}"),
    ],
)
def test_password_forms_are_limited(limited_app, door, path, capsys):
    with limited_app.app_context():
        pk = limited_app.appbuilder.sm.find_user(username="doctor2").id
    client = login_as(limited_app, "admin")
    path = path.format(pk=pk)
    token = csrf_token_from(client.get(path).get_data(as_text=True))

    def attempt(number):
        return client.post(
            path, data={"password": "short", "conf_password": "short", "csrf_token": token}
        )

    responses = run_until_refused(limited_app, attempt)
    assert_refused_only_at_the_end(limited_app, responses, door, capsys)
    assert_friendly_page(responses[-1])
    assert limiter_keys(limited_app)


def test_two_factor_step_is_limited(limited_app, capsys):
    if "TotpView.verify" not in limited_app.view_functions:
        pytest.skip("the two-factor step (/totp/, TotpView) does not exist yet")
    client = limited_app.test_client()
    token = csrf_token_from(client.get("/login/").get_data(as_text=True))

    def attempt(number):
        return client.post("/totp/", data={"code": f"{number:06d}", "csrf_token": token})

    responses = run_until_refused(limited_app, attempt)
    assert_refused_only_at_the_end(limited_app, responses, "two-factor step", capsys)
    assert_friendly_page(responses[-1])
    assert any("TotpView" in key for key in limiter_keys(limited_app))


def test_a_spoofed_forwarded_for_changes_nothing_without_a_proxy(make_app, capsys):
    app = make_app(AUTH_RATE_LIMIT="3 per minute", PROXY_FIX_HOPS=0)
    client = app.test_client()

    def attempt(number):
        return client.post(
            "/api/v1/security/login",
            json={"username": "nobody", "password": "wrong", "provider": "db"},
            headers={"X-Forwarded-For": f"198.51.100.{number + 1}"},
        )

    codes = [attempt(number).status_code for number in range(4)]
    assert codes == [401, 401, 401, 429]
    keys = limiter_keys(app)
    assert keys and all("/127.0.0.1/" in key for key in keys), keys
    assert not any("198.51.100." in key for key in keys)
    with capsys.disabled():
        print(f"\n[rate limit] hops=0: 4 spoofed X-Forwarded-For values, one key, codes {codes}")


def test_behind_one_proxy_the_proxys_client_address_is_the_key(make_app, capsys):
    app = make_app(AUTH_RATE_LIMIT="3 per minute", PROXY_FIX_HOPS=1)
    client = app.test_client()

    def attempt(address):
        return client.post(
            "/api/v1/security/login",
            json={"username": "nobody", "password": "wrong", "provider": "db"},
            headers={"X-Forwarded-For": address},
        ).status_code

    codes = [attempt("203.0.113.7") for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert attempt("203.0.113.8") == 401, "another client behind the proxy has its own count"
    keys = limiter_keys(app)
    assert any("/203.0.113.7/" in key for key in keys), keys
    assert not any("/127.0.0.1/" in key for key in keys)
    with capsys.disabled():
        print(f"[rate limit] hops=1: the proxy's X-Forwarded-For is the key, codes {codes}")
