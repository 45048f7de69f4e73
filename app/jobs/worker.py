"""The RQ worker that runs ClinicDesk's jobs inside the Flask app context."""

from __future__ import annotations

from typing import Any

from flask import Flask
from rq import Worker

from app.extensions import db, get_redis
from app.services.audit import acting_as


class ClinicWorker(Worker):
    """An RQ worker whose work-horse runs each job in a fresh app context.

    The work-horse is a fork of the worker: it must not reuse the parent's database connections,
    so it drops the inherited pool (without closing the parent's sockets) before the job starts.
    Each job acts as the named system actor ``job:<function name>`` in the audit trail.
    """

    app: Flask

    def main_work_horse(self, job: Any, queue: Any) -> None:
        with self.app.app_context():
            db.engine.dispose(close=False)
        super().main_work_horse(job, queue)

    def perform_job(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> bool:
        # Every write a job makes is audited under its name, e.g. "job:send_reminders".
        actor = "job:" + (job.func_name or "unknown").rsplit(".", 1)[-1]
        with self.app.app_context(), acting_as(actor):
            try:
                return super().perform_job(job, queue, *args, **kwargs)
            finally:
                db.session.remove()


def make_worker(app: Flask, queue_names: list[str] | None = None) -> ClinicWorker:
    """A worker for ``app`` listening on the given queues (default: all of them)."""
    with app.app_context():
        connection = get_redis()
        names = queue_names or list(app.config["RQ_QUEUES"])
    worker = ClinicWorker(names, connection=connection)
    worker.app = app
    return worker
