"""Calendar days in Europe/Paris (R-TIME-1)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

Clock = Callable[[], dt.date]

# Open-ended closing dates are stored as NULL and indexed as this ordinal: after every real day.
FOREVER = dt.date.max.toordinal() + 1


def paris_today() -> dt.date:
    """Return today's calendar day in Europe/Paris."""
    return dt.datetime.now(PARIS).date()


def is_open(day: dt.date, opens_on: dt.date, closes_on: dt.date | None) -> bool:
    """Return whether a record is open on ``day``: opening ≤ day < closing (R-TIME-1)."""
    return opens_on <= day and (closes_on is None or day < closes_on)


def ordinal_end(closes_on: dt.date | None) -> int:
    """Return the ordinal of a closing date, FOREVER when there is none."""
    return FOREVER if closes_on is None else closes_on.toordinal()
