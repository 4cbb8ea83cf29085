"""Who may call, and how much: API keys, the per-client rate limit, and the size limits.

- The decision endpoints (check, batch, permissions, service users) need a front-end's API key
  in ``X-Api-Key`` (``pdp.clients``), and answer only about the services that key was given.
- The administration and auditors' endpoints need a JWT (``pdp.auth``), checked by their views.
- ``/v1/openapi.json`` and the administrative check (``/v1/admin/check``) take either;
  ``/healthz`` and ``/readyz`` need nothing.
- Every request but the probes counts against its caller's rate limit (Flask-Limiter): the key's
  client name, the JWT's subject, or else the remote address. Counters live in memory (one set
  per worker) or in Redis (shared by every worker and instance: production).
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, request
from flask_limiter import Limiter
from limits import parse_many

from pdp import context
from pdp.auth import TokenVerifier
from pdp.clients import HEADER, ApiClient, ClientRegistry
from pdp.config import Settings
from pdp.errors import BadRequest, ConfigurationError, Forbidden, Unauthorized

log = logging.getLogger("pdp.api")

# Endpoints answering without credentials, and never rate-limited.
PUBLIC = frozenset({"health.healthz", "health.readyz"})
# Endpoints of the front-ends: an API key is required.
KEYED = frozenset(
    {
        "decisions.check",
        "decisions.check_batch",
        "decisions.permissions",
        "decisions.service_users",
    }
)
# Endpoints a front-end (API key) or a signed-in user (JWT) may call.
EITHER = frozenset({"decisions.openapi", "admin_users.admin_check"})


def client() -> ApiClient | None:
    """The API client of the current request (None on JWT-authenticated routes)."""
    found: ApiClient | None = g.get("pdp_client")
    return found


def require_service(service: str) -> None:
    """Raise Forbidden unless the calling front-end may ask about ``service``. Names outside
    the catalogue pass: the decision refuses them as unknown (400), the same for every key."""
    caller = client()
    if caller is None or service in caller.services:
        return
    catalogue = current_app.extensions["pdp.decisions"].catalogue
    if service in catalogue.services:
        raise Forbidden(
            f"Ce client ({caller.name}) n'est pas autorisé à interroger le service {service!r}.",
            "SERVICE_NOT_ALLOWED",
        )


def page_limit(limit: int) -> int:
    """``limit`` if at most PDP_PAGE_MAX; raise BadRequest (PAGE_TOO_LARGE) otherwise."""
    cap: int = current_app.config["PDP_SETTINGS"].page_max
    if limit > cap:
        raise BadRequest(f"Une page contient au plus {cap} éléments.", "PAGE_TOO_LARGE")
    return limit


def path_value(value: str, name: str, longest: int) -> str:
    """A path parameter, refused (400 VALUE_TOO_LONG) beyond ``longest`` characters."""
    if len(value) > longest:
        raise BadRequest(
            f"Paramètre {name!r} trop long ({longest} caractères au plus).", "VALUE_TOO_LONG"
        )
    return value


def install(
    app: Flask, clients: ClientRegistry, verifier: TokenVerifier | None, settings: Settings
) -> Limiter | None:
    """Register authentication, then the rate limiter (in that order: the limiter's key is the
    authenticated caller). Return the limiter, if any."""

    @app.before_request
    def _authenticate() -> None:
        endpoint = request.endpoint
        if endpoint is None or endpoint in PUBLIC:
            return
        if endpoint in KEYED or (endpoint in EITHER and HEADER in request.headers):
            caller = clients.authenticate(request.headers.get(HEADER))
            g.pdp_client = caller
            context.client.set(caller.name)
        elif endpoint in EITHER:
            if verifier is None:
                raise Unauthorized(
                    f"Authentification requise : en-tête {HEADER} absent.", "API_KEY_REQUIRED"
                )
            login = verifier.login(request.headers.get("Authorization"))
            g.pdp_login = login
            context.client.set(f"user:{login}")

    if not settings.rate_limited:
        return None
    try:
        parse_many(settings.rate_limit)
    except ValueError as exc:
        raise ConfigurationError(
            f"PDP_RATE_LIMIT: {settings.rate_limit!r} is not a limit such as 1000/second: {exc}"
        ) from None
    if not settings.rate_limit_storage.startswith(("memory://", "redis://", "rediss://")):
        raise ConfigurationError(
            "PDP_RATE_LIMIT_STORAGE must be memory:// or a redis:// URL, not "
            f"{settings.rate_limit_storage!r}"
        )

    def _rate_key() -> str:
        caller = client()
        if caller is not None:
            return f"client:{caller.name}"
        header = request.headers.get("Authorization")
        if header and verifier is not None:
            try:
                return f"user:{verifier.login(header)}"
            except Unauthorized:
                pass
        return f"addr:{request.remote_addr or 'unknown'}"

    limiter = Limiter(
        _rate_key,
        app=app,
        default_limits=[settings.rate_limit],
        storage_uri=settings.rate_limit_storage,
        strategy="fixed-window",
        headers_enabled=True,
        key_prefix="pdp",
        # The limit protects the service, it does not decide access: when its store (Redis) is
        # unreachable, requests are counted in this worker's memory instead of failing.
        swallow_errors=True,
        in_memory_fallback_enabled=True,
    )

    @limiter.request_filter
    def _probes() -> bool:
        return request.endpoint in PUBLIC or request.endpoint is None

    return limiter
