"""What auditors read, typed: the pages of the decision log and of the audit trail, a logged
decision with its explanation, and who may read what (``pdp.services.auditing``).

The pages are dataclasses the API serialises as they are (orjson writes a dataclass as an object
of its fields, in order); the items are the JSON forms of the stored rows (dictionaries at run
time, typed here).
"""

from __future__ import annotations

from dataclasses import dataclass

from typing_extensions import TypedDict as DocumentedDict  # pydantic reads it (Python < 3.12)

from pdp.records.audit_trail import RecordJson
from pdp.records.decision_log.entry import Entry
from pdp.services.admin.responses import OrganisationItem


class Granted(DocumentedDict):
    """The audit record that made one step of a grant path."""

    by: str
    at: str
    action: str
    revision: int
    audit_seq: int


class _Step(DocumentedDict):
    group: str | None
    service: str
    role: str
    source: str


class ExplainedStep(_Step, total=False):
    """One step of a grant path with the record that made it (None: made before the audit
    trail); a group's step has the membership's and the role's, an Afas profile's its own."""

    membership_granted: Granted | None
    role_granted: Granted | None
    profile_granted: Granted | None


class LoggedDecision(Entry, total=False):
    """A decision as the log holds it: its entry, when it was taken (``at_time``, ISO 8601),
    and, read alone, the explanation of its grant path."""

    at_time: str
    explanation: list[ExplainedStep]


@dataclass(frozen=True, slots=True)
class Reader:
    """What an actor reads of the log: ``organisation`` (None: every one, operators only),
    whether they choose it, and among which organisations (operators; empty for the others)."""

    organisation: str | None
    may_choose: bool
    organisations: list[OrganisationItem]


@dataclass(frozen=True, slots=True)
class DecisionPage:
    """A page of logged decisions, newest first; ``next_cursor`` is None on the last page."""

    decisions: list[LoggedDecision]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class AuditPage:
    """A page of audit records, newest first."""

    records: list[RecordJson]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """The history of one user or group (its masked target), newest first."""

    target: str
    records: list[RecordJson]
    next_cursor: str | None
