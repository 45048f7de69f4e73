"""What the Docker image runs, exercised outside Docker: gunicorn with gunicorn.conf.py, boot.sh's
web, worker and scheduler commands, the cron schedule and docker-compose.yml.

Each server runs in its own process group on a free port and is always killed afterwards.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
import yaml
from rq import Queue
from rq.cron import CronScheduler
from rq.job import Job, JobStatus

pytestmark = pytest.mark.sqlite_subset

ROOT = Path(__file__).resolve().parents[1]
BOOT = ROOT / "boot.sh"
BIN = Path(sys.executable).parent
REDIS_URL = os.environ["REDIS_URL"]
REQUIRED = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL")
SECRET_KEY = "deploy-test-secret-key-not-for-production"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(**settings: str) -> dict[str, str]:
    """The environment the image gives its processes: production, with only ``settings`` added."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in REQUIRED + ("PORT", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS")
    }
    env.update(
        CLINICDESK_ENV="production",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        WEB_CONCURRENCY="2",
    )
    env.update(settings)
    return env


def full_env(database_url: str, **settings: str) -> dict[str, str]:
    return production_env(
        SECRET_KEY=SECRET_KEY, DATABASE_URL=database_url, REDIS_URL=REDIS_URL, **settings
    )


def gunicorn_command(port: int) -> list[str]:
    """What ``boot.sh web`` execs, bound to the loopback for the test."""
    return [
        str(BIN / "gunicorn"), "--config", "gunicorn.conf.py",
        "--bind", f"127.0.0.1:{port}", "run:app",
    ]


def kill_group(proc: subprocess.Popen) -> None:
    """Stop a process started with ``start_new_session`` and everything it forked."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=5)


def run_to_exit(args: list[str], env: dict[str, str], timeout: float = 30) -> tuple[int, str]:
    """Run a command that should finish by itself; returns its exit code and output."""
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)} still running after {timeout} s")
    finally:
        kill_group(proc)
    return proc.returncode, output.decode(errors="replace")


class Server:
    """A long-running process (serving HTTP on ``port``, if any); its output goes to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, port: int = 0) -> None:
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def wait_until_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"exited with {self.proc.returncode}:\n{self.output()}")
            try:
                self.get("/health")
                return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"not serving after {timeout} s:\n{self.output()}")

    def wait_for_log(self, text: str, timeout: float = 5) -> str:
        """The first output line containing ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if text in line:
                    return line
            time.sleep(0.1)
        pytest.fail(f"no line with {text!r} in:\n{self.output()}")

    def stop(self) -> None:
        kill_group(self.proc)
        self._log.close()


def _branch_count(database_url: str) -> int:
    from app.models.org import Branch

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.scalar(sa.select(sa.func.count()).select_from(Branch.__table__))
    finally:
        engine.dispose()


def _declared_periodic_jobs() -> list[tuple]:
    from app.jobs.schedule import PERIODIC_JOBS

    return [
        (f"{func.__module__}.{func.__name__}", queue_name, expression, kwargs)
        for func, queue_name, expression, kwargs in PERIODIC_JOBS
    ]


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


@pytest.fixture(scope="module")
def gunicorn_server(database_url, tmp_path_factory):
    """Production gunicorn with gunicorn.conf.py on this module's migrated database."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("gunicorn") / "output.log"
    server = Server(gunicorn_command(port), full_env(database_url), log_path, port)
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.stop()


@pytest.fixture
def queue():
    """The real Redis ``maintenance`` queue, emptied before and after."""
    connection = redis.Redis.from_url(REDIS_URL)
    maintenance = Queue("maintenance", connection=connection)
    maintenance.empty()
    yield maintenance
    maintenance.empty()
    connection.close()


@pytest.mark.parametrize("missing", REQUIRED)
@pytest.mark.parametrize("entry", ["gunicorn", "boot.sh web"])
def test_production_refuses_to_start_without_required_setting(entry, missing, database_url):
    env = full_env(database_url)
    del env[missing]
    port = free_port()
    args = gunicorn_command(port) if entry == "gunicorn" else [str(BOOT), "web"]
    if entry == "boot.sh web":
        env["PORT"] = str(port)

    returncode, output = run_to_exit(args, env)

    assert returncode != 0, output
    assert f"{missing} is not set" in output
    assert "Listening at" not in output


def test_boot_web_waits_for_the_database_then_gives_up_clearly():
    env = full_env("postgresql://clinicdesk@127.0.0.1:1/clinicdesk", CLINICDESK_DB_WAIT_ATTEMPTS="2")

    returncode, output = run_to_exit([str(BOOT), "web"], env)

    assert returncode != 0
    assert "database not reachable yet (1/2)" in output
    assert "database still unreachable after 2 attempts" in output
    assert "Listening at" not in output

def test_gunicorn_serves_health_and_login(gunicorn_server):
    status, body = gunicorn_server.get("/health")
    assert status == 200, body
    assert json.loads(body) == {"database": "ok", "redis": "ok", "migrations": "head"}

    status, body = gunicorn_server.get("/login/")
    assert status == 200
    assert b'name="password"' in body


def test_access_log_keeps_the_path_but_drops_the_query_string(gunicorn_server):
    status, _ = gunicorn_server.get("/staff/list/?_flt_0_first_name=Secretname")

    line = gunicorn_server.wait_for_log('"GET /staff/list/"')
    assert f'" {status} ' in line
    assert "Secretname" not in gunicorn_server.output()


def test_boot_web_migrates_an_empty_database_then_serves(databases, tmp_path):
    empty_url = databases.create_empty(f"boot_{uuid.uuid4().hex[:6]}")
    port = free_port()
    server = Server(
        [str(BOOT), "web"], full_env(empty_url, PORT=str(port), WEB_CONCURRENCY="1"),
        tmp_path / "boot.log", port,
    )
    try:
        server.wait_until_serving(timeout=45)
        status, body = server.get("/health")
        assert status == 200, server.output()
        assert json.loads(body)["migrations"] == "head"
        assert server.get("/login/")[0] == 200
    finally:
        server.stop()


def test_boot_worker_runs_a_job_queued_before_it_started(database_url, queue):
    token = f"deploy-{uuid.uuid4().hex}"
    job = queue.enqueue("app.jobs.system.smoke", token)

    returncode, output = run_to_exit(
        [str(BOOT), "worker", "maintenance", "--burst"], full_env(database_url), timeout=60
    )

    assert returncode == 0, output
    job = Job.fetch(job.id, connection=queue.connection)
    assert job.get_status() == JobStatus.FINISHED, output
    result = job.return_value()
    assert result["token"] == token
    assert result["branches"] == _branch_count(database_url)


def test_cron_schedule_registers_every_periodic_job():
    scheduler = CronScheduler(connection=redis.Redis.from_url(REDIS_URL))
    scheduler.load_config_from_file("app.jobs.schedule")

    registered = [
        (job.func_name, job.queue_name, job.cron or job.interval, job.kwargs)
        for job in scheduler.get_jobs()
    ]
    assert registered
    assert registered == _declared_periodic_jobs()


def test_boot_scheduler_runs_rq_cron_with_the_schedule(tmp_path):
    connection = redis.Redis.from_url(REDIS_URL)
    server = Server([str(BOOT), "scheduler"], production_env(REDIS_URL=REDIS_URL),
                    tmp_path / "cron.log")
    try:
        deadline = time.monotonic() + 20
        running = []
        while not running and time.monotonic() < deadline:
            assert server.proc.poll() is None, server.output()
            running = [s for s in CronScheduler.all(connection) if s.pid == server.proc.pid]
            time.sleep(0.2)
        assert running, f"no cron scheduler registered in Redis:\n{server.output()}"
        (scheduler,) = running
        assert scheduler.config_file == "app.jobs.schedule"
        assert [job.func_name for job in scheduler.get_jobs()] == [
            name for name, *_ in _declared_periodic_jobs()
        ]
    finally:
        server.stop()
        connection.close()


def test_compose_file_declares_the_stack_without_secrets():
    text = (ROOT / "docker-compose.yml").read_text()
    services = yaml.safe_load(text)["services"]

    assert {"web", "worker", "scheduler", "postgres", "redis"} <= set(services)
    for name, command in (("web", "web"), ("worker", "worker"), ("scheduler", "scheduler")):
        service = services[name]
        assert service["command"] == [command]
        for dependency in ("postgres", "redis"):
            assert service["depends_on"][dependency]["condition"] == "service_healthy"
        env = service["environment"]
        assert env["CLINICDESK_ENV"] == "production"
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert re.fullmatch(
            r"postgresql://clinicdesk:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432/clinicdesk",
            env["DATABASE_URL"],
        )
    for service in services.values():
        for key, value in _environment(service).items():
            if re.search(r"SECRET|PASSWORD|TOKEN|_KEY$", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", value), f"{key} has a literal value"
    # No password written into any connection URL either.
    for user, password in re.findall(r"://([^:/@\s]+):([^@\s]+)@", text):
        assert password.startswith("${"), f"literal password for {user} in docker-compose.yml"

