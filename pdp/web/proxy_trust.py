"""Whom the service believes about a request's origin.

- ``ProxyTrust``: the console's sign-in mode (``PDP_CONSOLE_AUTH``) and, in ``trusted-header``
  mode, the proxies whose login header it accepts (``pdp.web.console.auth``).
- ``ForwardedFor``: behind a reverse proxy (``PDP_TRUSTED_PROXIES``), the real caller's address
  (``X-Forwarded-For``) and scheme (``X-Forwarded-Proto``), believed only when the request comes
  from one of those proxies (R-OPS-1). Every reader of ``request.remote_addr`` (the rate limit's
  per-address key, the decision log's ``client``) then sees the caller, not nginx. The address
  of the proxy itself stays in the environ (``peer_address``): the console's login header is
  believed from the proxy that sent the request, never from an address it forwarded.

Unlike werkzeug's ``ProxyFix``, which believes the last N hops of any caller's header, a
header sent straight to the service by someone who is not a trusted proxy is ignored: a caller
cannot pick the address its rate limit is counted on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pdp.core.config import Settings
from pdp.core.errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PEER = "pdp.proxy_peer"  # the environ key holding the address the connection came from


def networks(setting: str, value: str) -> tuple[Network, ...]:
    """The address ranges of a comma-separated setting; raise ConfigurationError on a bad one."""
    found = []
    for item in value.split(","):
        if not item.strip():
            continue
        try:
            found.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ConfigurationError(
                f"PDP_{setting}: {item.strip()!r} is not an address range"
            ) from None
    return tuple(found)


def _within(address: str | None, ranges: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in net for net in ranges)


def peer_address(environ: WSGIEnvironment) -> str | None:
    """The address the connection came from (the proxy's, when ``ForwardedFor`` rewrote
    ``REMOTE_ADDR``)."""
    peer = environ.get(PEER, environ.get("REMOTE_ADDR"))
    return peer if isinstance(peer, str) else None


@dataclass(frozen=True)
class ProxyTrust:
    """The console's sign-in mode, and whom to believe for the login header."""

    mode: str
    header: str
    proxies: tuple[Network, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ProxyTrust:
        """Read the console settings; raise ConfigurationError on a bad address range."""
        ranges = networks("CONSOLE_TRUSTED_PROXIES", settings.console_trusted_proxies)
        return cls(settings.console_mode, settings.console_user_header, ranges)

    def trusts(self, address: str | None) -> bool:
        """Whether a request from ``address`` may name its user in the header."""
        return _within(address, self.proxies)


class ForwardedFor:
    """WSGI middleware: the caller's address and scheme as told by a trusted proxy (R-OPS-1).

    When the connection comes from a trusted proxy, ``REMOTE_ADDR`` becomes the right-most
    address of ``X-Forwarded-For`` that is not itself a trusted proxy (nginx appends the
    address it saw: what the caller wrote to the left of it is not believed), and
    ``wsgi.url_scheme`` the proxy's ``X-Forwarded-Proto`` (http or https). From any other
    address, both headers are ignored.
    """

    def __init__(self, app: WSGIApplication, proxies: tuple[Network, ...]) -> None:
        self.app = app
        self.proxies = proxies
        # A few proxies and callers: the parse and range test once per address.
        self.trusted = lru_cache(maxsize=4096)(self._trusted)

    def _trusted(self, address: str) -> bool:
        return _within(address, self.proxies)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        peer = environ.get("REMOTE_ADDR")
        if isinstance(peer, str) and self.trusted(peer):
            environ[PEER] = peer
            hops = [h.strip() for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",")]
            for hop in reversed(hops):
                if hop:
                    environ["REMOTE_ADDR"] = hop
                    if not self.trusted(hop):
                        break
            scheme = environ.get("HTTP_X_FORWARDED_PROTO", "").rpartition(",")[2].strip()
            if scheme in ("http", "https"):
                environ["wsgi.url_scheme"] = scheme
        return self.app(environ, start_response)


def trust_forwarded(app: WSGIApplication, settings: Settings) -> WSGIApplication:
    """``app`` behind ``ForwardedFor`` when ``PDP_TRUSTED_PROXIES`` names proxies, else ``app``
    itself (nothing on the request path)."""
    proxies = networks("TRUSTED_PROXIES", settings.trusted_proxies)
    return ForwardedFor(app, proxies) if proxies else app
