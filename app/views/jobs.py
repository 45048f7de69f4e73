"""``/jobs/``: the Admin's view of the background job system."""

from __future__ import annotations

import logging
import secrets

from flask import current_app, flash, redirect, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _l
from redis.exceptions import RedisError
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from app.extensions import get_queue, jobs_inline
from app.jobs import enqueue
from app.jobs.system import smoke
from app.security.policy import CREATE, JOBS, READ

log = logging.getLogger(__name__)


def queue_overview(names: list[str]) -> list[dict]:
    """Per queue: waiting, running, scheduled and failed job counts."""
    overview = []
    for name in names:
        queue = get_queue(name)
        overview.append(
            {
                "name": name,
                "queued": queue.count,
                "started": StartedJobRegistry(queue=queue).count,
                "scheduled": ScheduledJobRegistry(queue=queue).count,
                "failed": FailedJobRegistry(queue=queue).count,
            }
        )
    return overview


class JobsView(BaseView):
    """Queue mode (inline or Redis), queue counts, and a test job to prove the path."""

    route_base = "/jobs"
    default_view = "index"
    class_permission_name = JOBS
    method_permission_name = {"index": "read", "run_smoke": "create"}
    base_permissions = [READ, CREATE]

    @expose("/")
    @has_access
    def index(self):
        queues, redis_error = [], False
        try:
            queues = queue_overview(list(current_app.config["RQ_QUEUES"]))
        except (RedisError, OSError):
            log.warning("jobs page: Redis unreachable")
            redis_error = True
        return self.render_template(
            "clinic/jobs.html", inline=jobs_inline(), queues=queues, redis_error=redis_error
        )

    @expose("/smoke", methods=["POST"])
    @has_access
    def run_smoke(self):
        """Queue the smoke job (inline mode runs it at once)."""
        try:
            job = enqueue(smoke, secrets.token_hex(4), queue="maintenance")
        except (RedisError, OSError):
            flash(str(_l("Redis is unreachable: the test job could not be queued.")), "danger")
            return redirect(url_for(".index"))
        if job.is_finished:
            flash(str(_l("The test job ran and finished.")), "success")
        else:
            flash(str(_l("The test job is queued as %(id)s.", id=job.id)), "info")
        return redirect(url_for(".index"))
