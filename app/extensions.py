"""Extension singletons, bound to an app in ``create_app``.

Flask-AppBuilder keeps per-app state (its views, menu and security manager) on the AppBuilder
object, so one is made per app by :func:`make_appbuilder` and reached as ``current_app.appbuilder``.
"""

from __future__ import annotations

import fakeredis
import redis
from flask import current_app
from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla import Base
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from rq import Queue

# One metadata for FAB's ab_* tables and ours, so Alembic sees (and never drops) both.
db = SQLA(metadata=Base.metadata)
migrate = Migrate(compare_type=True, render_as_batch=True)
csrf = CSRFProtect()


def make_appbuilder() -> AppBuilder:
    """A fresh AppBuilder; permissions are synced by ``clinic init``, never at boot."""
    return AppBuilder(update_perms=False)


def jobs_inline() -> bool:
    """True when jobs run in-process because no Redis is configured."""
    return bool(current_app.config.get("JOBS_INLINE"))


def get_redis() -> redis.Redis:
    """The app's Redis connection (an in-process stand-in in inline mode)."""
    ext = current_app.extensions
    if "clinic_redis" not in ext:
        if jobs_inline():
            ext["clinic_redis"] = fakeredis.FakeRedis()
        else:
            ext["clinic_redis"] = redis.Redis.from_url(
                current_app.config["REDIS_URL"],
                socket_connect_timeout=current_app.config["REDIS_HEALTH_TIMEOUT"],
                socket_timeout=5,
            )
    return ext["clinic_redis"]


def get_queue(name: str = "default") -> Queue:
    """The RQ queue called ``name``; in inline mode it runs each job as it is enqueued."""
    if name not in current_app.config["RQ_QUEUES"]:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=get_redis(), is_async=not jobs_inline())
