"""Jobs that check the job system itself."""

from __future__ import annotations

from datetime import datetime, timezone

from rq import get_current_job
from sqlalchemy import func, select

from app.extensions import db
from app.models.org import Branch


def smoke(token: str) -> dict:
    """Prove the path end to end: the worker has the app context and reaches the database.

    Returns the token it was given, the number of branches it counted and when it ran.
    """
    job = get_current_job()
    if job is not None:
        job.meta["progress"] = 50
        job.save_meta()
    branches = db.session.scalar(select(func.count()).select_from(Branch))
    result = {
        "token": token,
        "branches": branches,
        "ran_at": datetime.now(timezone.utc).isoformat(),
    }
    if job is not None:
        job.meta["progress"] = 100
        job.save_meta()
    return result
