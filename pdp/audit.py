"""The audit trail of administrative writes (R-ADM-7): emitted in exactly one place.

Every committed write produces one ``AuditEvent`` per thing it changed (actor, action, target,
before/after, revision). ``pdp.admin.service.AdminService.write`` collects them during the
transaction and hands them to the ``AuditTrail`` once the transaction has committed: an event is
never emitted for a write that did not happen.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from pdp.decision_log import JsonLinesLog


@dataclass(frozen=True)
class AuditEvent:
    """One change: who did what to what, its state before and after, and the revision."""

    actor: str
    action: str
    target: str
    organisation: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    revision: int
    ts: float


class AuditTrail(Protocol):
    """Where audit events go."""

    def record(self, events: list[AuditEvent]) -> None:
        """Record events of one committed write; must not raise."""


class JsonLinesAudit:
    """Writes each event as a JSON line ("-" is standard error), through a writer thread."""

    def __init__(self, target: str) -> None:
        self._log = JsonLinesLog(target)

    def record(self, events: list[AuditEvent]) -> None:
        """Queue the events for writing."""
        for event in events:
            self._log.record({"kind": "audit", **asdict(event)})


class MemoryAudit:
    """Keeps events in a list (tests)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, events: list[AuditEvent]) -> None:
        """Append the events."""
        self.events.extend(events)


def now() -> float:
    """The events' timestamp (seconds since the epoch)."""
    return time.time()
