"""Who may call, and how much: API keys, the per-client rate limit, and the size limits.

- The decision endpoints (check, batch, permissions, service users) need a front-end's API key
  in ``X-Api-Key`` (``pdp.services.api_keys``), and answer only about the services that key was
  given.
- The administration and auditors' endpoints need a JWT (``pdp.services.tokens``), checked by their
views.
- ``/v1/openapi.json`` and the administrative check (``/v1/admin/check``) take either;
  ``/healthz`` and ``/readyz`` need nothing. ``/metrics`` takes either, or nothing when
  ``PDP_METRICS_PUBLIC=true`` (then, like the probes, it is not rate-limited either).
- Path parameters and query strings with a control character are refused (400
  ``INVALID_CHARACTERS``, ``pdp.core.text``), as bodies are by their models.
- Every request but the probes counts against its caller's rate limit (the ``limits`` library,
  fixed windows): the key's client name, the JWT's subject, or else the remote address. Counters
  live in memory (one set per worker) or in Redis (shared by every worker and instance:
  production). Flask-Limiter, built on the same library, cost 135 µs a request here (resolving
  its limits and headers on every call), against 2.4 µs for the count itself
  (``bench/limits.py``): the extension is not used.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable

from flask import Flask, g, request
from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from pdp.core import context
from pdp.core.config import Settings
from pdp.core.errors import BadRequest, ConfigurationError, Forbidden, PdpError, Unauthorized
from pdp.core.text import INVALID_CHARACTERS, INVALID_CHARACTERS_MESSAGE, has_forbidden
from pdp.observability import metrics
from pdp.services.api_keys import HEADER, ApiClient, ClientRegistry
from pdp.services.tokens import TokenVerifier
from pdp.web.container import services

log = logging.getLogger("pdp.web.api")

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
    catalogue = services().decisions.catalogue
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
    # /metrics: open to the scraper when PDP_METRICS_PUBLIC=true, else like the OpenAPI document.
    public = (PUBLIC | {metrics.ENDPOINT}) if settings.metrics_open else PUBLIC
    either = EITHER if settings.metrics_open else (EITHER | {metrics.ENDPOINT})

    @app.before_request
    def _authenticate() -> None:
        endpoint = request.endpoint
        if endpoint is None or endpoint in public:
            return
        if endpoint in KEYED or (endpoint in either and HEADER in request.headers):
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
        caller = client()
        if caller is not None:
            key = f"client:{caller.name}"
        else:
            key = f"addr:{request.remote_addr or 'unknown'}"
            header = request.headers.get("Authorization")
            if header and verifier is not None:
                with contextlib.suppress(Unauthorized):
                    key = f"user:{verifier.login(header)}"
        retry_after = limiter.hit(key)
        if retry_after is not None:
            raise RateLimited(retry_after)

    return limiter


def _forbidden_text(name: str) -> BadRequest:
    return BadRequest(
        INVALID_CHARACTERS_MESSAGE,
        INVALID_CHARACTERS,
        [{"field": name if not has_forbidden(name) else None, "problem": "invalid_characters"}],
    )


class RateLimited(PdpError):
    """Over the caller's rate limit: 429, with the seconds to wait."""

    status = 429
    code = "RATE_LIMITED"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Trop de requêtes pour ce client : réessayer dans {retry_after} s (PDP_RATE_LIMIT).",
            details={"retry_after": retry_after},
        )
        self.retry_after = retry_after


class RateLimiter:
    """Fixed-window counters per caller (the ``limits`` library): in this worker's memory, or
    in Redis shared by every worker and instance.

    When Redis fails, the count goes on in memory (logged once per outage): the limit protects
    the service, it does not decide access, so a Redis outage must not refuse requests.
    """

    def __init__(self, spec: str, storage_uri: str) -> None:
        try:
            self.items = parse_many(spec)
        except ValueError as exc:
            raise ConfigurationError(
                f"PDP_RATE_LIMIT: {spec!r} is not a limit such as 1000/second: {exc}"
            ) from None
        if not storage_uri.startswith(("memory://", "redis://", "rediss://")):
            raise ConfigurationError(
                f"PDP_RATE_LIMIT_STORAGE must be memory:// or a redis:// URL, not {storage_uri!r}"
            )
        self.shared = storage_uri.startswith("redis")
        self._redis = (
            FixedWindowRateLimiter(
                storage_from_string(storage_uri, socket_timeout=0.5, socket_connect_timeout=0.5)
            )
            if self.shared
            else None
        )
        self._local = LocalWindows([(i.amount, i.get_expiry()) for i in self.items])
        self._degraded = False

    def hit(self, key: str) -> int | None:
        """Count one request of ``key``; None if within every limit, else the seconds until
        the window that refused it ends."""
        if self._redis is None:
            return self._local.hit(key)
        try:
            for item in self.items:
                if not self._redis.hit(item, "pdp", key):
                    reset = self._redis.get_window_stats(item, "pdp", key).reset_time
                    return max(1, math.ceil(reset - time.time()))
        except Exception as exc:  # redis-py raises many kinds (connection, timeout, response)
            if not self._degraded:
                log.warning("rate limit store unavailable, counting in memory: %s", exc)
                self._degraded = True
            return self._local.hit(key)
        self._degraded = False
        return None


class LocalWindows:
    """Fixed windows counted in this process (one worker): the ``memory://`` store, and the
    fallback when Redis fails. ``limits``' own memory store starts a timer thread to expire
    its keys, which cost 20 µs a request here; this costs under 1 µs."""

    def __init__(
        self, limits: list[tuple[int, int]], clock: Callable[[], float] = time.time
    ) -> None:
        self._limits = limits  # (amount, window seconds)
        self._clock = clock
        self._counts: dict[tuple[str, int], tuple[int, int]] = {}  # (key, i) -> (window, n)
        self._lock = threading.Lock()

    def hit(self, key: str) -> int | None:
        """As ``RateLimiter.hit``."""
        now = self._clock()
        with self._lock:
            if len(self._counts) > 100_000:  # bounded memory: forget old windows
                self._counts = {
                    k: v
                    for k, v in self._counts.items()
                    if v[0] == int(now // self._limits[k[1]][1])
                }
            for i, (amount, seconds) in enumerate(self._limits):
                window = int(now // seconds)
                start, count = self._counts.get((key, i), (window, 0))
                if start != window:
                    count = 0
                if count >= amount:
                    return max(1, math.ceil((window + 1) * seconds - now))
                self._counts[(key, i)] = (window, count + 1)
        return None
