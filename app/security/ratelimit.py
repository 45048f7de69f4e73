"""Per-client-address limits on every door that checks a password or a code.

There is one limiter, FAB's (``appbuilder.sm.limiter``): its counters live in Redis
(``RATELIMIT_STORAGE_URI``) under ``RATELIMIT_KEY_PREFIX``, and it keys them by the client's
address as ProxyFix resolved it — ``X-Forwarded-For`` counts only behind the configured number of
proxies (``CLINICDESK_PROXY_HOPS``), so a client cannot pick its own key. FAB limits its login
form itself (``AUTH_RATE_LIMIT`` on POST); :func:`limit_auth_doors` puts the same limit on the
other doors. A refused attempt answers 429 (app/views/errors.py).
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_appbuilder import AppBuilder
from flask_appbuilder.security.api import SecurityApi

#: Views, by class name, whose POSTs are sign-in or password attempts (besides the login form,
#: which FAB limits, and the REST login and refresh, found as SecurityApi).
AUTH_DOOR_VIEWS = frozenset({"TotpView", "ResetMyPasswordView", "ResetPasswordView"})


def limit_auth_door(view_or_blueprint: Any) -> None:
    """Count POSTs to a view's blueprint (or a blueprint) against ``AUTH_RATE_LIMIT`` per address.

    Call it in the app context, after the view is added. Does nothing when
    ``AUTH_RATE_LIMITED`` is off.
    """
    sm = current_app.appbuilder.sm
    if not sm.is_auth_limited:
        return
    blueprint = getattr(view_or_blueprint, "blueprint", view_or_blueprint)
    sm.limiter.limit(sm.auth_rate_limit, methods=["POST"])(blueprint)


def limit_auth_doors(appbuilder: AppBuilder) -> list[str]:
    """Limit every authentication door the app has; returns their blueprint names."""
    doors = []
    for view in appbuilder.baseviews:
        if view is appbuilder.sm.auth_view:
            continue  # FAB limits its login form itself
        if isinstance(view, SecurityApi) or type(view).__name__ in AUTH_DOOR_VIEWS:
            limit_auth_door(view)
            doors.append(view.blueprint.name)
    return doors
