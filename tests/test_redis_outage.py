"""Redis goes away: /health says so, pages and sign-in keep working, nothing turns into a 500."""

from __future__ import annotations

from tests.conftest import Auth, csrf_token_from, stop


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
