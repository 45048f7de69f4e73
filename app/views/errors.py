"""Error pages: friendly, translated, with a reference id; JSON under /api/. No traceback, no data.

Every error answer carries a random reference id, shown to the person and written to the log
with the status, method and path — never the query string, the form or the body. For a server
error the log also gets the exception's class and stack but not its message: a database
error's message can quote the row's values. A form posted without a valid CSRF token gets the
400 page saying the form expired; nothing the person typed is shown back.
"""

from __future__ import annotations

import logging
import secrets
import traceback

from flask import Flask, current_app, g, jsonify, render_template, request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.extensions import db

log = logging.getLogger(__name__)

#: (title, message) per status; other statuses get the generic pair.
MESSAGES = {
    400: (
        _l("That request could not be handled"),
        _l("Something in it was not as expected. Please go back and try again."),
    ),
    401: (_l("Please sign in"), _l("You need to sign in to open this page.")),
    403: (
        _l("You do not have access to this page"),
        _l(
            "Your role does not include it. If you need it for your work, ask your clinic's "
            "administrator."
        ),
    ),
    404: (
        _l("Page not found"),
        _l("The page or record you asked for does not exist, or you followed an old link."),
    ),
    405: (
        _l("That action is not possible here"),
        _l("This page cannot be used that way. Please go back and try again."),
    ),
    413: (
        _l("That upload is too large"),
        _l("Please choose a smaller file and try again."),
    ),
    423: (
        _l("Sign-in is locked for now"),
        _l(
            "There were too many failed attempts. Please wait a few minutes and try again, or "
            "ask your clinic's administrator."
        ),
    ),
    429: (
        _l("Too many attempts"),
        _l(
            "Too many attempts came from your network in a short time. Please wait a minute "
            "and try again."
        ),
    ),
    500: (
        _l("Something went wrong on our side"),
        _l(
            "The problem has been recorded. Please try again; if it happens again, give your "
            "administrator the reference below."
        ),
    ),
}
GENERIC = (
    _l("That request could not be completed"),
    _l("Please go back and try again."),
)
FORM_EXPIRED = (
    _l("The form expired"),
    _l(
        "The form expired or was opened in another tab, so it was not saved. Please go back, "
        "reload the page and fill it in again."
    ),
)


def init_error_pages(app: Flask) -> None:
    app.register_error_handler(CSRFError, form_expired)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, server_error)


def form_expired(error: CSRFError):
    return error_response(400, *FORM_EXPIRED)


def http_error(error: HTTPException):
    if error.code is None or error.code < 400:
        return error  # redirects raised by routing pass through
    if error.response is not None:
        return error.response  # a page of its own (e.g. the public form's rate limit)
    response = error_response(error.code, *MESSAGES.get(error.code, GENERIC))
    for name, value in error.get_headers():
        if name.lower() != "content-type":  # e.g. Allow on 405, Retry-After on 429
            response.headers[name] = value
    return response


def server_error(error: Exception):
    """Log the error by reference (class and stack only) and answer with the 500 page.

    When exceptions propagate (tests, the debugger) it is raised again instead.
    """
    propagate = current_app.config.get("PROPAGATE_EXCEPTIONS")
    if propagate is None:
        propagate = current_app.testing or current_app.debug
    if propagate:
        raise error
    reference = new_reference()
    log.error(
        "server error %s on %s %s: %s\n%s",
        reference,
        request.method,
        request.path,
        _exception_classes(error),
        "".join(traceback.format_tb(error.__traceback__)),
    )
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the database may be what failed
        log.warning("server error %s: rollback failed too", reference)
    return error_response(500, *MESSAGES[500], reference=reference)


def error_response(status: int, title, message, reference: str | None = None):
    """The error page (or JSON under /api/) with a reference id, logged with the request line."""
    reference = reference or new_reference()
    if status < 500:
        log.info(
            "%s %s answered %s (reference %s)", request.method, request.path, status, reference
        )
    if request.path.startswith("/api/"):
        response = jsonify(message=str(message), reference=reference)
    else:
        response = current_app.make_response(_render_page(title, message, reference))
    response.status_code = status
    return response


def new_reference() -> str:
    """A short random id, easy to read out over the phone."""
    return secrets.token_hex(5).upper()


def _render_page(title, message, reference: str) -> str:
    appbuilder = current_app.appbuilder
    context = {
        "title": str(title),
        "message": str(message),
        "reference": reference,
        "app_name": appbuilder.app_name,
        "home_url": appbuilder.get_url_for_index,
        "appbuilder": appbuilder,
    }
    # Errors raised before FAB's own request hook (CSRF, rate limits) find no g.user yet.
    g.setdefault("user", current_user)
    try:
        return render_template(
            "clinic/error.html", base_template=appbuilder.base_template, **context
        )
    except Exception:  # noqa: BLE001 - the full frame needs the database; the bare one does not
        log.warning("error page %s drawn without the menu", reference, exc_info=False)
        return render_template(
            "clinic/error.html",
            base_template="clinic/_error_frame.html",
            lang=str(get_locale() or "en"),
            **context,
        )


def _exception_classes(error: BaseException) -> str:
    """``OperationalError <- ConnectionRefusedError``: the chain's classes, never their messages."""
    names = []
    seen: BaseException | None = error
    while seen is not None and len(names) < 5:
        names.append(f"{type(seen).__module__}.{type(seen).__qualname__}")
        seen = seen.__cause__ or seen.__context__
    return " <- ".join(names)
