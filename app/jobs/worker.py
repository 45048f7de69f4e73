"""The RQ worker that runs ClinicDesk's jobs inside the Flask app context."""

from __future__ import annotations

from typing import Any

from flask import Flask
from rq import Worker

from app.extensions import db, get_redis


class ClinicWorker(Worker):
    """An RQ worker whose work-horse runs each job in a fresh app context.

    The work-horse is a fork of the worker: it must not reuse the parent's database connections,
    so it drops the inherited pool (without closing the parent's sockets) before the job starts.
    """

    app: Flask

    def main_work_horse(self, job: Any, queue: Any) -> None:
        with self.app.app_context():
            db.engine.dispose(close=False)
        super().main_work_horse(job, queue)

    def perform_job(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> bool:
        with self.app.app_context():
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
