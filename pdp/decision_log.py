"""The decision log: one JSON line per decision. It never changes a decision nor delays it much:
a failure to write is counted and reported, and the decision stands (STYLE rule 8)."""

from __future__ import annotations

import json
import logging
import sys
from typing import IO, Any, Protocol

log = logging.getLogger("pdp.decisions")


class DecisionLog(Protocol):
    """Where decisions are recorded."""

    def record(self, entry: dict[str, Any]) -> None:
        """Record one decision; must not raise."""


class JsonLinesLog:
    """Writes each decision as a JSON line to a stream ("-" is standard error) or a file."""

    def __init__(self, target: str) -> None:
        self.failures = 0
        self._stream: IO[str] | None
        if target in ("", "off", "none"):
            self._stream = None
        elif target == "-":
            self._stream = sys.stderr
        else:
            self._stream = open(target, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def record(self, entry: dict[str, Any]) -> None:
        """Write the entry; on failure count it and go on."""
        if self._stream is None:
            return
        try:
            self._stream.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
        except Exception:
            self.failures += 1
            log.exception("decision log write failed")


class MemoryLog:
    """Keeps decisions in a list (tests)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def record(self, entry: dict[str, Any]) -> None:
        """Append the entry."""
        self.entries.append(entry)
