"""The decision log: one JSON line per decision. It never changes a decision nor delays it: the
write happens on a writer thread; a failure is counted and reported, and the decision stands
(STYLE rule 8)."""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import sys
import threading
import time
from typing import IO, Any, Protocol

log = logging.getLogger("pdp.decisions")


class DecisionLog(Protocol):
    """Where decisions are recorded."""

    def record(self, entry: dict[str, Any]) -> None:
        """Record one decision; must not raise."""


class JsonLinesLog:
    """Writes each decision as a JSON line to a stream ("-" is standard error) or a file.

    ``record`` only puts the entry on a bounded queue; a writer thread (started lazily, once per
    process, so after gunicorn's fork) serialises and writes it. A slow or blocked output never
    delays a decision: when the queue is full the entry is dropped and counted in ``dropped``;
    a failed write is counted in ``failures``.
    """

    def __init__(self, target: str, queue_size: int = 100_000) -> None:
        self.failures = 0
        self.dropped = 0
        self._queue_size = queue_size
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(queue_size)
        self._pid: int | None = None
        self._stream: IO[str] | None
        if target in ("", "off", "none"):
            self._stream = None
        elif target == "-":
            self._stream = sys.stderr
        else:
            self._stream = open(target, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def record(self, entry: dict[str, Any]) -> None:
        """Queue the entry for writing; never blocks, never raises."""
        if self._stream is None:
            return
        if self._pid != os.getpid():
            self._start_writer()
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued entry has been written (or ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def _start_writer(self) -> None:
        # A thread does not survive a fork: each process starts its own, with its own queue.
        self._pid = os.getpid()
        self._queue = queue.Queue(self._queue_size)
        threading.Thread(target=self._write_forever, name="pdp-decision-log", daemon=True).start()
        atexit.register(self.flush, 2.0)

    def _write_forever(self) -> None:
        stream, entries = self._stream, self._queue
        assert stream is not None
        while True:
            entry = entries.get()
            try:
                stream.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
            except Exception:
                self.failures += 1
                log.exception("decision log write failed")
            finally:
                entries.task_done()


class MemoryLog:
    """Keeps decisions in a list (tests)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def record(self, entry: dict[str, Any]) -> None:
        """Append the entry."""
        self.entries.append(entry)
