"""The identity provider's signing keys (a JWKS), cached in the process.

Keys come from ``PDP_JWT_JWKS_URL``, or from the ``jwks_uri`` of the provider's discovery
document (``PDP_JWT_ISSUER`` + ``/.well-known/openid-configuration``). They are read once at
start-up (a provider down then is no configuration error: the first token asks again), then:

- a token whose key is cached is checked without any network call; when the set is older than
  ``PDP_JWT_JWKS_REFRESH`` seconds, one thread reads it again in the background while requests
  go on with the keys they have (a key the provider dropped stops being accepted then);
- a token naming an unknown ``kid`` (the provider rotated its keys) makes the set be read again
  at once, at most once every ``PDP_JWT_JWKS_MIN_INTERVAL`` seconds per process, whatever the
  number of such tokens (random kids cost one fetch per interval, not one per request);
- while the provider cannot be reached, the cached keys keep working; a token with an unknown
  key is refused with ``IdentityProviderUnavailable`` (503: the token may be good, retry later).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import jwt

from pdp.core.errors import ConfigurationError, Unauthorized, Unavailable

log = logging.getLogger("pdp.identity")

MIN_INTERVAL = 10.0  # seconds between two reads of the set asked for by unknown kids
TIMEOUT = 5.0  # seconds a read of the provider may take
MAX_BYTES = 1_048_576  # a discovery document or key set larger than this is refused

Fetch = Callable[[str], Any]


class IdentityProviderUnavailable(Unavailable):
    """The token names a key we do not have and the provider cannot be asked for it."""

    code = "IDENTITY_PROVIDER_UNAVAILABLE"
    retry_after: int = 10  # seconds (the Retry-After header): the next read allowed


def fetch_json(url: str) -> Any:
    """GET ``url`` and parse its JSON body (a bounded read with a timeout)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        body = response.read(MAX_BYTES + 1)
    if len(body) > MAX_BYTES:
        raise ValueError(f"{url}: answer larger than {MAX_BYTES} bytes")
    return json.loads(body)


def check_url(name: str, url: str, production: bool) -> None:
    """Refuse at start-up a URL that is not http(s), or plain http in production."""
    if not url.startswith(("https://", "http://")):
        raise ConfigurationError(f"{name} must be an https:// URL, not {url!r}")
    if production and not url.startswith("https://"):
        raise ConfigurationError(f"{name} must be an https:// URL in production, not {url!r}")


class JwksCache:
    """The provider's public keys by ``kid``, filtered to the allowed algorithms."""

    def __init__(
        self,
        *,
        jwks_url: str,
        issuer: str,
        algorithms: tuple[str, ...],
        max_age: float,
        min_interval: float = MIN_INTERVAL,
        fetch: Fetch = fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jwks_url = jwks_url  # "" until discovery has named it
        self._issuer = issuer
        self._algorithms = algorithms
        self._max_age = max_age
        self._min_interval = min_interval
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful read
        self._tried_at: float | None = None  # last attempt, successful or not
        self._failed = False  # whether the last attempt failed
        self._lock = threading.Lock()
        self._background: threading.Thread | None = None

    # -- reading the provider ----------------------------------------------------------------

    def refresh(self) -> bool:
        """Read the key set now; return whether it succeeded (the old keys stay otherwise)."""
        self._tried_at = self._clock()
        try:
            url = self._jwks_url or self._discover()
            keys = self._parse(self._fetch(url))
        except ConfigurationError:
            raise
        except Exception as exc:  # unreachable, bad TLS, bad JSON: keep what we have
            self._failed = True
            log.warning("identity provider: cannot read the signing keys: %s", exc)
            return False
        self._jwks_url = url
        self._keys = keys
        self._fetched_at = self._clock()
        self._failed = False
        return True

    def _discover(self) -> str:
        base = self._issuer.rstrip("/")
        document = self._fetch(f"{base}/.well-known/openid-configuration")
        if not isinstance(document, dict):
            raise ValueError("the discovery document is not a JSON object")
        if document.get("issuer") != self._issuer:
            # OpenID Connect Discovery 1.0 §4.3: the issuer must be the one asked for.
            raise ConfigurationError(
                f"PDP_JWT_ISSUER is {self._issuer!r} but the provider's discovery document "
                f"names {document.get('issuer')!r}"
            )
        uri = document.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
            raise ValueError("the discovery document has no usable jwks_uri")
        return uri

    def _parse(self, document: Any) -> dict[str, jwt.PyJWK]:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("the key set is not a JSON object with a list of keys")
        keys: dict[str, jwt.PyJWK] = {}
        for index, data in enumerate(document["keys"]):
            if not isinstance(data, dict) or data.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(data)
            except jwt.PyJWTError:  # a kind of key we do not know: not ours to use
                continue
            if key.algorithm_name in self._algorithms:
                keys[str(data.get("kid", f"#{index}"))] = key
        return keys

    # -- answering a token -------------------------------------------------------------------

    def key(self, kid: str | None) -> jwt.PyJWK:
        """The key a token's header names; raise Unauthorized or IdentityProviderUnavailable."""
        keys = self._keys
        found = self._pick(keys, kid)
        if found is not None:
            self._refresh_if_old()
            return found
        with self._lock:
            found = self._pick(self._keys, kid)  # another thread may have read the set meanwhile
            if found is None and self._may_try():
                self.refresh()
                found = self._pick(self._keys, kid)
            if found is not None:
                return found
            if self._failed:
                unavailable = IdentityProviderUnavailable(
                    "Fournisseur d'identité injoignable et clé du jeton inconnue : réessayer "
                    "plus tard."
                )
                unavailable.retry_after = max(1, math.ceil(self._min_interval))
                raise unavailable
        raise Unauthorized(
            f"Jeton invalide : clé de signature inconnue ({kid!r}).", "UNKNOWN_SIGNING_KEY"
        )

    @staticmethod
    def _pick(keys: dict[str, jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return keys.get(kid)
        # No kid: acceptable only when there is no choice to make.
        return next(iter(keys.values())) if len(keys) == 1 else None

    def _may_try(self) -> bool:
        return self._tried_at is None or self._clock() - self._tried_at >= self._min_interval

    def _refresh_if_old(self) -> None:
        """Start one background read when the set is older than its max age."""
        fetched = self._fetched_at
        if fetched is not None and self._clock() - fetched < self._max_age:
            return
        if not self._may_try() or (self._background and self._background.is_alive()):
            return
        with self._lock:
            if self._background and self._background.is_alive():
                return
            self._tried_at = self._clock()  # no second thread before this one has tried
            self._background = threading.Thread(
                target=self._refresh_quietly, name="pdp-jwks-refresh", daemon=True
            )
            self._background.start()

    def _refresh_quietly(self) -> None:
        try:
            with self._lock:
                self.refresh()
        except ConfigurationError as exc:  # the provider changed its issuer under us
            self._failed = True
            log.error("identity provider: %s", exc.message)

    @property
    def kids(self) -> tuple[str, ...]:
        """The ids of the keys held (for tests and diagnostics)."""
        return tuple(self._keys)
