"""Background jobs, grouped by domain; ``enqueue`` is the one way in.

A job receives ids, never ORM objects; whatever row it reads is committed before it is enqueued.
With ``REDIS_URL`` set, jobs go to RQ and a worker (``flask --app run clinic worker``) runs them;
without it (development), they run inline, inside the request that enqueued them.
"""

from __future__ import annotations

from typing import Any, Callable

from rq import Retry
from rq.job import Job

from app.extensions import get_queue


def enqueue(func: Callable[..., Any], *args: Any, queue: str = "default", retry: int = 0,
            **kwargs: Any) -> Job:
    """Queue ``func(*args, **kwargs)`` and return its RQ job.

    :param retry: how many times a failed run is retried (10 s, 30 s, 60 s apart).
    """
    options: dict[str, Any] = {}
    if retry:
        options["retry"] = Retry(max=retry, interval=[10, 30, 60][:retry] or 10)
    return get_queue(queue).enqueue(func, args=args, kwargs=kwargs, **options)
