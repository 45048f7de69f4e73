"""Redis goes away: /health says so, pages and sign-in keep working, nothing turns into a 500."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis

from tests.conftest import Auth, csrf_token_from


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


def test_redis_outage_keeps_pages_working(make_app, own_redis):
    url, process = own_redis
    app = make_app(REDIS_URL=url, RATELIMIT_STORAGE_URI=url, JOBS_INLINE=False)
    client = app.test_client()
    assert client.get("/health").get_json()["redis"] == "ok"
    Auth(client).login("admin")

    stop(process)

    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"database": "ok", "redis": "unavailable", "migrations": "head"}
    for path in ["/", "/staff/list/", "/settings/"]:
        assert client.get(path).status_code == 200, path
    page = client.get("/jobs/")
    assert page.status_code == 200
    assert "Redis is unreachable" in page.get_data(as_text=True)
    response = client.post(
        "/jobs/smoke",
        data={"csrf_token": csrf_token_from(page.get_data(as_text=True))},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "the test job could not be queued" in response.get_data(as_text=True)


def test_sign_in_works_while_redis_is_down(make_app, own_redis):
    url, process = own_redis
    app = make_app(REDIS_URL=url, RATELIMIT_STORAGE_URI=url, JOBS_INLINE=False)
    stop(process)
    client = app.test_client()
    response = Auth(client).login("reception")
    assert response.status_code == 302
    assert client.get("/").status_code == 200
