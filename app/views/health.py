"""``/health``: is this instance able to serve? JSON for load balancers and monitoring."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import get_redis, jobs_inline
from app.services.system import migration_state

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


def _redis_state() -> str:
    if jobs_inline():
        return "inline"
    try:
        get_redis().ping()
    except (RedisError, OSError):
        return "unavailable"
    return "ok"


@bp.get("/health")
def health():
    """200 when the database answers and its schema is at head; 503 otherwise. No data inside."""
    try:
        migrations = migration_state()
        database = "ok"
    except SQLAlchemyError:
        log.warning("health check: database unreachable")
        database, migrations = "error", "unknown"
    body = {"database": database, "redis": _redis_state(), "migrations": migrations}
    healthy = database == "ok" and migrations == "head"
    response = jsonify(body)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response
