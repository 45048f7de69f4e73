"""Shared fixtures: a migrated, seeded database per test module, the app, clients and logins.

The database is PostgreSQL when ``DATABASE_URL`` names one (the full suite in CI), otherwise a
SQLite file. It is migrated and seeded once per run into a template; each test module gets its
own copy, so modules never see each other's rows. Redis is the real server at ``REDIS_URL``
(default ``redis://127.0.0.1:6379/15``).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

_RUN_DIR = Path(tempfile.mkdtemp(prefix="clinicdesk-tests-"))
os.environ["CLINICDESK_ENV"] = "test"
os.environ["CLINICDESK_INSTANCE_DIR"] = str(_RUN_DIR / "instance")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

import pyotp  # noqa: E402
import pytest  # noqa: E402
import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from flask import Flask  # noqa: E402
from flask_appbuilder import BaseView  # noqa: E402
from flask_appbuilder.const import PERMISSION_PREFIX  # noqa: E402

from app import create_app  # noqa: E402
from config import TestConfig  # noqa: E402

#: Every demo user's password in tests.
PASSWORD = "correct-horse-battery-staple"
#: The demo users by role, as ``clinic seed-demo`` creates them.
ROLE_USERS = {
    "Admin": "admin",
    "Owner": "owner",
    "Doctor": "doctor",
    "Receptionist": "reception",
    "Pharmacist": "pharmacist",
    "Lab technician": "labtech",
    "Accountant": "accountant",
}
RUN_ID = uuid.uuid4().hex[:8]
#: Admin and Owner must use two-factor sign-in: the template database enrols the demo admin and
#: owner with these secrets (the demo seed itself enrols nobody; tests/test_two_factor.py shows
#: both are sent to enrolment on a freshly seeded database).
TOTP_SECRETS = {
    "admin": "ADMINSECRETFORTESTSONLY234567ABC",
    "owner": "OWNERSECRETFORTESTSONLY234567ABC",
}


def _is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


class DatabaseFactory:
    """Makes databases for tests: copies of one migrated and seeded template."""

    def __init__(self, base_url: str) -> None:
        self.base_url = sa.engine.make_url(base_url)
        self.postgres = _is_postgres(base_url)
        self.counter = 0
        self.made: list[str] = []
        self.template = self._name("tpl")

    def _name(self, suffix: str) -> str:
        if self.postgres:
            return f"clinicdesk_test_{RUN_ID}_{suffix}"
        return str(_RUN_DIR / f"{suffix}.db")

    def url(self, name: str) -> str:
        if self.postgres:
            return self.base_url.set(database=name).render_as_string(hide_password=False)
        return f"sqlite:///{name}"

    def _admin(self):
        return sa.create_engine(
            self.base_url.set(database="postgres"), isolation_level="AUTOCOMMIT"
        )

    def _create(self, name: str, template: str | None = None) -> str:
        if self.postgres:
            source = f' TEMPLATE "{template}"' if template else ""
            engine = self._admin()
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
                conn.execute(sa.text(f'CREATE DATABASE "{name}"{source}'))
            engine.dispose()
        elif template:
            shutil.copyfile(template, name)
        else:
            Path(name).unlink(missing_ok=True)
        self.made.append(name)
        return self.url(name)

    def create_empty(self, suffix: str) -> str:
        """A new, empty database (no tables); returns its URL."""
        return self._create(self._name(suffix))

    def copy_of_template(self) -> str:
        """A new database holding the migrated, seeded template; returns its URL."""
        self.counter += 1
        return self._create(self._name(f"m{self.counter}"), template=self.template)

    def drop(self, url: str) -> None:
        name = sa.engine.make_url(url).database
        if self.postgres:
            engine = self._admin()
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            engine.dispose()
        else:
            Path(name).unlink(missing_ok=True)

    def drop_all(self) -> None:
        for name in self.made:
            self.drop(self.url(name))


def config_for(database_url: str, **overrides) -> type[TestConfig]:
    """A TestConfig subclass pointing at ``database_url``, with any settings overridden.

    Each config counts rate limits under its own Redis prefix, generous by default: tests that
    exercise the limits set ``AUTH_RATE_LIMIT`` themselves.
    """
    settings = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "RATELIMIT_KEY_PREFIX": f"clinicdesk-test-{RUN_ID}-{uuid.uuid4().hex[:6]}",
        "AUTH_RATE_LIMIT": "1000 per 20 second",
        **overrides,
    }
    return type("ModuleTestConfig", (TestConfig,), settings)


def migrate_and_seed(url: str, enrol_two_factor: bool = True) -> None:
    """What a fresh installation runs: ``clinic init`` then ``clinic seed-demo``.

    Then, unless told not to, the admin and owner get two-factor sign-in with the known
    ``TOTP_SECRETS``, as they would after their first sign-in.
    """
    app = create_app(config_for(url))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["clinic", "init"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["clinic", "seed-demo", "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    if enrol_two_factor:
        for username, secret in TOTP_SECRETS.items():
            enrol_with_secret(app, username, secret)
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()


def enrol_with_secret(app: Flask, username: str, secret: str) -> None:
    """Turn two-factor sign-in on for ``username`` with a known secret (no code used up)."""
    from app.extensions import db
    from app.models.base import utcnow
    from app.security.sessions import security_state
    from app.security.totp import encrypt_secret

    with app.app_context():
        state = security_state(app.appbuilder.sm.find_user(username=username).id)
        state.totp_secret = encrypt_secret(secret)
        state.totp_confirmed_at = utcnow()
        state.totp_last_step = None
        db.session.commit()


def next_totp_code(database_url: str, username: str) -> str:
    """A code for ``username`` (one of ``TOTP_SECRETS``) that the app will accept now.

    The app accepts the steps before, at and after the current one, each once and in order. The
    helper uses the current step, then the next (both stay valid if the clock moves on a step
    before the app checks them); when both are used it forgets the last accepted step instead of
    waiting up to 30 seconds for the clock. The replay guard itself is tested in
    test_two_factor.py.
    """
    totp = pyotp.TOTP(TOTP_SECRETS[username])
    current = int(time.time() // totp.interval)
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            user_id = conn.execute(
                sa.text("SELECT id FROM ab_user WHERE username = :u"), {"u": username}
            ).scalar_one()
            last = conn.execute(
                sa.text("SELECT totp_last_step FROM user_security WHERE user_id = :id"),
                {"id": user_id},
            ).scalar()
            if last is not None and last >= current + 1:
                conn.execute(
                    sa.text("UPDATE user_security SET totp_last_step = NULL WHERE user_id = :id"),
                    {"id": user_id},
                )
                last = None
    finally:
        engine.dispose()
    step = current if last is None else max(current, last + 1)
    return totp.generate_otp(step)


@pytest.fixture(scope="session")
def databases():
    """The run's database factory, with the template migrated and seeded."""
    base = os.environ.get("DATABASE_URL") or f"sqlite:///{_RUN_DIR / 'base.db'}"
    factory = DatabaseFactory(base)
    template_url = factory.create_empty("tpl")
    migrate_and_seed(template_url)
    yield factory
    factory.drop_all()
    shutil.rmtree(_RUN_DIR, ignore_errors=True)


@pytest.fixture(scope="module")
def database_url(databases) -> str:
    """This module's own copy of the seeded database."""
    return databases.copy_of_template()


@pytest.fixture(scope="module")
def make_app(database_url):
    """Build an app on this module's database, with settings overridden as a test needs."""
    apps: list[Flask] = []

    def factory(**overrides) -> Flask:
        app = create_app(config_for(database_url, **overrides))
        apps.append(app)
        return app

    yield factory
    from app.extensions import db

    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="module")
def app(make_app) -> Flask:
    """The app as the suite normally sees it (CSRF on, real Redis)."""
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield app


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_token_from(html: str) -> str:
    """The CSRF token embedded in a rendered form."""
    match = CSRF_RE.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1) or match.group(2)


class Auth:
    """Sign in and out through the real login form, as a person would."""

    def __init__(self, client) -> None:
        self.client = client

    def login(self, username: str, password: str = PASSWORD):
        """The password step, then the code step for users of ``TOTP_SECRETS`` sent to it."""
        response = self.password_step(username, password)
        location = urlsplit(response.headers.get("Location", "")).path
        if response.status_code == 302 and location == "/totp/" and username in TOTP_SECRETS:
            database_url = self.client.application.config["SQLALCHEMY_DATABASE_URI"]
            response = self.code_step(next_totp_code(database_url, username))
        return response

    def password_step(self, username: str, password: str = PASSWORD):
        page = self.client.get("/login/")
        return self.client.post(
            "/login/",
            data={
                "username": username,
                "password": password,
                "csrf_token": csrf_token_from(page.get_data(as_text=True)),
            },
        )

    def code_step(self, code: str):
        """Submit ``code`` on the two-factor step (after a password step)."""
        page = self.client.get("/totp/")
        return self.client.post(
            "/totp/",
            data={"code": code, "csrf_token": csrf_token_from(page.get_data(as_text=True))},
        )

    def logout(self):
        page = self.client.get("/", follow_redirects=True)
        return self.client.post(
            "/logout/", data={"csrf_token": csrf_token_from(page.get_data(as_text=True))}
        )


@pytest.fixture
def auth(client) -> Auth:
    return Auth(client)


def login_as(app: Flask, username: str):
    """A test client already signed in as ``username`` (skips the form; for bulk checks).

    The session holds what ``start_session`` writes: the user's session version and the
    sign-in and last-seen times, which every request checks.
    """
    from app.security.sessions import SEEN_KEY, STARTED_KEY, VERSION_KEY, session_version

    with app.app_context():
        user = app.appbuilder.sm.find_user(username=username)
        user_id = user.id
        version = session_version(user_id)
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
        session[VERSION_KEY] = version
        session[STARTED_KEY] = session[SEEN_KEY] = int(time.time())
    return client


def bearer_headers(app: Flask, username: str) -> dict[str, str]:
    """Authorization headers with an API access token for ``username``.

    The token carries the user's session version (claim ``sv``), as the REST login issues it.
    """
    from flask_jwt_extended import create_access_token

    from app.security.sessions import VERSION_KEY, session_version

    with app.app_context():
        user = app.appbuilder.sm.find_user(username=username)
        token = create_access_token(
            identity=str(user.id),
            fresh=True,
            additional_claims={VERSION_KEY: session_version(user.id)},
        )
    return {"Authorization": f"Bearer {token}"}


def required_permission(view: BaseView, method_name: str) -> tuple[str, str] | None:
    """The (permission, view name) FAB's @has_access / @protect checks for this method."""
    func = getattr(view, method_name, None)
    base = getattr(func, "_permission_name", None)
    if base is None:
        return None
    name = base if base.startswith(PERMISSION_PREFIX) else PERMISSION_PREFIX + base
    mapped = (view.method_permission_name or {}).get(method_name)
    if mapped:
        name = PERMISSION_PREFIX + mapped
    return name, view.class_permission_name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, on a free port, that the test may stop."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (.ci/run installs it)"
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url, process
    process.kill()
    process.wait(timeout=10)


def stop(process) -> None:
    process.terminate()
    process.wait(timeout=10)
