"""The client's errors, raised only in strict mode (``Client(strict=True)``).

Without strict mode the client never raises for a failed call: it answers "denied" with one of
the reason codes below, so that a front-end that forgets a ``try`` still fails closed (R-DEC-2).

    PdpError                      any failed call; ``code`` and French ``message``
    ├── PdpUnavailable            no connection could be made (after the bounded retries)
    ├── PdpTimeout                the server did not answer within the timeout
    └── PdpResponseError          the server answered, but not with a decision
        └── PdpBadResponse        the answer was not the documented JSON
"""

from __future__ import annotations

#: Reason codes the client makes up itself (the server's own codes are passed through).
UNAVAILABLE = "PDP_UNAVAILABLE"
TIMEOUT = "PDP_TIMEOUT"
BAD_RESPONSE = "PDP_BAD_RESPONSE"
CLIENT_ERROR = "PDP_CLIENT_ERROR"

MESSAGES = {
    UNAVAILABLE: "Le service d'habilitation est injoignable : accès refusé.",
    TIMEOUT: "Le service d'habilitation n'a pas répondu à temps : accès refusé.",
    BAD_RESPONSE: "Réponse illisible du service d'habilitation : accès refusé.",
    CLIENT_ERROR: "Erreur interne du client d'habilitation : accès refusé.",
}


class PdpError(Exception):
    """A call that did not end in a decision: ``code`` is stable, ``message`` is French."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class PdpUnavailable(PdpError):
    """No connection to the decision point (refused, reset, name unknown), retries spent."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(UNAVAILABLE, MESSAGES[UNAVAILABLE])
        self.detail = detail


class PdpTimeout(PdpError):
    """The decision point did not answer within the client's timeout."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(TIMEOUT, MESSAGES[TIMEOUT])
        self.detail = detail


class PdpResponseError(PdpError):
    """The decision point answered with an error (its ``code``, ``message`` and HTTP status)."""


class PdpBadResponse(PdpResponseError):
    """The answer was not the documented JSON (a proxy's HTML page, a cut body…)."""

    def __init__(self, status: int | None, detail: str = "") -> None:
        super().__init__(BAD_RESPONSE, MESSAGES[BAD_RESPONSE], status)
        self.detail = detail
