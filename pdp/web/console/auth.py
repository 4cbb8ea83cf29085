"""Who is signed in to the console.

Three ways (``PDP_CONSOLE_AUTH``):

- ``demo`` (development): ``/console/connexion`` lists the open users of the database as
  buttons; choosing one starts a console session (``pdp.services.sessions``), whose id alone
  the signed cookie carries: the login is read from the session's record.
- ``trusted-header`` (production, behind the portal's identity provider): the reverse proxy
  authenticates the user and sends the login in ``PDP_CONSOLE_USER_HEADER`` on every request;
  the header is believed only from an address in ``PDP_CONSOLE_TRUSTED_PROXIES``. The console's
  session (its CSRF token) belongs to that login: another login in the header ends it, and an
  ended or expired one is replaced by a new one at the next page, the portal vouching.
- ``oidc`` (production, the console a client of the identity provider): sign-in by the
  authorisation code flow (``pdp.web.oidc_signin``); then a console session, as in demo.

Either way the login must name a user open today (R-USR-4), checked on every request: a user
closed while signed in is signed out (the session ends).
"""

from __future__ import annotations

from flask import flash, request, session

from pdp.core.errors import Unauthorized
from pdp.engine.policy import PolicyEngine
from pdp.services.admin import users
from pdp.services.sessions import REPLACED, LiveSession
from pdp.web.container import services
from pdp.web.proxy_trust import peer_address


def engine() -> PolicyEngine:
    """The decision engine, fresh enough for a page."""
    found = services().engine
    found.refresh()
    return found


SESSION_KEY = "sid"  # the session id, in Flask's signed cookie


def identify() -> tuple[str | None, LiveSession | None]:
    """The login this request claims, and the console session it comes with (if live).

    Demo: the live session's login. Trusted header: the trusted proxy's header; a session of
    another login ends (another person behind the same browser). A cookie naming no live
    session (signed out, expired, ended by a refusal) is emptied: nothing of it (its CSRF
    token, its messages) carries over.
    """
    settings = services().console.trust
    held = session.get(SESSION_KEY)
    live = services().console.sessions.resume(held, settings.mode)
    if live is None and held is not None:
        session.clear()
        if settings.mode in ("demo", "oidc"):
            flash("Votre session a pris fin : reconnectez-vous.", "error")
    if settings.mode != "trusted-header":
        return (live.login if live else None), live
    if not settings.trusts(peer_address(request.environ)):
        return None, None
    value = request.headers.get(settings.header, "").strip() or None
    if live is not None and live.login != value:
        end_session(live, REPLACED)
        live = None
    return value, live


def begin_session(login: str) -> LiveSession:
    """Start a new session of ``login`` in this browser: a new id and a new CSRF token (no
    fixation); the caller has ended any previous one."""
    session.clear()
    mode = services().console.trust.mode
    sid = session[SESSION_KEY] = services().console.sessions.start(login, mode)
    return LiveSession(sid, login, mode)


def end_session(live: LiveSession | None, reason: str) -> None:
    """End ``live`` (if any) for ``reason`` everywhere, and empty this browser's cookie."""
    if live is not None:
        services().console.sessions.end(live.sid, reason)
    session.clear()


def refusal(login: str) -> str | None:
    """Why ``login`` may not use the console today (French), or None if it is an open user:
    the administration service's own answer (``AdminService.open_actor``, R-USR-4)."""
    try:
        services().admin.open_actor(login)
    except Unauthorized as exc:
        return exc.message
    return None


def home_organisation(login: str) -> str | None:
    """The code of the user's organisation (None for a Caf operator)."""
    user = engine().index.users.get(login)
    if user is None or user.org is None:
        return None
    return user.org.code


def accounts() -> list[dict[str, str]]:
    """The open users, by organisation then login, with their administrative role today: the
    service's ``pdp.services.admin.users.demo_accounts`` (login, organisation, role_label)."""
    return users.demo_accounts(services().admin)
