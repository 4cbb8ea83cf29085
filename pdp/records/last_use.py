"""Last use: for every (user, service, role), the last day an allowed check was made for it.

The decision log's shipper keeps the ``last_use`` table up to date (R-CNIL-1): with each batch of
decisions it inserts, in the same transaction, it upserts one row per (login, service, role) the
batch's allowed checks used, with the latest day. The table is never computed from the decision
log, and pruning the log leaves it whole (R-CNIL-2).

What counts as a use (R-CNIL-1):

- an allowed ``check`` (listings of rights and administrative decisions are not uses);
- of every (service, role) its grants name: the role asked, or, for a check of a service without
  a role or of a feature, each role that opened it;
- on the day the check was about, when that day is the day it was made (in Europe/Paris): a
  check about another day (an auditor's "could X use Y on day D?") is not a use.

``login`` is the user as the decision log holds it: a pseudonym when ``PDP_LOG_MASK`` masks users
(or an email-like login); ``last_uses`` is given the masker to find them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import LastUse
from pdp.core.clock import paris_day
from pdp.core.masking import Masker

Key = tuple[str, str, str]  # (login, service, role)

_SIZES = {c.name: getattr(c.type, "length", None) for c in LastUse.__table__.columns}
_CHUNK = 500  # logins per IN (...): well under every driver's limit of parameters
_SCAN = 20_000  # more logins than this: read the whole table once instead


def last_uses(
    session: Session, logins: Collection[str], *, masker: Masker | None = None
) -> dict[tuple[str, str, str], dt.date]:
    """The last day each (login, service, role) of ``logins`` was used, keyed by the login as
    given; a right never used has no key. With ``masker``, a login the decision log holds as a
    pseudonym is found by it."""
    wanted: dict[str, str] = {}  # as the table holds it -> as asked
    for login in logins:
        wanted[login] = login
        if masker is not None:
            wanted.setdefault(masker.mask_field("user", login), login)
    found: dict[Key, dt.date] = {}
    columns = select(LastUse.login, LastUse.service, LastUse.role, LastUse.day)
    if len(wanted) > _SCAN:  # a national report: one pass over the table costs less
        queries = [columns]
    else:
        stored = sorted(wanted)
        queries = [
            columns.where(LastUse.login.in_(stored[start : start + _CHUNK]))
            for start in range(0, len(stored), _CHUNK)
        ]
    for query in queries:
        for login, service, role, day in session.execute(query):
            asked = wanted.get(login)
            if asked is None:
                continue
            key = (asked, service, role)
            if key not in found or day > found[key]:
                found[key] = day
    return found


def uses_of(entry: Mapping[str, Any]) -> dict[Key, dt.date]:
    """The (login, service, role) one logged entry used, with its day; empty for anything but
    an allowed check made for the day it was about. Never raises on a well-formed entry; raises
    ValueError, KeyError or TypeError on a malformed one (the caller ignores it)."""
    if entry.get("kind") != "check" or entry.get("allowed") is not True:
        return {}
    login, at = entry.get("user"), entry.get("at")
    if not isinstance(login, str) or not login or not isinstance(at, str):
        return {}
    day = _day_of_second(int(entry["ts"]))
    if at != day.isoformat():
        return {}
    uses: dict[Key, dt.date] = {}
    for step in entry.get("grants") or ():
        service, role = step[1], step[2]
        if isinstance(service, str) and isinstance(role, str) and service and role:
            uses[(_cut("login", login), _cut("service", service), _cut("role", role))] = day
    return uses


@functools.lru_cache(maxsize=64)
def _day_of_second(second: int) -> dt.date:
    """The day in Europe/Paris of a second: the entries of a batch share a few seconds, and
    the time zone's arithmetic costs more than the rest of an entry's use."""
    return paris_day(float(second))


def read_uses(entry: Mapping[str, Any]) -> dict[Key, dt.date] | None:
    """``uses_of(entry)``, or None when there are none or the entry cannot be read (a last use
    never stops a decision from being logged)."""
    try:
        return uses_of(entry) or None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def merge(into: dict[Key, dt.date], uses: Mapping[Key, dt.date]) -> None:
    """Add ``uses`` to ``into``, keeping the latest day of each key."""
    for key, day in uses.items():
        if key not in into or day > into[key]:
            into[key] = day


class LastUseWriter:
    """The upsert the shipper runs with each batch of decisions, in the batch's transaction:
    one statement for the whole batch, a row's day only ever moves forward.

    It remembers what this process has committed (``committed``): a (login, service, role)
    already stored with this day is not upserted again, so in steady traffic a user's right
    costs one upsert a day per process, not one per batch. Remembered only after the commit
    (a rolled-back batch is upserted again with its next attempt), and forgotten past
    ``remember`` keys (about 40 MB at most: a shipper runs in every worker)."""

    def __init__(self, dialect: str, remember: int = 100_000) -> None:
        self._postgres = dialect == "postgresql"
        self._remember = remember
        self._stored: dict[Key, dt.date] = {}
        mark = "%s" if self._postgres else "?"
        table = LastUse.__tablename__
        self._upsert = (
            f"INSERT INTO {table} (login, service, role, day) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}) "
            "ON CONFLICT (login, service, role) DO UPDATE SET day = excluded.day "
            f"WHERE excluded.day > {table}.day"
        )

    def write(self, conn: Connection, uses: Mapping[Key, dt.date]) -> None:
        """Upsert ``uses`` on ``conn`` (inside the caller's transaction); nothing if empty."""
        if not uses:
            return
        # Sorted: two shippers upserting the same keys take their row locks in the same order.
        params = [
            (login, service, role, day if self._postgres else day.isoformat())
            for (login, service, role), day in sorted(uses.items())
        ]
        conn.exec_driver_sql(self._upsert, params)

    def uses(self, entries: Iterable[Mapping[str, Any]]) -> dict[Key, dt.date]:
        """The uses of ``entries`` not stored already by this process (malformed entries are
        skipped: a last use never stops a decision from being logged)."""
        return self.pending(read_uses(entry) for entry in entries)

    def pending(self, found: Iterable[Mapping[Key, dt.date] | None]) -> dict[Key, dt.date]:
        """The uses of a batch (each entry's, from ``read_uses``) not stored already by this
        process, merged (latest day of each key)."""
        batch: dict[Key, dt.date] = {}
        for uses in found:
            if uses:
                merge(batch, uses)
        stored = self._stored
        return {k: d for k, d in batch.items() if (s := stored.get(k)) is None or s < d}

    def committed(self, uses: Mapping[Key, dt.date]) -> None:
        """``uses`` are in the table (their transaction committed)."""
        if len(self._stored) + len(uses) > self._remember:
            self._stored.clear()
        merge(self._stored, uses)

    def write_entries(self, conn: Connection, entries: Iterable[Mapping[str, Any]]) -> None:
        """Upsert the uses of ``entries`` on ``conn`` (the caller calls ``committed`` with
        ``uses(entries)`` once its transaction commits, if it wants them remembered)."""
        self.write(conn, self.uses(entries))


def _cut(column: str, value: str) -> str:
    """A value that fits its column."""
    size = _SIZES[column]
    return value[:size] if size is not None and len(value) > size else value
