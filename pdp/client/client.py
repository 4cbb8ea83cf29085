"""``Client``: the front-ends' way to ask the decision point, failing closed."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from pdp.client.cache import RevisionCache
from pdp.client.errors import (
    CLIENT_ERROR,
    MESSAGES,
    PdpBadResponse,
    PdpError,
    PdpResponseError,
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

log = logging.getLogger("pdp.client")

T = TypeVar("T")
Query = CheckQuery | Mapping[str, Any]


class Client:
    """Asks the decision point at ``base_url`` with the API key ``api_key``.

    Every method fails closed: a refused connection, a timeout, an error answer or an unreadable
    one gives a *denied* decision (or an empty permissions listing) whose reason code says why
    (``PDP_UNAVAILABLE``, ``PDP_TIMEOUT``, ``PDP_BAD_RESPONSE``, or the server's code such as
    ``INVALID_API_KEY``), never an exception. With ``strict=True`` these raise ``PdpError``
    instead; a denial by the rules is an answer, and never raises.

    Connections are kept alive and reused (a pool of ``pool_size``; the client is thread-safe).
    ``timeout`` (seconds) bounds the connection and the wait for the answer of each attempt;
    only connection errors are tried again, ``retries`` times. ``cache_ttl`` > 0 turns on a
    local cache of answers for that many seconds, dropped as soon as the server reports a newer
    policy revision (see ``RevisionCache``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 2.0,
        retries: int = 2,
        strict: bool = False,
        cache_ttl: float = 0.0,
        cache_size: int = 10_000,
        batch_max: int = 1000,
        pool_size: int = 10,
        transport: Transport | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if retries < 0 or batch_max <= 0:
            raise ValueError("retries must be >= 0 and batch_max > 0")
        self.strict = strict
        self.batch_max = batch_max
        self._transport: Transport = transport or Urllib3Transport(
            base_url, api_key, timeout=timeout, retries=retries, pool_size=pool_size
        )
        self._latest_revision = 0
        self._revision_lock = threading.Lock()
        self._decisions: RevisionCache[Decision] | None = None
        self._listings: RevisionCache[Permissions] | None = None
        if cache_ttl > 0:
            self._decisions = RevisionCache(cache_ttl, cache_size)
            self._listings = RevisionCache(cache_ttl, cache_size)

    # -- the questions -------------------------------------------------------------------

    def check(
        self,
        user: str,
        service: str,
        role: str | None = None,
        caf: str | None = None,
        at: str | None = None,
        *,
        feature: str | None = None,
        allocataire: str | None = None,
        min_revision: int | None = None,
    ) -> Decision:
        """May ``user`` use ``service`` (with ``role``, or opening ``feature``, for ``caf``) on
        ``at`` (a day ``YYYY-MM-DD``, default today)? ``allocataire``: the family file the check
        is about, for the decision log (such a check is never answered from the cache: the
        opening of a file must reach the log). ``min_revision``: not before this policy
        revision (the one a write returned)."""
        query = CheckQuery(user, service, role, caf, at, feature, allocataire)
        cached = self._cached_decision(query, min_revision)
        if cached is not None:
            return cached
        body = query.body()
        if min_revision is not None:
            body["min_revision"] = min_revision
        return self._guard(lambda: self._decided(query, self._post("/v1/check", body)))

    def check_batch(
        self, checks: Iterable[Query], *, min_revision: int | None = None
    ) -> list[Decision]:
        """Several checks (``CheckQuery`` or dicts with the same keys), answered in order.
        Sent ``batch_max`` at a time; an item the server refuses (an unknown role…) is denied
        with that item's error code, the others are decided."""
        queries = [q if isinstance(q, CheckQuery) else CheckQuery(**q) for q in checks]
        answers: list[Decision | None] = [self._cached_decision(q, min_revision) for q in queries]
        missing = [i for i, a in enumerate(answers) if a is None]
        for start in range(0, len(missing), self.batch_max):
            chunk = missing[start : start + self.batch_max]
            asked = [queries[i] for i in chunk]
            decided = self._guard_many(partial(self._batch, asked, min_revision), len(chunk))
            for i, decision in zip(chunk, decided, strict=True):
                answers[i] = decision
        return [a for a in answers if a is not None]

    def permissions(
        self, user: str, at: str | None = None, *, min_revision: int | None = None
    ) -> Permissions:
        """Every service and role ``user`` may use on ``at`` (R-DEC-4), for the welcome page and
        menus. Fails closed to an empty listing whose ``error`` says why."""
        key = ("permissions", user, at)
        if self._listings is not None:
            hit = self._listings.get(key, min_revision=min_revision, asked_day=at)
            if hit is not None:
                return hit
        params: dict[str, Any] = {}
        if at is not None:
            params["at"] = at
        if min_revision is not None:
            params["min_revision"] = min_revision
        path = f"/v1/users/{quote(user, safe='')}/permissions"
        if params:
            path += "?" + urlencode(params)

        def call() -> Permissions:
            listing = _permissions(user, self._call("GET", path, None))
            if self._listings is not None:
                self._listings.put(key, listing, listing.revision or 0, listing.at)
            self._saw(listing.revision)
            return listing

        try:
            return call()
        except PdpError as exc:
            if self.strict:
                raise
            self._log_failure(exc)
            return Permissions(user, error=Reason(exc.code, exc.message))
        except Exception as exc:  # a bug here must still fail closed
            if self.strict:
                raise PdpError(CLIENT_ERROR, MESSAGES[CLIENT_ERROR]) from exc
            log.exception("pdp client error")
            return Permissions(user, error=Reason(CLIENT_ERROR, MESSAGES[CLIENT_ERROR]))

    def admin_check(self, actor: str, action: str, target: str) -> Decision:
        """May ``actor`` do the administrative ``action`` (``group.roles.edit``…) on ``target``
        (``group:<organisation>/<code>``…)? (R-ADM-7), to show or hide a button. Never cached."""
        body = {"actor": actor, "action": action, "target": target}
        return self._guard(lambda: _decision(self._post("/v1/admin/check", body)))

    # -- plumbing ------------------------------------------------------------------------

    @property
    def latest_revision(self) -> int:
        """The newest policy revision the server has reported to this client (0: none yet)."""
        return self._latest_revision

    def close(self) -> None:
        """Closes the pooled connections."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cached_decision(self, query: CheckQuery, min_revision: int | None) -> Decision | None:
        if self._decisions is None or query.allocataire is not None:
            return None
        hit = self._decisions.get(query, min_revision=min_revision, asked_day=query.at)
        return None if hit is None else replace(hit, cached=True)

    def _decided(self, query: CheckQuery, data: Any) -> Decision:
        decision = _decision(data)
        if (
            self._decisions is not None
            and decision.revision is not None
            and query.allocataire is None
        ):
            self._decisions.put(query, decision, decision.revision, decision.at)
        self._saw(decision.revision)
        return decision

    def _saw(self, revision: int | None) -> None:
        if revision is not None and revision > self._latest_revision:
            with self._revision_lock:
                self._latest_revision = max(self._latest_revision, revision)
        for cache in (self._decisions, self._listings):
            if cache is not None:
                cache.saw(revision)

    def _batch(self, queries: list[CheckQuery], min_revision: int | None) -> list[Decision]:
        body: dict[str, Any] = {"checks": [q.body() for q in queries]}
        if min_revision is not None:
            body["min_revision"] = min_revision
        data = self._post("/v1/check/batch", body)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list) or len(results) != len(queries):
            raise PdpBadResponse(200, "batch results do not match the checks")
        out = []
        for query, item in zip(queries, results, strict=True):
            if isinstance(item, dict) and "error" in item:
                code, message = _error_fields(item)
                out.append(Decision(False, Reason(code, message)))
            else:
                out.append(self._decided(query, item))
        return out

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._call("POST", path, json.dumps(body, ensure_ascii=False).encode())

    def _call(self, method: str, path: str, body: bytes | None) -> Any:
        return _parse(self._transport.send(method, path, body))

    def _guard(self, call: Callable[[], Decision]) -> Decision:
        return self._guard_many(lambda: [call()], 1)[0]

    def _guard_many(self, call: Callable[[], list[Decision]], count: int) -> list[Decision]:
        """Runs ``call``; on failure, ``count`` denials with the failure's reason (or raises,
        in strict mode)."""
        try:
            return call()
        except PdpError as exc:
            if self.strict:
                raise
            self._log_failure(exc)
            return [Decision(False, Reason(exc.code, exc.message))] * count
        except Exception as exc:  # a bug here must still fail closed
            if self.strict:
                raise PdpError(CLIENT_ERROR, MESSAGES[CLIENT_ERROR]) from exc
            log.exception("pdp client error")
            return [Decision(False, Reason(CLIENT_ERROR, MESSAGES[CLIENT_ERROR]))] * count

    @staticmethod
    def _log_failure(exc: PdpError) -> None:
        log.warning(
            "pdp call failed, denied: %s %s", exc.code, getattr(exc, "detail", "") or exc.status
        )


def _parse(raw: RawResponse) -> Any:
    """The JSON of a 200 answer; ``PdpResponseError`` for an error answer."""
    try:
        data = json.loads(raw.body) if "json" in raw.content_type else None
    except ValueError:
        data = None
    if raw.status == 200 and data is not None:
        return data
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code, message = _error_fields(data)
        raise PdpResponseError(code, message, raw.status)
    raise PdpBadResponse(raw.status, f"HTTP {raw.status}, {raw.content_type or 'no type'}")


def _error_fields(data: Mapping[str, Any]) -> tuple[str, str]:
    error = data["error"]
    if not isinstance(error, Mapping):
        raise PdpBadResponse(None, "error is not an object")
    code, message = error.get("code"), error.get("message")
    if not isinstance(code, str) or not isinstance(message, str):
        raise PdpBadResponse(None, "error without code or message")
    return code, message


def _reason(data: Any) -> Reason:
    return Reason(str(data["code"]), str(data["message"]))


def _grants(items: Any) -> tuple[Grant, ...]:
    return tuple(Grant(g["group"], g["service"], g["role"], g["source"]) for g in items)


def _decision(data: Any) -> Decision:
    """A decision from its JSON; anything but a JSON ``true`` in ``allowed`` denies."""
    try:
        allowed = data["allowed"]
        if not isinstance(allowed, bool):
            raise TypeError("allowed is not a boolean")
        revision = data["revision"]
        if isinstance(revision, bool) or not isinstance(revision, int):
            raise TypeError("revision is not an integer")
        return Decision(
            allowed=allowed,
            reason=_reason(data["reason"]),
            grants=_grants(data.get("grants", ())),
            decision_id=str(data["decision_id"]),
            revision=revision,
            at=data.get("at"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PdpBadResponse(200, f"not a decision: {exc}") from exc


def _permissions(user: str, data: Any) -> Permissions:
    try:
        services = tuple(
            ServicePermissions(
                service=s["service"],
                roles=tuple(s["roles"]),
                cafs=tuple(s["cafs"]),
                grants=_grants(s.get("grants", ())),
                features=None if s.get("features") is None else tuple(s["features"]),
            )
            for s in data["services"]
        )
        revision = data["revision"]
        if isinstance(revision, bool) or not isinstance(revision, int):
            raise TypeError("revision is not an integer")
        return Permissions(
            user=user,
            services=services,
            at=data.get("at"),
            revision=revision,
            decision_id=str(data["decision_id"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PdpBadResponse(200, f"not a permissions listing: {exc}") from exc
