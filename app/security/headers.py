"""Security headers on every response, and the nonce that lets a page's own scripts run.

The Content-Security-Policy allows scripts only from this server or inline with this response's
nonce (templates write ``nonce="{{ csp_nonce() }}"``; FAB's do it through ``baselib.get_nonce()``),
nothing from other hosts, no plugins, no framing.

``style-src`` keeps ``'unsafe-inline'``: FAB's markup relies on style attributes (its hidden
action and delete forms are ``style="display: none"``, detail values ``white-space: pre-line``)
and its widgets set styles the same way. Inline CSS cannot run script, and it cannot send
anything elsewhere either: every fetch (images, fonts, connections) is limited to this server.

Every response that is not a static file is ``Cache-Control: no-store`` unless its view chose
otherwise (a branch logo may be cached privately for a few minutes).
"""

from __future__ import annotations

import secrets

from flask import Flask, Response, current_app, g, request

STATIC_ENDPOINTS = frozenset({"static", "appbuilder.static"})
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def csp_nonce() -> str:
    """This request's nonce for inline scripts (random, made on first use)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def content_security_policy(nonce: str) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def init_security_headers(app: Flask) -> None:
    """Offer ``csp_nonce()`` to templates and add the headers to every response."""
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.after_request(add_security_headers)


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers["Content-Security-Policy"] = content_security_policy(csp_nonce())
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    headers["Permissions-Policy"] = PERMISSIONS_POLICY
    hsts_seconds = current_app.config.get("HSTS_SECONDS")
    if hsts_seconds:
        headers["Strict-Transport-Security"] = f"max-age={int(hsts_seconds)}"
    if request.endpoint not in STATIC_ENDPOINTS and "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
    return response
