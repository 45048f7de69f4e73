"""Browser journeys: the real app served by gunicorn, driven by Debian's Chromium through Playwright.

Each test module gets its own copy of the seeded database and its own server on a free port of
127.0.0.1. Pages may only load from that server: a request to any other host (a CDN, a web font,
an analytics script) fails the test, and so does an uncaught JavaScript error or anything the
Content Security Policy blocks. Screenshots go to ``tests/browser/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import PASSWORD, TOTP_SECRETS, next_totp_code

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SERVER_START_TIMEOUT = 30.0
DESKTOP = {"width": 1280, "height": 800}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    """A running ClinicDesk instance: its base URL and its log file."""

    url: str
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _wait_until_healthy(server: LiveServer) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"the app server exited with code {server.process.returncode} before answering "
                f"/health:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.1)
    pytest.fail(
        f"the app server did not answer /health within {SERVER_START_TIMEOUT:.0f} s "
        f"({last_error}):\n{server.log_tail()}"
    )


@pytest.fixture(scope="module")
def live_server(database_url, tmp_path_factory):
    """The real app under gunicorn on a free port, on this module's database; stopped afterwards."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("live-server") / "gunicorn.log"
    env = {
        **os.environ,
        "CLINICDESK_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": os.environ["REDIS_URL"],
        "CLINICDESK_INSTANCE_DIR": os.environ["CLINICDESK_INSTANCE_DIR"],
        # Journeys sign in many times within seconds; the limit itself is tested elsewhere.
        "CLINICDESK_AUTH_RATE_LIMIT": "1000 per 20 second",
    }
    command = [
        sys.executable, "-m", "gunicorn", "run:app",
        "--bind", f"127.0.0.1:{port}",
        "--workers", "1", "--threads", "8", "--worker-class", "gthread",
        "--timeout", "60", "--log-level", "warning",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = LiveServer(url=f"http://127.0.0.1:{port}", log_path=log_path, process=process)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless; the tests fail (never skip) when it is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: browser tests need Debian's Chromium "
            "(apt-get install -y chromium). Playwright's own browser download is not used.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class PageProblems:
    """What went wrong while a page was open: off-site requests, uncaught script errors and
    anything the Content Security Policy blocked (Chromium reports it on the console)."""

    def __init__(self, server_url: str) -> None:
        self.allowed = urlsplit(server_url).netloc
        self.offsite: list[str] = []
        self.script_errors: list[str] = []
        self.csp_violations: list[str] = []

    def check_console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)

    def check_request(self, route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in {"http", "https", "ws", "wss"} and parts.netloc != self.allowed:
            self.offsite.append(url)
            route.abort()
        else:
            route.continue_()

    def assert_none(self) -> None:
        assert not self.offsite, f"the page tried to load from other hosts: {self.offsite}"
        assert not self.script_errors, f"uncaught JavaScript errors: {self.script_errors}"
        assert not self.csp_violations, f"blocked by the CSP: {self.csp_violations}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser, live_server, request):
    """A fresh browser tab (own cookies) on the live server, desktop-sized.

    When the test fails, the tab is saved as ``artifacts/failed-<test>.png`` and the end of the
    server's log is printed.
    """
    context = browser.new_context(
        base_url=live_server.url,
        viewport=DESKTOP,
        locale="en-GB",
        reduced_motion="reduce",  # no transitions: screenshots show settled pages
    )
    context.set_default_timeout(5_000)
    problems = PageProblems(live_server.url)
    context.route("**/*", problems.check_request)
    tab = context.new_page()
    tab.on("pageerror", lambda error: problems.script_errors.append(str(error)))
    tab.on("console", problems.check_console)
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        save_screenshot(tab, f"failed-{request.node.name}")
        print(f"--- end of the app server's log ({live_server.log_path}) ---")
        print(live_server.log_tail())
    context.close()
    problems.assert_none()


def save_screenshot(page, name: str) -> Path:
    """Save a full-page screenshot as ``artifacts/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    # From the top: a page scrolled by the journey would draw the sticky top bar mid-picture.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def screenshot(page):
    """``screenshot(name)``: the current tab, full page, saved as ``artifacts/<name>.png``."""
    return lambda name: save_screenshot(page, name)


@pytest.fixture
def sign_in(page, database_url):
    """``sign_in(username, password)``: through the login form, as a person would.

    The admin and owner then type the current code from their app (``TOTP_SECRETS``).
    """

    def sign_in_as(username: str, password: str = PASSWORD) -> None:
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        if username in TOTP_SECRETS and password == PASSWORD:
            page.wait_for_url(re.compile(r"/totp/"))
            if urlsplit(page.url).path == "/totp/":
                page.get_by_label("Code", exact=True).fill(next_totp_code(database_url, username))
                page.get_by_role("button", name="Verify and sign in").click()

    return sign_in_as
