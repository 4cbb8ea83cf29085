"""Retention of the decision log (R-CNIL-10..12): what is older than the retention goes.

The log holds the current month (Europe/Paris) and the ``months - 1`` months before it: with the
default 12, on 2 December 2026 it holds everything from 1 January 2026, and nothing older. So
no entry is ever kept longer than ``months`` months (at least ``months - 1``), whole months at a
time, the same on both backends.

- PostgreSQL (``decision_log`` partitioned by month, migration 0008): every partition of a month
  before the cutoff is dropped, and the rare older entries that reached the default partition
  are deleted; partitions for this month and the next ``AHEAD`` are made beforehand. One round
  holds an advisory lock: two servers never prune at once, the second skips its round.
- SQLite (and an unpartitioned PostgreSQL table): the older entries are deleted in batches of
  ``pdp.adapters.sql.partitions.DELETE_BATCH``, each batch its own transaction.

Only the decision log is pruned. The audit trail of rights and the last uses are kept: the trail
answers "who could see X on day D" for any past day (R-TIME-2) and is hash-chained (removing a
record would break it); see the README, "Retention".
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, text

from pdp.adapters.sql import partitions
from pdp.adapters.sql.partitions import Month
from pdp.core.clock import paris_today
from pdp.core.config import Settings
from pdp.observability import metrics

log = logging.getLogger("pdp.decisions")

AHEAD = 2  # months whose partitions exist before they start
_LOCK = 0x70647072756E65  # the advisory lock of a pruning round ("pdprune")


@dataclass
class PruneReport:
    """What one round did (or, dry, would do)."""

    cutoff: dt.date  # entries logged before this day (midnight, Europe/Paris) go
    partitioned: bool
    dropped: list[str] = field(default_factory=list)  # partitions (PostgreSQL)
    # Rows deleted one by one (SQLite; PostgreSQL's default partition); dry: every row to go.
    deleted: int = 0
    created: list[str] = field(default_factory=list)  # partitions made ahead
    skipped: bool = False  # another server held the round's lock
    dry_run: bool = False

    def describe(self) -> str:
        """One line for the command line and the logs."""
        if self.skipped:
            return "another server is pruning the decision log now: nothing done"
        parts = [f"cutoff {self.cutoff.isoformat()}"]
        dropped = f" ({', '.join(self.dropped)})" if self.dropped else ""
        if self.dry_run:
            if self.partitioned:
                parts.append(f"would drop {len(self.dropped)} monthly partitions{dropped}")
            parts.append(f"{self.deleted} decisions would go in all")
        else:
            if self.partitioned:
                parts.append(f"dropped {len(self.dropped)} monthly partitions{dropped}")
            parts.append(f"deleted {self.deleted} decisions one by one")
        if self.created:
            parts.append(f"made partitions {', '.join(self.created)}")
        return "decision log retention: " + "; ".join(parts)


def cutoff_month(today: dt.date, months: int) -> Month:
    """The first month kept: the log holds it and every month after it (R-CNIL-10)."""
    if months < 1:
        raise ValueError(f"retention of {months} months: at least 1")
    return Month.of(today).plus(1 - months)


class Retention:
    """Prunes the decision log to ``months`` months (``prune``); every ``interval`` seconds
    from a daemon thread once started (``interval`` 0: never)."""

    def __init__(
        self,
        db: Engine,
        months: int,
        *,
        interval: float = 3600.0,
        today: Callable[[], dt.date] = paris_today,
    ) -> None:
        cutoff_month(dt.date(2000, 1, 1), months)  # refuses a bad number at once
        self.db = db
        self.months = months
        self.interval = interval
        self.today = today
        self._stop = threading.Event()
        self._thread_pid: int | None = None
        self._lock = threading.Lock()

    def prune(self, *, dry_run: bool = False) -> PruneReport:
        """Remove every entry logged before the cutoff month; make the partitions ahead. A dry
        run changes nothing and says what would go."""
        today = self.today()
        first = cutoff_month(today, self.months)
        with self.db.connect() as conn:
            partitioned = partitions.is_partitioned(conn)
        report = PruneReport(first.first_day, partitioned, dry_run=dry_run)
        if dry_run:
            with self.db.connect() as conn:
                if partitioned:
                    report.dropped = [m.partition for m in partitions.months(conn) if m < first]
                report.deleted = partitions.count_before(conn, first.start_us)
            return report
        if partitioned:
            with self.db.begin() as conn:
                if not _locked(conn):
                    report.skipped = True
                    return report
                wanted = [Month.of(today).plus(n) for n in range(AHEAD + 1)]
                report.created = [m.partition for m in partitions.ensure_months(conn, wanted)]
                report.dropped = [m.partition for m in partitions.drop_months_before(conn, first)]
        table = partitions.DEFAULT_PARTITION if partitioned else partitions.TABLE
        while True:  # batches, each committed: the shipper never waits long behind one
            with self.db.begin() as conn:
                deleted = partitions.delete_batch_before(conn, first.start_us, table)
            report.deleted += deleted
            if deleted < partitions.DELETE_BATCH:
                return report

    def start(self) -> None:
        """Prune every ``interval`` seconds from a daemon thread of this process (once per
        process, like ``pdp.records.checkpoints.CheckpointWriter.start``); 0: never."""
        if self.interval <= 0:
            return
        with self._lock:
            if self._thread_pid == os.getpid():
                return
            self._thread_pid = os.getpid()
        threading.Thread(target=self._run, name="pdp-log-retention", daemon=True).start()

    def stop(self) -> None:
        """Stop the thread after its current round."""
        self._stop.set()

    def _run(self) -> None:
        self.prune_logged()  # at once: a server started after a long stop catches up
        while not self._stop.wait(self.interval):
            self.prune_logged()

    def prune_logged(self) -> PruneReport | None:
        """``prune``, its failure logged instead of raised (the thread's round)."""
        try:
            report = self.prune()
        except Exception as exc:  # the database down, a lock not granted: next round
            metrics.LOG_PRUNE_ERRORS.inc()
            log.warning("decision log retention failed, will retry: %s", exc)
            return None
        metrics.LOG_PRUNE_OK.set(time.time())
        if report.dropped or report.deleted or report.created:
            log.info("%s", report.describe())
        return report


def _locked(conn: Connection) -> bool:
    """Take this round's advisory lock (held until the transaction ends), with short lock
    waits: a drop queued behind a long read would hold up the shipper's inserts."""
    conn.execute(text("SET LOCAL lock_timeout = '2s'"))
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK}).scalar())


def open_retention(settings: Settings, db: Engine) -> Retention:
    """The service's retention from its settings (``PDP_DECISION_LOG_RETENTION_MONTHS``,
    ``PDP_DECISION_LOG_PRUNE_INTERVAL``)."""
    return Retention(
        db, settings.decision_log_retention_months, interval=settings.decision_log_prune_interval
    )
