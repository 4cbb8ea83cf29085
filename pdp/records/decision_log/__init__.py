"""The decision log: every decision, on disk before its answer leaves, then in the database.

Each process appends its entries, one JSON line each, to its own *segment* file in
``PDP_DECISION_LOG_DIR`` (``WalLog.record``: a ``write`` system call on the request's thread,
before the response is sent). A flusher thread makes them durable in groups (one ``fdatasync``
for every entry written since the last one, "group commit"); a shipper copies them to the
``decision_log`` table, which the auditors' query API reads, and deletes a segment once it is
fully shipped. Under ``pdp serve`` the shipper is one process of its own for the whole instance
(``pdp.records.decision_log.process``), started and supervised by the gunicorn master: the
workers only append, and it ships their live segments up to their last complete line. Any other
process that logs (the command line, an app built by ``create_app`` outside gunicorn) ships its
own segments from a thread. Durability modes (``PDP_DECISION_LOG``):

- ``buffered`` (default): the entry is in the operating system's page cache before the response
  is sent, and on disk within ``PDP_DECISION_LOG_FLUSH_MS``. A crash of the process (``kill -9``,
  out of memory) loses nothing; a crash of the machine or a power cut loses at most the entries of
  the last ``PDP_DECISION_LOG_FLUSH_MS`` milliseconds.
- ``sync``: the response waits until its entry is on disk (``fdatasync``). Nothing whose answer
  reached a caller is lost, even on a power cut.
- ``off``: nothing is logged (benchmarks only).

A decision whose entry cannot be written (disk full, I/O error, or ``sync`` waiting more than
``sync_timeout``) is not answered: the caller gets 503 ``DECISION_LOG_UNAVAILABLE``. Each process
holds an exclusive ``flock`` on its segments; a segment nobody holds belongs to a process that
died, and a shipper takes it over (``Shipper.ship_once``; those of ``pdp serve``'s workers only
the instance's shipper): after a crash, the restarted service ships what was not shipped yet.
Shipping is idempotent (the decision id and its time are the table's key), so a segment shipped
twice after a crash adds nothing twice. A write that fails halfway (disk full) is cut back off
and answered 503; the instance's shipper, which reads a live segment as it grows, may have
shipped the complete lines of that write in between (the log may then hold a decision that was
not answered, never the reverse), and the worker's next entries go to a new segment.

One bad entry never blocks the log: an entry the shipper cannot read, or whose row the database
refuses (a NUL in PostgreSQL text, a number out of range, a wrong type, a constraint, whatever the
cause), is set aside in ``rejected.jsonl`` with its error, counted
(``pdp_decision_log_rejected_total``), and everything after it ships. A database that accepts no
row at all (down, unreachable, without the table) sets nothing aside: the entries wait on disk.

With ``PDP_DECISION_LOG_SYSLOG``, the shipper also delivers every entry to a syslog receiver (a
SIEM), under the same rule, with an offset of its own (``pdp.records.decision_log.syslog``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from pdp.records.decision_log.backlog import Backlog, backlog
from pdp.records.decision_log.process import ShipperLock, ShipperProcess, follow
from pdp.records.decision_log.shipper import Shipper, ShipReport
from pdp.records.decision_log.syslog import SyslogForwarder
from pdp.records.decision_log.wal import (
    MODES,
    REJECTED,
    SEGMENT_SUFFIX,
    DecisionLog,
    LogUnavailable,
    MemoryLog,
    OffLog,
    Segment,
    WalLog,
    new_decision_id,
)

__all__ = [
    "MODES",
    "REJECTED",
    "SEGMENT_SUFFIX",
    "Backlog",
    "DecisionLog",
    "LogUnavailable",
    "MemoryLog",
    "OffLog",
    "Segment",
    "ShipReport",
    "Shipper",
    "ShipperLock",
    "ShipperProcess",
    "WalLog",
    "backlog",
    "follow",
    "new_decision_id",
    "open_log",
    "open_shipper",
]


def open_log(settings: Any, db: Engine | None) -> tuple[DecisionLog, Shipper | None]:
    """The decision log the settings ask for, with its shipper (started in each process)."""
    if settings.decision_log == "off":
        return OffLog(), None
    if settings.decision_log not in MODES:
        from pdp.core.errors import ConfigurationError

        raise ConfigurationError(
            f"PDP_DECISION_LOG: {settings.decision_log!r} is not one of {', '.join(MODES)}"
        )
    wal = WalLog(
        settings.decision_log_dir,
        settings.decision_log,
        flush_interval=settings.decision_log_flush_ms / 1000,
    )
    if db is None:
        return wal, None
    shipper = open_shipper(settings, db, wal)
    wal.on_start(shipper.start)
    wal.on_close(shipper.last_round)
    return wal, shipper


def open_shipper(settings: Any, db: Engine, wal: WalLog | None = None) -> Shipper:
    """The shipper the settings ask for (syslog included); of ``wal``'s segments if given."""
    forwarder = None
    if settings.decision_log_syslog:
        forwarder = SyslogForwarder(settings.decision_log_syslog, settings.decision_log_syslog_ca)
    return Shipper(
        settings.decision_log_dir,
        db,
        wal,
        interval=settings.decision_log_ship_interval,
        forwarder=forwarder,
    )
