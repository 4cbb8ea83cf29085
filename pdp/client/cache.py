"""The client's opt-in local cache: a few seconds, and never across a policy revision."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

V = TypeVar("V")

_PARIS = ZoneInfo("Europe/Paris")


def paris_today() -> str:
    """Today in Europe/Paris, the day the server decides on when a question names none."""
    return dt.datetime.now(_PARIS).date().isoformat()


class RevisionCache(Generic[V]):
    """Answers kept at most ``ttl`` seconds, and only while no newer policy revision has been
    seen: every answer the client receives reports the revision it was decided at, and as soon
    as one reports a newer revision than a cached answer's, that answer is no longer served.
    An answer about "today" (no day asked) is not served after midnight in Europe/Paris.
    At most ``max_entries`` answers, the least recently used dropped first. Thread-safe."""

    def __init__(
        self,
        ttl: float,
        max_entries: int = 10_000,
        *,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], str] | None = None,
    ) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._today = today or paris_today
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[V, int, str | None, float]] = OrderedDict()
        self.latest_revision = 0
        self.hits = 0
        self.misses = 0

    def saw(self, revision: int | None) -> None:
        """Records a revision reported by the server (answers older than it become stale)."""
        if revision is not None and revision > self.latest_revision:
            with self._lock:
                self.latest_revision = max(self.latest_revision, revision)

    def get(self, key: Hashable, *, min_revision: int | None, asked_day: str | None) -> V | None:
        """The cached answer, or None if absent, expired, older than the latest revision seen
        or than ``min_revision``, or about a "today" that has passed."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            value, revision, day, stored = entry
            stale = (
                self._clock() - stored >= self.ttl
                or revision < self.latest_revision
                or (min_revision is not None and revision < min_revision)
                or (asked_day is None and day != self._today())
            )
            if stale:
                del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: V, revision: int, day: str | None) -> None:
        """Keeps ``value``, decided at ``revision`` for ``day``."""
        self.saw(revision)
        with self._lock:
            self._entries[key] = (value, revision, day, self._clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forgets every answer."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
