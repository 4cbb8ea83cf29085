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
from typing import NamedTuple

from flask import current_app, request, session

from pdp.admin.service import AdminService
from pdp.config import Settings
from pdp.engine.admin import is_partner_admin, managed_groups
from pdp.engine.engine import Engine
from pdp.errors import ConfigurationError, Unauthorized

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ROLE_LABELS = {
    "operator": "opérateur Caf",
    "admin": "administrateur partenaire",
    "manager": "responsable habilitations",
    "plain": "utilisateur",
}


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


class Account(NamedTuple):
    """An open user offered on the demo sign-in page."""

    login: str
    organisation: str
    role: str

    @property
    def role_label(self) -> str:
        """The role in French."""
        return ROLE_LABELS[self.role]


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


def accounts() -> list[Account]:
    """The open users, by organisation then login, with their administrative role today."""
    found = engine()
    index = found.index
    day = found.clock().toordinal()
    out = []
    for user in index.users.values():
        if not user.start <= day < user.end:
            continue
        org = user.org
        if user.is_operator:
            role = "operator"
        elif org is not None and is_partner_admin(org, user.id, day):
            role = "admin"
        elif org is not None and managed_groups(index, user, org, day):
            role = "manager"
        else:
            role = "plain"
        out.append(Account(user.login, org.code if org is not None else "", role))
    return sorted(out, key=lambda a: (a.organisation, a.login))
