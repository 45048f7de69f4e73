"""Gunicorn settings for ``gunicorn --config gunicorn.conf.py run:app`` (what ``boot.sh web`` runs).

Tunable from the environment: ``PORT`` (8000), ``WEB_CONCURRENCY`` (worker processes),
``GUNICORN_THREADS`` (threads per worker), ``GUNICORN_TIMEOUT`` (seconds); ``GUNICORN_CMD_ARGS``
overrides anything here.
"""

from __future__ import annotations

import os


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


bind = [f"0.0.0.0:{_env_int('PORT', 8000)}"]

# Requests spend most of their time waiting on PostgreSQL, so a few threaded workers go far;
# slow work (exports, reminders) belongs to the RQ worker, not to a request.
worker_class = "gthread"
workers = _env_int("WEB_CONCURRENCY", min(2 * (os.cpu_count() or 1), 4))
threads = _env_int("GUNICORN_THREADS", 4)
timeout = _env_int("GUNICORN_TIMEOUT", 60)
graceful_timeout = 30
keepalive = 5
# Recycling workers now and then bounds the cost of any slow leak.
max_requests = 2000
max_requests_jitter = 200

# The heartbeat file on tmpfs: a container's disk-backed /tmp can stall workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The container is managed by its orchestrator, not through gunicorn's control socket.
control_socket_disable = True

# Access log on stdout without query strings: a search may carry a patient's name, so the log
# keeps the path (%(U)s, never %(r)s or %(q)s) and drops the referer, which holds them too.
accesslog = "-"
errorlog = "-"
access_log_format = '%(t)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'


def on_starting(server) -> None:
    """Refuse to start, before binding or forking, when the configuration is incomplete.

    :raises config.ConfigError: naming the missing setting; gunicorn prints it and exits 1.
    """
    from config import config_from_env

    config_from_env().validate()
