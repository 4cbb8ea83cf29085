"""Whom the console believes: its sign-in mode (``PDP_CONSOLE_AUTH``) and, in
``trusted-header`` mode, the proxies whose login header it accepts (``pdp.web.console.auth``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pdp.core.config import Settings
from pdp.core.errors import ConfigurationError

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
