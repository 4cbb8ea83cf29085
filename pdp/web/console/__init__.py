"""The administration console ("Gestion des habilitations"): French HTML pages for partner
admins and managers, over the same service layer as the JSON API (``pdp.services.admin``).

- ``auth``: who is signed in (demo accounts, a login header set by a trusted proxy, or the
  identity provider's OpenID Connect sign-in, ``pdp.web.oidc_signin``);
- ``sessions``: the console's sessions, kept in the database (sign-out, lifetimes);
- ``security``: the CSRF token of every form and the security headers of every page;
- ``pages``: sign-in, sign-out and the welcome page; ``users``: fiches 1 to 6; ``groups``:
  fiches 7 to 16; ``dormant``: rights unused for N days, each user closable (R-CNIL-3);
  ``operators``: organisations, conventions, subscriptions and partner admins
  (Caf operators); ``audit``: the decision log and the audit trail (auditors).

Views only parse the form, call the service and render: every rule, and every refusal with its
French message, comes from ``pdp.services.admin`` (R-ADM-7 for what a page shows).
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin

from pdp.core.config import Settings
from pdp.services.sessions import SessionStore

# Their routes join the blueprint.
from pdp.web.console import (  # noqa: F401
    audit,
    dormant,
    group_roles,
    groups,
    imports,
    operators,
    pages,
    person,
    reviews,
    users,
)
from pdp.web.console.blueprint import bp
from pdp.web.container import ConsoleParts
from pdp.web.oidc_signin import OidcSignIn
from pdp.web.proxy_trust import ProxyTrust

SESSION_COOKIE = "pdp_console"
CONSOLE_PATH = "/console"


def session_secret(settings: Settings) -> str:
    """The key signing the console's session cookie: ``PDP_CONSOLE_SECRET`` when set. A new
    key refuses every cookie signed with the old one (everyone signs in again).

    Otherwise (development only: production refuses to start without it, ``refuse_defaults``)
    a key derived from ``PDP_JWT_SECRET``, or failing that from the database URL. It is derived
    rather than random so that every worker process of one server (gunicorn forks them, each
    building its own app) signs and accepts the same cookies; it is no secret when the JWT
    secret is unset, which is why production wants a real one.
    """
    if settings.console_secret.get_secret_value():
        return settings.console_secret.get_secret_value()
    seed = settings.jwt_secret.get_secret_value() or settings.database_url
    return hmac.new(b"pdp-console-session", seed.encode(), hashlib.sha256).hexdigest()


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions for the console's pages only: the API's requests (the
    decisions' hot path) neither read nor sign a cookie they never carry (its path is
    ``/console``), a cost measured at 2 % of a check's time in the worker."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(CONSOLE_PATH):
            return None  # Flask gives the request a null session, never saved
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if self.is_null_session(session):
            return
        super().save_session(app, session, response)


def install(app: Flask, settings: Settings, sessions: SessionStore) -> ConsoleParts | None:
    """Mount the console at ``/console`` unless ``PDP_CONSOLE_AUTH=off``, its sessions kept in
    ``sessions``; return what it adds to the app's services (None when it is off)."""
    if settings.console_mode == "off":
        return None
    app.secret_key = session_secret(settings)
    app.session_interface = ConsoleSessions()
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_PATH=CONSOLE_PATH,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
        # A browser-session cookie whose signature Flask also refuses past the absolute
        # lifetime (its default is 31 days); the session's record decides first.
        PERMANENT_SESSION_LIFETIME=settings.console_session_max,
    )
    parts = ConsoleParts(
        trust=ProxyTrust.from_settings(settings),
        sessions=sessions,
        error_page=pages.error_page,
        oidc=OidcSignIn.from_settings(app, settings) if settings.console_mode == "oidc" else None,
    )
    app.register_blueprint(bp)
    return parts
