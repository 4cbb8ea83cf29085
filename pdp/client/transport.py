"""How the client talks HTTP: a narrow ``Transport`` protocol and its urllib3 implementation.

Tests replace the transport with a fake at this boundary (as httpx's mock transport does)
rather than patching the client's internals."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from pdp.client.errors import PdpTimeout, PdpUnavailable

try:  # W3C trace context of the caller's current span, when OpenTelemetry is installed
    from opentelemetry.propagate import inject as _inject_trace
except ImportError:  # pragma: no cover - depends on the environment
    _inject_trace = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class RawResponse:
    """An HTTP answer: status, content type and body bytes."""

    status: int
    content_type: str
    body: bytes


class Transport(Protocol):
    """Sends one request. Raises ``PdpUnavailable`` (no connection) or ``PdpTimeout``."""

    def send(self, method: str, path: str, body: bytes | None) -> RawResponse: ...

    def close(self) -> None: ...


class Urllib3Transport:
    """A pool of keep-alive connections to one base URL (thread-safe), with a timeout per
    attempt and bounded retries on connection errors only: a refused or reset connection is
    tried again ``retries`` times (pauses of ``backoff``, doubling); a timeout or any HTTP
    answer, even a 5xx, is never retried. With OpenTelemetry installed, each request carries
    the caller's current trace (``traceparent``), so the service's spans join it."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        retries: int,
        backoff: float = 0.05,
        pool_size: int = 10,
        user_agent: str = "pdp-client",
    ) -> None:
        url = urllib3.util.parse_url(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        self._prefix = (url.path or "").rstrip("/")
        self._pool = urllib3.connection_from_url(
            f"{url.scheme}://{url.netloc}",
            maxsize=pool_size,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
        )
        self._headers = {
            "X-Api-Key": api_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self._retries = retries
        self._backoff = backoff

    def send(self, method: str, path: str, body: bytes | None) -> RawResponse:
        """One request, retried on connection errors only."""
        attempt = 0
        headers = self._headers
        if _inject_trace is not None:  # the caller's trace continues in the service's spans
            carrier: dict[str, str] = {}
            _inject_trace(carrier)
            if carrier:
                headers = {**headers, **carrier}
        while True:
            try:
                response = self._pool.urlopen(
                    method,
                    self._prefix + path,
                    body=body,
                    headers=headers,
                    retries=False,
                    redirect=False,
                    preload_content=True,
                )
            except (NewConnectionError, ProtocolError) as exc:
                # Refused, reset, or a kept-alive connection the server had closed: the request
                # was not answered, so asking again is safe (checks change nothing).
                if attempt >= self._retries:
                    raise PdpUnavailable(str(exc)) from exc
                time.sleep(self._backoff * (2**attempt))
                attempt += 1
                continue
            except (ReadTimeoutError, ConnectTimeoutError) as exc:
                # NewConnectionError derives from ConnectTimeoutError: caught above first.
                raise PdpTimeout(str(exc)) from exc
            except HTTPError as exc:  # anything else urllib3 raises: no connection to use
                raise PdpUnavailable(str(exc)) from exc
            except OSError as exc:
                raise PdpUnavailable(str(exc)) from exc
            return RawResponse(
                response.status, response.headers.get("Content-Type", ""), response.data
            )

    def close(self) -> None:
        """Closes the pooled connections."""
        self._pool.close()
