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


# Seconds added to the real time: 0 except under PDP_CLOCK_START (tests of midnight), set once
# at start-up by ``start_clock_at``.
_offset = 0.0


def start_clock_at(moment: str) -> None:
    """Make this process's clock read ``moment`` (ISO 8601 with an offset) now, and run on from
    there in real time. For tests of time passing (midnight in Europe/Paris)."""
    global _offset
    try:
        start = dt.datetime.fromisoformat(moment)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date-time: {moment!r}") from None
    if start.tzinfo is None:
        raise ValueError(f"the date-time needs an offset (e.g. +01:00): {moment!r}")
    _offset = start.timestamp() - time.time()


def paris_now() -> dt.datetime:
    """The current moment in Europe/Paris (shifted by PDP_CLOCK_START, if set)."""
    return dt.datetime.fromtimestamp(time.time() + _offset, PARIS)


def unix_now() -> float:
    """The current Unix time (shifted by PDP_CLOCK_START, if set): a float, for hot paths."""
    return time.time() + _offset


def utc_now() -> dt.datetime:
    """The current moment in UTC (shifted by PDP_CLOCK_START, if set): for stored instants."""
    return paris_now().astimezone(dt.UTC)


def paris_day(ts: float) -> dt.date:
    """The calendar day in Europe/Paris of the moment ``ts`` (seconds since the epoch, as
    ``time.time()`` gives them; shifted by PDP_CLOCK_START like ``paris_now``)."""
    return dt.datetime.fromtimestamp(ts + _offset, PARIS).date()


def paris_today() -> dt.date:
    """Return today's calendar day in Europe/Paris."""
    return paris_now().date()


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
