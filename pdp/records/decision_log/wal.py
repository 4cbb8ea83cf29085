"""Writing the decision log: each process's segment files, before the answer leaves (see the
package's documentation), and the logs for tests and benchmarks."""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from random import getrandbits
from typing import Any, Protocol

import orjson

from pdp.core.errors import Unavailable
from pdp.observability import metrics
from pdp.records.decision_log import files
from pdp.records.decision_log.entry import Entry

log = logging.getLogger("pdp.decisions")

MODES = ("buffered", "sync", "off")
SEGMENT_SUFFIX = ".log"
REJECTED = "rejected.jsonl"  # in the log's directory: the entries set aside
# The segments of pdp serve's workers end so: the instance's shipper process ships them, live
# ones included (the other shippers leave them alone).
SERVED_SUFFIX = ".served" + SEGMENT_SUFFIX
_LINE = orjson.OPT_APPEND_NEWLINE


def new_decision_id() -> str:
    """32 hex digits: the time in microseconds (13 digits), then 76 random bits.

    Unique like a UUID4 at a tenth of its cost (``uuid4`` makes a system call; ``getrandbits``
    uses the per-process, fork-reseeded Mersenne Twister), and time-ordered, so that shipping
    appends to the end of the table's primary key instead of writing all over it.
    """
    return f"{time.time_ns() // 1000:013x}{getrandbits(76):019x}"


class LogUnavailable(Unavailable):
    """The decision could not be logged: it is not answered (503)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="DECISION_LOG_UNAVAILABLE")


class DecisionLog(Protocol):
    """Where decisions are recorded. ``record`` raises LogUnavailable if it cannot."""

    def record(self, entry: Entry) -> None:
        """Record one decision before it is answered."""

    def record_many(self, entries: list[Entry]) -> None:
        """Record several decisions (a batch) at once."""


class OffLog:
    """Logs nothing (``PDP_DECISION_LOG=off``)."""

    def record(self, entry: Entry) -> None:
        """Drop the entry."""

    def record_many(self, entries: list[Entry]) -> None:
        """Drop the entries."""


class MemoryLog:
    """Keeps decisions in a list (tests)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def record(self, entry: Entry) -> None:
        """Append the entry."""
        self.entries.append(entry)

    def record_many(self, entries: list[Entry]) -> None:
        """Append the entries."""
        self.entries.extend(entries)


@dataclass
class Segment:
    """One segment file of this process: its descriptor (holding the lock) and its size."""

    path: Path
    fd: int
    size: int = 0
    shipped: int = 0  # how far the database has it
    forwarded: int | None = None  # how far syslog has it (None: not forwarded)

    @property
    def done(self) -> int:
        """How far every destination has it."""
        return self.shipped if self.forwarded is None else min(self.shipped, self.forwarded)


class WalLog:
    """The write-ahead decision log of one process (see the module)."""

    def __init__(
        self,
        directory: str | Path,
        mode: str = "buffered",
        *,
        flush_interval: float = 0.05,
        segment_bytes: int = 64 << 20,
        sync_timeout: float = 5.0,
    ) -> None:
        if mode not in ("buffered", "sync"):
            raise ValueError(f"unknown decision log mode {mode!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.mode = mode
        self.flush_interval = flush_interval
        self.segment_bytes = segment_bytes
        self.sync_timeout = sync_timeout
        self.failures = 0
        self.forwarding = False  # set when the entries also go to syslog (a second offset)
        self.served = False  # set by hand_over: another process ships the segments
        self._seal = False  # after a failed write (served): the next write opens a new segment
        self._sync = mode == "sync"
        self._cond = threading.Condition()
        self._pid: int | None = None
        self._segments: list[Segment] = []
        self._written = 0
        self._durable = 0
        self._on_start: list[Any] = []
        self._on_close: list[Any] = []
        self._syncing = 0  # fdatasync calls in progress (outside the lock)

    # -- the request side ----------------------------------------------------------------------

    def record(self, entry: Entry) -> None:
        """Append one entry; in ``sync`` mode, return once it is on disk."""
        self._append(orjson.dumps(entry, option=_LINE, default=str))

    def record_many(self, entries: list[Entry]) -> None:
        """Append several entries in one write."""
        if entries:
            self._append(b"".join([orjson.dumps(e, option=_LINE, default=str) for e in entries]))

    def _append(self, data: bytes) -> None:
        if self._pid != os.getpid():
            self._start_process()
        with self._cond:
            segment = self._segments[-1]
            try:
                if self._seal or (segment.size and segment.size + len(data) > self.segment_bytes):
                    segment = self._rotate()
                    self._seal = False
                files._write_all(segment.fd, data)
            except OSError as exc:
                self.failures += 1
                metrics.LOG_WRITE_ERRORS.inc()
                _truncate(segment)
                # The shipper process may have read complete lines of the failed write: the
                # next entries go to a new segment, never over an offset it has passed.
                self._seal = self.served
                log.error("decision log write failed: %s", exc)
                raise LogUnavailable(
                    "Journal des décisions indisponible : décision non rendue."
                ) from exc
            segment.size += len(data)
            self._written += len(data)
            end = self._written
            if self._sync:
                self._cond.notify_all()
                if not self._cond.wait_for(lambda: self._durable >= end, self.sync_timeout):
                    self.failures += 1
                    metrics.LOG_WRITE_ERRORS.inc()
                    raise LogUnavailable(
                        "Journal des décisions indisponible (écriture disque trop lente) : "
                        "décision non rendue."
                    )

    # -- the process's files and threads -------------------------------------------------------

    def hand_over(self) -> None:
        """Leave the shipping to the instance's shipper process (``pdp serve``): no shipper in
        the processes that log, segments named ``*.served.log``, and a sealed segment's lock let
        go (the shipper then ships it to its end and deletes it). Call before the processes
        that log fork."""
        self.served = True
        self._on_start.clear()
        self._on_close.clear()

    def on_start(self, callback: Any) -> None:
        """Call ``callback(self)`` in each process that starts logging (to start a shipper)."""
        self._on_start.append(callback)

    def _start_process(self) -> None:
        # Segments and threads do not survive a fork: each process opens its own.
        with self._cond:
            if self._pid == os.getpid():
                return
            self._segments = [self._new_segment()]
            self._written = self._durable = 0
            self._seal = False
            self._pid = os.getpid()
        threading.Thread(target=self._flush_forever, name="pdp-log-flush", daemon=True).start()
        for callback in self._on_start:
            callback(self)
        atexit.register(self.close)

    def _new_segment(self) -> Segment:
        name = f"{time.time_ns():020d}-{os.getpid()}-{getrandbits(32):08x}"
        # Created under a name shippers ignore, locked, then renamed: nobody can take a segment
        # for an orphan between its creation and its lock.
        tmp = self.directory / f".{name}.new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = self.directory / f"{name}{SERVED_SUFFIX if self.served else SEGMENT_SUFFIX}"
        os.replace(tmp, path)
        files._fsync_dir(self.directory)
        return Segment(path, fd, forwarded=0 if self.forwarding else None)

    def _rotate(self) -> Segment:
        """Seal the current segment (made durable) and open the next. Caller holds the lock."""
        old = self._segments[-1]
        os.fdatasync(old.fd)
        self._durable = self._written
        segment = self._new_segment()
        self._segments.append(segment)
        return segment

    def _flush_forever(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            with self._cond:
                if self._sync:
                    self._cond.wait_for(lambda: self._written > self._durable, self.flush_interval)
                else:
                    self._cond.wait(self.flush_interval)
                if self._pid != pid:
                    return  # closed
                if self.served and len(self._segments) > 1 and not self._syncing:
                    self._let_go_sealed()
                target, fd = self._written, self._segments[-1].fd
                if target <= self._durable:
                    continue
                self._syncing += 1
            self._sync_to(fd, target)

    def _let_go_sealed(self) -> None:
        """Close the sealed segments (made durable when sealed), which drops their locks: the
        shipper process takes them as a dead process's. Caller holds the lock; nobody syncs."""
        sealed, self._segments = self._segments[:-1], self._segments[-1:]
        for segment in sealed:
            os.close(segment.fd)

    def _sync_to(self, fd: int, target: int) -> None:
        """fdatasync ``fd`` (the caller counted itself in ``_syncing``, so that no segment is
        closed under it), then mark everything up to ``target`` durable."""
        try:
            os.fdatasync(fd)
        except OSError as exc:
            self.failures += 1
            metrics.LOG_WRITE_ERRORS.inc()
            log.error("decision log fdatasync failed: %s", exc)
            ok = False
        else:
            ok = True
        with self._cond:
            self._syncing -= 1
            if ok:
                self._durable = max(self._durable, target)
            self._cond.notify_all()

    def flush(self) -> None:
        """Make everything written so far durable (``fdatasync``)."""
        if self._pid != os.getpid():
            return
        with self._cond:
            target, fd = self._written, self._segments[-1].fd
            if target <= self._durable:
                return
            self._syncing += 1
        self._sync_to(fd, target)

    def segments(self) -> list[Segment]:
        """This process's segments, oldest first (the last one is being written)."""
        with self._cond:
            return list(self._segments) if self._pid == os.getpid() else []

    def release(self, segment: Segment) -> None:
        """Forget a sealed segment that was fully shipped: delete it, drop its lock."""
        with self._cond:
            if segment is self._segments[-1] or segment not in self._segments:
                return
            self._cond.wait_for(lambda: not self._syncing, 5.0)
            self._segments.remove(segment)
            files._delete(segment.path)
            os.close(segment.fd)

    @property
    def pending_bytes(self) -> int:
        """Bytes written by this process and not shipped yet."""
        return sum(s.size - s.shipped for s in self.segments())

    @property
    def unforwarded_bytes(self) -> int:
        """Bytes written by this process and not delivered to syslog yet."""
        return sum(s.size - (s.forwarded or 0) for s in self.segments() if s.forwarded is not None)

    def close(self) -> None:
        """Flush, run the shutdown callbacks (a last shipping), and let go of the segments
        (deleted if fully shipped, else left for the next shipper). A later ``record`` opens
        a new segment."""
        if self._pid != os.getpid():
            return
        self.flush()
        for callback in self._on_close:
            callback()
        with self._cond:
            self._cond.wait_for(lambda: not self._syncing, 5.0)
            segments, self._segments, self._pid = self._segments, [], None
            self._cond.notify_all()
        for segment in segments:
            if segment.done >= segment.size:
                files._delete(segment.path)
            os.close(segment.fd)

    def on_close(self, callback: Any) -> None:
        """Call ``callback()`` when the process closes the log (a last shipping)."""
        self._on_close.append(callback)


def _truncate(segment: Segment) -> None:
    """Cut a partial write back off, so that the next entry starts on a line of its own."""
    try:
        os.ftruncate(segment.fd, segment.size)
    except OSError as exc:
        log.error("decision log truncate failed: %s", exc)
