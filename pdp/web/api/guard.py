"""Who may call, and how much: API keys, the per-client rate limit, and the size limits.

- The decision endpoints (check, batch, permissions, service users) need a front-end's API key
  in ``X-Api-Key`` (``pdp.services.api_keys``), and answer only about the services that key was
  given.
- The administration and auditors' endpoints need a JWT (``pdp.services.tokens``), checked by their
views.
- The administrative check (``/v1/admin/check``) takes either; ``/healthz`` and ``/readyz`` need
  nothing. ``/metrics`` takes either, or nothing when ``PDP_METRICS_PUBLIC=true`` (then, like
  the probes, it is not rate-limited either).
- The API's description (``/v1/openapi.json``, the page ``/v1/docs`` and its files) needs
  nothing either: it holds no data (``pdp.web.api.docs``). Credentials sent with it are not
  read, and it counts against the caller's address in the rate limit.
- Path parameters and query strings with a control character are refused (400
  ``INVALID_CHARACTERS``, ``pdp.core.text``), as bodies are by their models.
- Every request but the probes counts against its caller's rate limit (the ``limits`` library,
  fixed windows): the key's client name, the JWT's subject, or else the remote address (behind a
  trusted proxy, the caller it forwards: ``pdp.web.proxy_trust``, R-OPS-1); refusals are counted
  in ``pdp_rate_limited_requests_total``. Counters
  live in memory (one set per worker) or in Redis (shared by every worker and instance:
  production). Flask-Limiter, built on the same library, cost 135 µs a request here (resolving
  its limits and headers on every call), against 2.4 µs for the count itself
  (``bench/limits.py``): the extension is not used.
"""

from __future__ import annotations

from flask import Flask, g, request

from pdp.core import context
from pdp.core.catalogue import Catalogue
from pdp.core.config import Settings
from pdp.core.errors import BadRequest, Forbidden, Unauthorized
from pdp.core.text import INVALID_CHARACTERS, INVALID_CHARACTERS_MESSAGE, has_forbidden
from pdp.observability import metrics
from pdp.services.api_keys import HEADER, ApiClient, ClientRegistry
from pdp.services.tokens import TokenVerifier
from pdp.web.api.docs import OPEN_ENDPOINTS
from pdp.web.api.openapi import registry
from pdp.web.api.rate_limit import RateLimited, RateLimiter
from pdp.web.container import services

# Who may call what is each route's own declaration (``route(..., public=, api_key=, auth=)``):
# the guard reads it off the registry. The API's description, served outside the registry, is
# open to anyone (OPEN_ENDPOINTS).
# The rate limit's key, by its first letter: the label of pdp_rate_limited_requests_total.
KEY_KINDS = {"c": "client", "u": "user", "a": "address"}


def client() -> ApiClient | None:
    """The API client of the current request (None on JWT-authenticated routes)."""
    found: ApiClient | None = g.get("pdp_client")
    return found


def require_service(service: str) -> None:
    """Raise Forbidden unless the calling front-end may ask about ``service``."""
    check_service(client(), service, services().decisions.catalogue)


def check_service(caller: ApiClient | None, service: str, catalogue: Catalogue) -> None:
    """Raise Forbidden unless ``caller`` (None: a JWT route's user) may ask about ``service``.
    Names outside the catalogue pass: the decision refuses them as unknown (400), the same for
    every key."""
    if caller is None or service in caller.services:
        return
    if service in catalogue.services:
        raise Forbidden(
            f"Ce client ({caller.name}) n'est pas autorisé à interroger le service {service!r}.",
            "SERVICE_NOT_ALLOWED",
        )


def page_limit(limit: int) -> int:
    """``limit`` if at most PDP_PAGE_MAX; raise BadRequest (PAGE_TOO_LARGE) otherwise."""
    cap: int = services().settings.page_max
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
) -> RateLimiter | None:
    """Register authentication, then the rate limit (in that order: the limit's key is the
    authenticated caller). Return the limiter, if any."""
    # /metrics: open to the scraper when PDP_METRICS_PUBLIC=true, else for a key or a token.
    declared_public = registry.endpoints(public=True)
    keyed = registry.endpoints(api_key=True)
    declared_either = registry.endpoints(api_key=True, auth=True)
    public = (declared_public | {metrics.ENDPOINT}) if settings.metrics_open else declared_public
    either = declared_either if settings.metrics_open else (declared_either | {metrics.ENDPOINT})

    @app.before_request
    def _authenticate() -> None:
        endpoint = request.endpoint
        if endpoint is None or endpoint in public or endpoint in OPEN_ENDPOINTS:
            return
        if endpoint in keyed or (endpoint in either and HEADER in request.headers):
            caller = clients.authenticate(request.headers.get(HEADER))
            g.pdp_client = caller
            context.client.set(caller.name)
        elif endpoint in either:
            if verifier is None:
                raise Unauthorized(
                    f"Authentification requise : en-tête {HEADER} absent.", "API_KEY_REQUIRED"
                )
            login = verifier.login(request.headers.get("Authorization"))
            g.pdp_login = login
            context.client.set(f"user:{login}")

    @app.before_request
    def _refuse_forbidden_text() -> None:
        # Path parameters and query strings hold text as bodies do (pdp.core.text): nothing with a
        # control character reaches a view, a query or a log. Bodies are checked by their
        # models. Checks with neither cost a dict test and an environ lookup.
        for name, value in (request.view_args or {}).items():
            if isinstance(value, str) and has_forbidden(value):
                raise _forbidden_text(name)
        if request.environ.get("QUERY_STRING"):
            for name, value in request.args.items(multi=True):
                if has_forbidden(name) or has_forbidden(value):
                    raise _forbidden_text(name)

    if not settings.rate_limited:
        return None
    limiter = RateLimiter(settings.rate_limit, settings.rate_limit_storage)

    @app.before_request
    def _rate_limit() -> None:
        endpoint = request.endpoint
        if endpoint is None or endpoint in public:
            return
        # A JWT route's user was authenticated just before (_authenticate): not again.
        count(limiter, client(), g.get("pdp_login"), request.remote_addr)

    return limiter


def count(
    limiter: RateLimiter, caller: ApiClient | None, login: str | None, address: str | None
) -> None:
    """Count a request against its caller's limit: the key's client, else the JWT's user, else
    the address; raise RateLimited (429) over it."""
    if caller is not None:
        key = f"client:{caller.name}"
    else:
        key = f"user:{login}" if login else f"addr:{address or 'unknown'}"
    retry_after = limiter.hit(key)
    if retry_after is not None:
        metrics.RATE_LIMITED_BY[KEY_KINDS[key[0]]]()  # only on a refusal: a dict lookup
        raise RateLimited(retry_after)


def _forbidden_text(name: str) -> BadRequest:
    return BadRequest(
        INVALID_CHARACTERS_MESSAGE,
        INVALID_CHARACTERS,
        [{"field": name if not has_forbidden(name) else None, "problem": "invalid_characters"}],
    )
