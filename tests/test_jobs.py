"""Jobs plumbing on the real Redis: queue, worker with app context, delays, retries, inline mode."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from rq import Retry
from rq.job import Job

from app.extensions import get_queue, get_redis
from app.jobs import enqueue
from app.jobs.system import smoke
from app.jobs.worker import make_worker
from tests.conftest import Auth, csrf_token_from

def explode(reason: str) -> None:
    """A job that always fails, to see failures recorded, not swallowed."""
    raise RuntimeError(reason)


def flaky(key: str) -> str:
    """Fails on its first run, succeeds on the next (the attempt count lives in Redis)."""
    if get_redis().incr(key) == 1:
        raise RuntimeError("first attempt fails")
    return "recovered"


@pytest.fixture
def clean_queues(app):
    with app.app_context():
        for name in app.config["RQ_QUEUES"]:
            get_queue(name).empty()
    yield


def run_worker(app, *queues: str) -> None:
    make_worker(app, list(queues)).work(burst=True, with_scheduler=True)


def test_worker_runs_a_queued_job_with_the_app_context(app, clean_queues):
    with app.app_context():
        job = enqueue(smoke, "hello-worker", queue="maintenance")
        assert job.get_status() == "queued"
    run_worker(app, "maintenance")
    with app.app_context():
        job = Job.fetch(job.id, connection=get_redis())
        assert job.get_status() == "finished"
        assert job.return_value()["token"] == "hello-worker"
        assert job.return_value()["branches"] == 2  # it read the database
        assert job.meta["progress"] == 100


def test_a_failing_job_is_recorded_as_failed(app, clean_queues):
    with app.app_context():
        job = enqueue(explode, "boom", queue="default")
    run_worker(app, "default")
    with app.app_context():
        job = Job.fetch(job.id, connection=get_redis())
        assert job.get_status() == "failed"
        assert "boom" in job.latest_result().exc_string


def test_a_delayed_job_runs_once_due(app, clean_queues):
    with app.app_context():
        job = get_queue("default").enqueue_in(timedelta(seconds=1), smoke, "later")
        assert job.get_status() == "scheduled"
    time.sleep(1.5)
    run_worker(app, "default")
    with app.app_context():
        assert Job.fetch(job.id, connection=get_redis()).get_status() == "finished"


def test_a_retried_job_succeeds_on_its_second_attempt(app, clean_queues):
    key = f"clinicdesk-test-flaky-{time.time_ns()}"
    with app.app_context():
        job = get_queue("default").enqueue(flaky, key, retry=Retry(max=2, interval=1))
    run_worker(app, "default")  # first attempt fails and is scheduled for a retry
    time.sleep(1.5)
    run_worker(app, "default")
    with app.app_context():
        job = Job.fetch(job.id, connection=get_redis())
        assert job.get_status() == "finished"
        assert job.return_value() == "recovered"


def test_admin_queues_the_smoke_job_from_the_jobs_page(app, clean_queues):
    client = app.test_client()
    Auth(client).login("admin")
    page = client.get("/jobs/")
    assert "Jobs are queued in Redis" in page.get_data(as_text=True)
    response = client.post(
        "/jobs/smoke", data={"csrf_token": csrf_token_from(page.get_data(as_text=True))},
        follow_redirects=True,
    )
    assert "is queued as" in response.get_data(as_text=True)
    with app.app_context():
        assert get_queue("maintenance").count == 1


def test_inline_mode_runs_jobs_at_once_and_says_so(make_app):
    app = make_app(JOBS_INLINE=True)
    client = app.test_client()
    Auth(client).login("admin")
    page = client.get("/jobs/")
    assert "Jobs run inline" in page.get_data(as_text=True)
    response = client.post(
        "/jobs/smoke", data={"csrf_token": csrf_token_from(page.get_data(as_text=True))},
        follow_redirects=True,
    )
    assert "The test job ran and finished." in response.get_data(as_text=True)


def test_jobs_page_is_admin_only(app):
    client = app.test_client()
    Auth(client).login("owner")
    assert client.get("/jobs/").status_code == 403


def test_unknown_queue_is_refused(app):
    with app.app_context(), pytest.raises(ValueError):
        get_queue("nope")

