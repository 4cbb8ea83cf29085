"""Shipping the decision log to the database: segments copied into ``decision_log``, entries the
database refuses set aside in ``rejected.jsonl``, and the backlog that remains."""

from __future__ import annotations

import base64
import datetime as dt
import errno
import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from pdp.adapters.sql.database import checkpoint
from pdp.adapters.sql.models import DecisionRecord
from pdp.observability import metrics
from pdp.records.decision_log import files
from pdp.records.decision_log.backlog import append_rejected, directory_pending
from pdp.records.decision_log.entry import Row
from pdp.records.decision_log.syslog import SyslogForwarder
from pdp.records.decision_log.wal import (
    _LINE,
    REJECTED,
    SEGMENT_SUFFIX,
    SERVED_SUFFIX,
    Segment,
    WalLog,
    new_decision_id,
)
from pdp.records.last_use import Key, LastUseWriter, read_uses

log = logging.getLogger("pdp.decisions")

# -- shipping to the database -------------------------------------------------------------------


@dataclass
class ShipReport:
    """What one ``Shipper.ship_once`` did."""

    shipped: int = 0
    segments_done: int = 0
    orphans: int = 0
    forwarded: int = 0  # entries delivered to syslog (PDP_DECISION_LOG_SYSLOG)
    rejected: int = 0  # entries set aside in rejected.jsonl (unreadable, or refused)
    torn: int = 0  # torn last lines of orphans, dropped (never answered)


@dataclass
class _Line:
    """One line of a segment: where it starts, its bytes, and its row once it is read."""

    offset: int
    data: bytes
    row: Row | None = None
    uses: dict[Key, dt.date] | None = None  # the last uses it brings (R-CNIL-1)


_Reject = tuple[_Line, BaseException, str]  # a line set aside, its error, and the cause


class Shipper:
    """Copies logged entries from segment files to the ``decision_log`` table.

    ``ship_once`` ships this process's segments (from the ``WalLog`` given, if any) and every
    segment of the directory that no live process holds. ``start`` runs it every ``interval``
    seconds on a thread of the calling process.

    With ``served``, it is the instance's shipper (``pdp serve``'s shipper process, or
    ``pdp logs ship --follow``; the caller holds ``ShipperLock``): it also ships the segments
    of the workers that are alive, up to their last complete line, and only it ships a
    ``*.served.log`` segment. A worker writes a line in one ``write``; the shipper reads only
    what precedes the file's last newline.
    """

    def __init__(
        self,
        directory: str | Path,
        db: Engine,
        wal: WalLog | None = None,
        *,
        interval: float = 1.0,
        chunk_bytes: int = 4 << 20,
        forwarder: SyslogForwarder | None = None,
        served: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.served = served
        self.db = db
        self.wal = wal
        # PDP_DECISION_LOG_SYSLOG: the entries also go to syslog, each segment with a second
        # offset (pdp.records.decision_log.syslog).
        self.forwarder = forwarder
        if wal is not None and forwarder is not None:
            wal.forwarding = True
        self.interval = interval
        self.chunk_bytes = chunk_bytes
        self.failures = 0
        self.shipped_total = 0
        self.last_success: float | None = None
        self.shipped_through = time.time()  # everything written before it is shipped
        self._lock = threading.Lock()
        self._thread_pid: int | None = None
        # Straight to the driver's executemany: SQLAlchemy's per-row work cost more than the
        # insert itself (bench/README.md, "Decision log cost").
        marks = ", ".join(["%s" if db.dialect.name == "postgresql" else "?"] * len(Row._fields))
        columns = ", ".join(f'"{c}"' for c in Row._fields)
        self._insert = (
            f"INSERT INTO {DecisionRecord.__tablename__} ({columns}) VALUES ({marks}) "
            "ON CONFLICT (decision_id, ts_us) DO NOTHING"  # the same line, the same ts_us
        )
        self._last_use = LastUseWriter(db.dialect.name)

    def start(self, _wal: WalLog | None = None) -> None:
        """Ship every ``interval`` seconds from a daemon thread of this process (once per
        process: a second call, or a call in the same process after a fork, starts nothing)."""
        with self._lock:
            if self._thread_pid == os.getpid():
                return
            self._thread_pid = os.getpid()
            self.shipped_through = time.time()
        threading.Thread(target=self._ship_forever, name="pdp-log-ship", daemon=True).start()

    def _ship_forever(self) -> None:
        while True:
            time.sleep(self.interval)
            self.round()

    def round(self) -> None:
        """One ``ship_once`` that never raises (a failure is counted and logged: the files
        wait on disk for the next round), then the backlog published."""
        try:
            self.ship_once()
        except Exception as exc:  # the database is down: the files wait on disk
            self.failures += 1
            metrics.LOG_SHIP_ERRORS.inc()
            log.warning("decision log shipping failed, will retry: %s", exc)
        self.report_backlog()

    def checkpoint(self) -> None:
        """Copy SQLite's WAL into the database (``pdp.adapters.sql.database.checkpoint``); never
        raises: a failure is logged, and the next round's checkpoint does it."""
        try:
            checkpoint(self.db)
        except Exception as exc:
            log.warning("decision log shipper: checkpoint failed, will retry: %s", exc)

    def last_round(self) -> None:
        """Ship what remains before stopping (twice with syslog: a moment, then confirm what
        was sent); a failure leaves the files on disk for the next shipper."""
        try:
            self.ship_once()
            if self.forwarder is not None:
                time.sleep(0.2)
                self.ship_once()
        except Exception as exc:
            metrics.LOG_SHIP_ERRORS.inc()
            log.warning("decision log: last shipping failed, the files wait on disk: %s", exc)

    def report_backlog(self) -> None:
        """Publish the unshipped bytes (this process's; the whole directory's when ``served``)
        and the age of the oldest unshipped entry (an upper bound: it was written after the last
        successful round started)."""
        if self.served:
            pending, unforwarded = directory_pending(self.directory)
        elif self.wal is not None:
            pending, unforwarded = self.wal.pending_bytes, self.wal.unforwarded_bytes
        else:
            pending = unforwarded = 0
        metrics.LOG_PENDING_BYTES.set(pending)
        if self.forwarder is not None:
            metrics.LOG_FORWARD_PENDING_BYTES.set(unforwarded)
        metrics.LOG_LAG_SECONDS.set(time.time() - self.shipped_through if pending else 0.0)

    def ship_once(self) -> ShipReport:
        """Ship what is pending now (own segments first, then orphans); raise on DB errors."""
        report = ShipReport()
        started = time.time()
        with self._lock:
            if self.forwarder is not None:
                self._settle()
            if self.wal is not None:
                for segment in self.wal.segments():
                    self._ship_own(segment, report)
            self._ship_others(report)
        self.shipped_total += report.shipped
        self.last_success = time.time()
        self.shipped_through = started
        metrics.LOG_SHIPPED.inc(report.shipped)
        if report.forwarded:
            metrics.LOG_FORWARDED.inc(report.forwarded)
        return report

    def _ship_own(self, segment: Segment, report: ShipReport) -> None:
        assert self.wal is not None
        size = segment.size  # complete entries only: the size moves only after a whole write
        if segment.forwarded is not None:  # first, so that the database down does not hold it
            segment.forwarded = self._forward(segment.path, segment.forwarded, size, report)
        while segment.shipped < size:
            segment.shipped = self._ship_range(segment.path, segment.shipped, size, report)
            files._write_offset(segment.path, segment.shipped)
        if segment is not self.wal.segments()[-1] and segment.done >= segment.size:
            self.wal.release(segment)
            report.segments_done += 1

    def _settle(self) -> None:
        """Move the ``.forwarded`` offsets to what the receiver confirmed since the last round
        (see ``pdp.records.decision_log.syslog``)."""
        assert self.forwarder is not None
        confirmed = self.forwarder.settle()
        own = {s.path: s for s in self.wal.segments()} if self.wal is not None else {}
        for path, offset in confirmed.items():
            if path in own:
                own[path].forwarded = offset
            if path.exists():
                files._write_offset(path, offset, files.FORWARDED)

    def _forward(self, path: Path, confirmed: int, size: int, report: ShipReport) -> int:
        """Send what of [confirmed, size) of ``path`` was not sent yet on the open connection;
        return the confirmed offset (``size`` once only a torn last line, never answered, is
        left). Confirmation comes at the next round (``_settle``). A failing receiver stops it
        there and never raises: the entries wait on disk, and the database's copy goes on."""
        assert self.forwarder is not None
        offset = max(confirmed, self.forwarder.sent_to(path) or 0)
        try:
            while offset < size:
                reached, sent = self.forwarder.forward_range(path, offset, size, self.chunk_bytes)
                if reached == offset:  # only a torn last line is left
                    return size if offset == confirmed else confirmed
                report.forwarded += sent
                offset = reached
        except OSError as exc:
            metrics.LOG_FORWARD_ERRORS.inc()
            log.warning(
                "decision log delivery to %s failed, will retry: %s", self.forwarder.url, exc
            )
        return confirmed

    def _ship_others(self, report: ShipReport) -> None:
        """Ship the segments of the directory that are not this process's own: every one no
        live process holds (then deleted), and, when ``served``, the live workers' too."""
        own = {s.path for s in self.wal.segments()} if self.wal is not None else set()
        for path in sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}")):
            if path in own or (path.name.endswith(SERVED_SUFFIX) and not self.served):
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # shipped and deleted by another process meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if self.served and path.name.endswith(SERVED_SUFFIX):
                        self._ship_live(path, fd, report)
                    continue  # a live process holds it
                if not path.exists():
                    continue  # deleted between our open and our lock
                self._ship_orphan(path, fd, report)
            finally:
                os.close(fd)

    def _ship_live(self, path: Path, fd: int, report: ShipReport) -> None:
        """Ship a live worker's segment up to its last complete line (the line after it is
        being written); its worker, or the next round, does the rest."""
        size = os.fstat(fd).st_size
        if self.forwarder is not None:
            self._forward(path, files._read_offset(path, files.FORWARDED), size, report)
        offset = files._read_offset(path)
        while offset < size:
            done = self._ship_range(path, offset, size, report)
            if done == offset:
                break
            offset = done
            files._write_offset(path, offset)

    def _ship_orphan(self, path: Path, fd: int, report: ShipReport) -> None:
        """Ship a segment no live process holds (``fd`` holds its lock) to its end, then delete
        it; a torn last line (its write never completed: never answered) is dropped."""
        size = os.fstat(fd).st_size
        forwarded = size
        if self.forwarder is not None:
            start = files._read_offset(path, files.FORWARDED)
            forwarded = self._forward(path, start, size, report)
        offset = files._read_offset(path)
        while offset < size:
            done = self._ship_range(path, offset, size, report)
            if done == offset:  # only a torn last line is left
                report.torn += 1
                log.warning(
                    "decision log %s: %s bytes of a torn last line dropped (never "
                    "answered: its write did not complete)",
                    path.name,
                    size - offset,
                )
                break
            offset = done
            files._write_offset(path, offset)
        if forwarded < size:
            return  # in the database; kept on disk until syslog has it too
        files._delete(path)
        report.orphans += 1

    def _ship_range(self, path: Path, start: int, end: int, report: ShipReport) -> int:
        """Ship the complete lines of ``path`` in [start, end); return the offset reached.

        Every line before that offset is then in the table or set aside in rejected.jsonl
        (made durable first); if the database is unavailable, this raises and nothing of the
        range counts as done (what was inserted is inserted again later, idempotently)."""
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(min(end - start, self.chunk_bytes))
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) == self.chunk_bytes:  # no entry is this long: garbage, set aside
                error = ValueError(f"no end of line in {len(data)} bytes")
                self._set_aside(path, [(_Line(start, data), error, "unreadable")], report)
                return start + len(data)
            return start
        rows, rejects = _read_lines(data[:cut], start)
        refused = self._insert_rows(rows)
        rejects += [(line, exc, "refused") for line, exc in refused]
        report.shipped += len(rows) - len(refused)
        if rejects:
            self._set_aside(path, sorted(rejects, key=lambda r: r[0].offset), report)
        return start + cut + 1

    def _insert_rows(self, rows: list[_Line]) -> list[tuple[_Line, Exception]]:
        """Insert ``rows``; return those the database refuses, each with its error.

        One ``executemany`` in one transaction for the whole list (the normal case). If it
        fails while the database accepts rows, the list is split in two, each half in its own
        transaction, down to the single rows to blame; raises if the database is unavailable."""
        if not rows:
            return []
        error = self._try_insert(rows)
        if error is None:
            return []
        if len(rows) > 1:
            half = len(rows) // 2
            return self._insert_rows(rows[:half]) + self._insert_rows(rows[half:])
        # Refused twice, with the database taking rows in between: the row's fault, not a
        # passing lock or conflict.
        error = self._try_insert(rows)
        return [] if error is None else [(rows[0], error)]

    def _try_insert(self, rows: list[_Line]) -> Exception | None:
        """Insert ``rows``, and upsert the last uses of their allowed checks (R-CNIL-1), in one
        transaction: None once they are in; the error if the database refused them while
        accepting rows; raise if it is unavailable."""
        uses = self._last_use.pending(line.uses for line in rows)
        try:
            with self.db.begin() as conn:
                conn.exec_driver_sql(self._insert, [line.row for line in rows])
                self._last_use.write(conn, uses)
        except Exception as exc:
            if _disconnected(exc) or not self._accepts_rows():
                raise
            return exc
        self._last_use.committed(uses)
        return None

    def _accepts_rows(self) -> bool:
        """Whether the database takes a well-formed row right now (inserted, rolled back): a
        failure that it shares is the database's (down, read-only, no table), not the row's."""
        probe = Row(
            decision_id=new_decision_id(),
            ts_us=time.time_ns() // 1000,
            kind="check",
            organisation=None,
            user=None,
            service=None,
            allowed=False,
            reason="PROBE",
            revision=0,
            entry="{}",
            allocataire=None,
        )
        try:
            with self.db.connect() as conn:
                transaction = conn.begin()
                conn.exec_driver_sql(self._insert, [probe])
                # The last uses too: without their table, no row is to blame.
                self._last_use.write(conn, {("PROBE", "PROBE", "PROBE"): dt.date.today()})
                transaction.rollback()
        except Exception:
            return False
        return True

    def _set_aside(self, path: Path, rejects: list[_Reject], report: ShipReport) -> None:
        """Append each line to rejected.jsonl with its error, and make it durable (before the
        segment's offset moves past it)."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        append_rejected(
            self.directory,
            b"".join(
                orjson.dumps(_rejected_record(path, line, exc, cause, now), option=_LINE)
                for line, exc, cause in rejects
            ),
        )
        for line, exc, cause in rejects:
            metrics.LOG_REJECTED.labels(cause).inc()
            log.error(
                "decision log %s at %d: %s entry set aside in %s: %s",
                path.name,
                line.offset,
                cause,
                REJECTED,
                _error(exc)["message"].partition("\n")[0],
            )
        report.rejected += len(rejects)


def _read_lines(data: bytes, start: int) -> tuple[list[_Line], list[_Reject]]:
    """The lines of ``data`` (whole lines, read from offset ``start``, the last newline cut
    off): those made into rows, and those that could not be (whatever they hold)."""
    rows: list[_Line] = []
    rejects: list[_Reject] = []
    offset = start
    for data_line in data.split(b"\n"):
        line = _Line(offset, data_line)
        offset += len(data_line) + 1
        try:
            entry = orjson.loads(data_line)
            line.row = Row.of_entry(entry, data_line)
            line.uses = read_uses(entry)  # not the entry: thousands kept alive cost collections
        except Exception as exc:  # one line never stops the others, whatever it holds
            rejects.append((line, exc, "unreadable"))
        else:
            rows.append(line)
    return rows, rejects


def _disconnected(exc: BaseException) -> bool:
    """Whether ``exc`` is the connection's loss (never a row's fault)."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _error(exc: BaseException) -> dict[str, str]:
    """The class and message of an error: the driver's own for a database error (without the
    statement and parameters SQLAlchemy adds), no stack trace."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return {"class": name, "message": str(exc).strip()}


def _rejected_record(
    path: Path, line: _Line, exc: BaseException, cause: str, now: str
) -> dict[str, Any]:
    """One line of rejected.jsonl: the entry (parsed if it is JSON, else its text, else its
    bytes in base64: the file stays JSON Lines whatever the entry holds) and why it is there."""
    record: dict[str, Any] = {
        "rejected_at": now,
        "segment": path.name,
        "offset": line.offset,
        "cause": cause,
        "error": _error(exc),
    }
    try:
        record["entry"] = orjson.loads(line.data)  # what orjson reads, it writes back
    except orjson.JSONDecodeError:
        try:
            record["line"] = line.data.decode()
        except UnicodeDecodeError:
            record["line_base64"] = base64.b64encode(line.data).decode()
    return record
