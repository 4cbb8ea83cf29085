"""The decision log: one JSON line per decision. It never changes a decision nor delays it: the
write happens on a writer thread; a failure is counted and reported, and the decision stands
(STYLE rule 8)."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections import deque
from typing import IO, Any, Protocol

import orjson

log = logging.getLogger("pdp.decisions")


class DecisionLog(Protocol):
    """Where decisions are recorded."""

    def record(self, entry: dict[str, Any]) -> None:
        """Record one decision; must not raise."""


class JsonLinesLog:
    """Writes each decision as a JSON line to a stream ("-" is standard error) or a file.

    ``record`` only appends the entry to a bounded in-memory list (a ``deque``: no lock, no
    wake-up per decision); a writer thread (started lazily, once per process, so after
    gunicorn's fork) wakes every ``interval`` seconds, encodes everything pending with orjson
    and writes it in one call. A slow or blocked output never delays a decision: when
    ``queue_size`` entries are pending the entry is dropped and counted in ``dropped``; a
    failed write is counted in ``failures`` (its entries are lost, the decisions stand).
    """

    def __init__(self, target: str, queue_size: int = 100_000, interval: float = 0.05) -> None:
        self.failures = 0
        self.dropped = 0
        self._queue_size = queue_size
        self._interval = interval
        self._pending: deque[dict[str, Any]] = deque()
        self._writing = False
        self._pid: int | None = None
        self._stream: IO[bytes] | None
        if target in ("", "off", "none"):
            self._stream = None
        elif target == "-":
            buffer = getattr(sys.stderr, "buffer", None)
            self._stream = buffer if buffer is not None else os.fdopen(os.dup(2), "wb")
        else:
            self._stream = open(target, "ab")  # noqa: SIM115

    def record(self, entry: dict[str, Any]) -> None:
        """Queue the entry for writing; never blocks, never raises."""
        if self._stream is None:
            return
        if self._pid != os.getpid():
            self._start_writer()
        if len(self._pending) >= self._queue_size:
            self.dropped += 1
            return
        self._pending.append(entry)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued entry has been written (or ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while (self._pending or self._writing) and time.monotonic() < deadline:
            time.sleep(0.005)

    def _start_writer(self) -> None:
        # A thread does not survive a fork: each process starts its own, with its own entries.
        self._pid = os.getpid()
        self._pending = deque()
        threading.Thread(target=self._write_forever, name="pdp-decision-log", daemon=True).start()
        atexit.register(self.flush, 2.0)

    def _write_forever(self) -> None:
        while True:
            time.sleep(self._interval)
            while self._pending:
                self._write_pending()

    def _write_pending(self) -> None:
        stream, pending = self._stream, self._pending
        assert stream is not None
        self._writing = True
        try:
            chunk: list[bytes] = []
            while pending and len(chunk) < 10_000:
                try:
                    chunk.append(orjson.dumps(pending.popleft(), default=str))
                except TypeError:
                    self.failures += 1
                    log.exception("decision log entry not encodable")
            try:
                stream.write(b"\n".join(chunk) + b"\n")
                stream.flush()
            except Exception:
                self.failures += 1
                log.exception("decision log write failed (%s entries lost)", len(chunk))
        finally:
            self._writing = False


class MemoryLog:
    """Keeps decisions in a list (tests)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def record(self, entry: dict[str, Any]) -> None:
        """Append the entry."""
        self.entries.append(entry)
