"""Who is signed in to the console.

Two ways (``PDP_CONSOLE_AUTH``):

- ``demo`` (development): ``/console/connexion`` lists the open users of the database as
  buttons; the chosen login is kept in the signed session cookie.
- ``trusted-header`` (production, behind the portal's identity provider): the reverse proxy
  authenticates the user and sends the login in ``PDP_CONSOLE_USER_HEADER`` on every request;
  the header is believed only from an address in ``PDP_CONSOLE_TRUSTED_PROXIES``.

Either way the login must name a user open today (R-USR-4), checked on every request: a user
closed while signed in is signed out.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from flask import current_app, request, session

from pdp.admin import users
from pdp.admin.service import AdminService
from pdp.config import Settings
from pdp.engine.engine import Engine
from pdp.errors import ConfigurationError, Unauthorized

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ProxyTrust:
    """The console's sign-in mode, and whom to believe for the login header."""

    mode: str
    header: str
    proxies: tuple[Network, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ProxyTrust:
        """Read the console settings; raise ConfigurationError on a bad address range."""
        networks = []
        for item in settings.console_trusted_proxies.split(","):
            if not item.strip():
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ConfigurationError(
                    f"PDP_CONSOLE_TRUSTED_PROXIES: {item.strip()!r} is not an address range"
                ) from None
        return cls(settings.console_mode, settings.console_user_header, tuple(networks))

    def trusts(self, address: str | None) -> bool:
        """Whether a request from ``address`` may name its user in the header."""
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in net for net in self.proxies)


def trust() -> ProxyTrust:
    """The current app's console settings."""
    found: ProxyTrust = current_app.extensions["pdp.console"]
    return found


def engine() -> Engine:
    """The decision engine, fresh enough for a page."""
    found: Engine = current_app.extensions["pdp.admin"].engine
    found.refresh()
    return found


def claimed_login() -> str | None:
    """The login this request claims: the session's (demo) or the trusted proxy's header."""
    settings = trust()
    if settings.mode == "trusted-header":
        if not settings.trusts(request.remote_addr):
            return None
        value = request.headers.get(settings.header, "").strip()
        if session.get("login") != (value or None):
            # Another person behind the same browser: nothing of the previous session (its
            # CSRF token, its messages) carries over.
            session.clear()
            if value:
                session["login"] = value
        return value or None
    found = session.get("login")
    return found if isinstance(found, str) else None


def refusal(login: str) -> str | None:
    """Why ``login`` may not use the console today (French), or None if it is an open user:
    the administration service's own answer (``AdminService.open_actor``, R-USR-4)."""
    service: AdminService = current_app.extensions["pdp.admin"]
    try:
        service.open_actor(login)
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
    service's ``pdp.admin.users.demo_accounts`` (login, organisation, role_label)."""
    service: AdminService = current_app.extensions["pdp.admin"]
    return users.demo_accounts(service)
