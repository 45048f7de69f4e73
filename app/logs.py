"""Logging set-up: levels, and request lines without query strings.

A search may carry a patient's name in its query string, so request logs keep only the path.
Gunicorn's access log is configured the same way in gunicorn.conf.py.
"""

from __future__ import annotations

import logging
import re

from flask import Flask

# "?" up to the next space or terminal colour code.
_QUERY = re.compile(r"\?[^\s\x1b\"]*")


def strip_query(request_line: str) -> str:
    """``GET /x?name=Ann HTTP/1.1`` → ``GET /x HTTP/1.1``."""
    return _QUERY.sub("", request_line)


class DropQueryStrings(logging.Filter):
    """Rewrites the development server's request log lines to drop query strings."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args and isinstance(record.args[0], str):
            record.args = (strip_query(record.args[0]), *record.args[1:])
        record.msg = strip_query(str(record.msg))
        return True


def init_logging(app: Flask) -> None:
    level = getattr(logging, str(app.config["LOG_LEVEL"]).upper(), logging.INFO)
    logging.getLogger("app").setLevel(level)
    werkzeug = logging.getLogger("werkzeug")
    if not any(isinstance(f, DropQueryStrings) for f in werkzeug.filters):
        werkzeug.addFilter(DropQueryStrings())
