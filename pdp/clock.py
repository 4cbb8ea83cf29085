"""Calendar days in Europe/Paris (R-TIME-1)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

Clock = Callable[[], dt.date]

# Open-ended closing dates are stored as NULL and indexed as this ordinal: after every real day.
FOREVER = dt.date.max.toordinal() + 1


def paris_today() -> dt.date:
    """Return today's calendar day in Europe/Paris."""
    return dt.datetime.now(PARIS).date()


def ordinal_end(closes_on: dt.date | None) -> int:
    """Return the ordinal of a closing date, FOREVER when there is none."""
    return FOREVER if closes_on is None else closes_on.toordinal()


class CachedToday:
    """``paris_today`` read at most once per ``ttl`` seconds: checks ask for today constantly."""

    def __init__(self, ttl: float = 1.0) -> None:
        self._ttl = ttl
        self._until = float("-inf")
        self._day = paris_today()
        self._ordinal = self._day.toordinal()

    def __call__(self) -> dt.date:
        """Return today in Europe/Paris (at most ``ttl`` seconds stale)."""
        return self.at(time.monotonic())[0]

    def at(self, now: float) -> tuple[dt.date, int]:
        """Return today and its ordinal, given the caller's ``time.monotonic()``."""
        if now >= self._until:
            self._day = paris_today()
            self._ordinal = self._day.toordinal()
            self._until = now + self._ttl
        return self._day, self._ordinal
