"""The Python client of the decision point, for front-ends (``pip install pdp``; with the Flask
extension ``pdp.client.flask``: ``pip install 'pdp[flask]'``). It imports nothing of the server.

    from pdp.client import Client

    pdp = Client("https://pdp.internal", api_key, timeout=0.5, cache_ttl=5)
    if pdp.check("bruno.petit", "cdap", role="T18", caf="931"):
        ...
"""

from pdp.client.cache import RevisionCache
from pdp.client.client import Client
from pdp.client.errors import (
    BAD_RESPONSE,
    CLIENT_ERROR,
    TIMEOUT,
    UNAVAILABLE,
    PdpBadResponse,
    PdpError,
    PdpResponseError,
    PdpTimeout,
    PdpUnavailable,
)
from pdp.client.models import (
    CheckQuery,
    Decision,
    Grant,
    Permissions,
    Reason,
    ServicePermissions,
)
from pdp.client.transport import RawResponse, Transport, Urllib3Transport

__all__ = [
    "BAD_RESPONSE",
    "CLIENT_ERROR",
    "TIMEOUT",
    "UNAVAILABLE",
    "CheckQuery",
    "Client",
    "Decision",
    "Grant",
    "PdpBadResponse",
    "PdpError",
    "PdpResponseError",
    "PdpTimeout",
    "PdpUnavailable",
    "Permissions",
    "RawResponse",
    "Reason",
    "RevisionCache",
    "ServicePermissions",
    "Transport",
    "Urllib3Transport",
]
