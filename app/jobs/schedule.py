"""Periodic jobs, declared as data for ``rq cron``.

Schedules are written in UTC: rq 3 reads cron expressions in the process's local time, so the
cron process runs with ``TZ=UTC`` (the Dockerfile sets it; boot.sh does too).

Run exactly one cron process: ``rq cron app.jobs.schedule --url "$REDIS_URL"``. Missed runs are
not caught up, so each periodic job works out for itself what is due.
"""

from __future__ import annotations

from rq import cron

from app.jobs.audit import seal_audit_chain
from app.jobs.follow_ups import create_automatic_follow_ups
from app.jobs.system import smoke

#: (function, queue, cron expression or interval in seconds, keyword arguments). Later domains
#: add their jobs here.
PERIODIC_JOBS = [
    (smoke, "maintenance", "*/30 * * * *", {"token": "heartbeat"}),
    # New audit entries are linked into the hash chain within seconds.
    (seal_audit_chain, "maintenance", 10, {}),
    # Leads gone quiet get an automatic follow-up; each run works out who is due.
    (create_automatic_follow_ups, "default", "*/15 * * * *", {}),
]

for func, queue_name, schedule, kwargs in PERIODIC_JOBS:
    when = {"interval": schedule} if isinstance(schedule, int) else {"cron": schedule}
    cron.register(func, queue_name, kwargs=kwargs, **when)
