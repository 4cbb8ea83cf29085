"""The console's protections: a CSRF token in every form, security headers on every page."""

from __future__ import annotations

import hmac
import secrets

from flask import request, session
from werkzeug.wrappers import Response

TOKEN_FIELD = "csrf_token"
_SESSION_KEY = "csrf"

# No inline script or style; nothing from elsewhere; never framed (clickjacking).
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def csrf_token() -> str:
    """This session's CSRF token, made on first use (a new session empties the cookie, so
    it gets a new token)."""
    token = session.get(_SESSION_KEY)
    if not isinstance(token, str):
        token = session[_SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_ok() -> bool:
    """Whether the submitted form carries this session's token."""
    expected = session.get(_SESSION_KEY)
    given = request.form.get(TOKEN_FIELD, "")
    if not isinstance(expected, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def add_headers(response: Response, form_origin: str = "") -> Response:
    """Set the security headers (kept if a view set its own); ``form_origin``: another origin
    a form may be sent on to (the identity provider, for the sign-out)."""
    for name, value in HEADERS.items():
        if name == "Content-Security-Policy" and form_origin:
            value = value.replace("form-action 'self'", f"form-action 'self' {form_origin}")
        response.headers.setdefault(name, value)
    return response
