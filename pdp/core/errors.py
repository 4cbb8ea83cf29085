"""The error tree of pdp. Every error has a stable ``code`` and a French ``message``.

    PdpError                    code, message, http status
    ├── BadRequest              400: malformed input (VALIDATION_ERROR, UNKNOWN_SERVICE, ...)
    ├── Unauthorized            401: no token, a bad token, an unknown or closed actor
    ├── Forbidden               403: the engine refuses the action (reason code, R-ADM-7)
    ├── NotFound                404: unknown resource (UNKNOWN_USER, NOT_FOUND)
    ├── Conflict                409: a business rule refuses the write (R-ADM-1, R-GRP-4, ...)
    ├── PayloadTooLarge         413: body over the configured limit
    ├── Unavailable             503: the rules, or the API keys, cannot be read from the store
    │                           (fail closed: POLICY_UNAVAILABLE, KEYS_UNAVAILABLE, ...)
    └── ConfigurationError      raised at start-up only (bad catalogue, bad settings)

The API translates these to JSON in exactly one place (``pdp.web.api.errors``).
"""

from __future__ import annotations

from typing import Any


class PdpError(Exception):
    """Base of every error pdp raises on purpose."""

    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class BadRequest(PdpError):
    """The request is malformed or names something that does not exist in the catalogue."""

    status = 400
    code = "VALIDATION_ERROR"


class Unauthorized(PdpError):
    """The acting user could not be authenticated."""

    status = 401
    code = "UNAUTHENTICATED"


class Forbidden(PdpError):
    """The acting user may not do this (the engine's reason is the code)."""

    status = 403
    code = "FORBIDDEN"


class Conflict(PdpError):
    """The write would break a business rule given the store's current state."""

    status = 409
    code = "CONFLICT"


class NotFound(PdpError):
    """The resource named in the path does not exist."""

    status = 404
    code = "NOT_FOUND"


class PayloadTooLarge(PdpError):
    """The request body is larger than allowed."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"


class Unavailable(PdpError):
    """What the answer needs cannot be read (the engine's rules too old, API keys never read,
    store unreachable): refuse rather than guess."""

    status = 503
    code = "POLICY_UNAVAILABLE"


class ConfigurationError(PdpError):
    """The service cannot start: a setting or a policy file is wrong."""

    code = "CONFIGURATION_ERROR"
