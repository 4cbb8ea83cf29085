"""One decision-log entry: what every decision leaves behind, its one constructor, and the
table row the shipper makes of it.

An entry is one JSON line of a segment file, then the ``entry`` column of its row; the row's
other columns are the fields auditors filter on. Every kind of decision shares the head of the
entry (id, time, caller, organisation, masked user, answer, reason, revision); each kind adds its
own details:

- ``check``: service, role, caf, feature and allocataire (pseudonymised; when given), at (the
  day decided), grants
  (the grant path: group, service, role and source of every grant that allows), eval_us (the
  engine's time);
- ``admin``: action, target (masked), eval_us;
- ``permissions``: at, grants;
- ``service_users``: service, role, feature (when one is asked), at, count (its organisation
  is the filter asked).
"""

from __future__ import annotations

import time
from typing import Any, Literal, NamedTuple, TypedDict, TypeVar, Unpack, cast

import orjson

from pdp.adapters.sql.models import DecisionRecord
from pdp.core import context

Kind = Literal["check", "admin", "permissions", "service_users"]
GrantStep = tuple[str | None, str, str, str]  # (group, service, role, source)
_T = TypeVar("_T")


class Details(TypedDict, total=False):
    """The fields a kind of decision adds to the head of its entry."""

    service: str | None
    role: str | None
    caf: str | None
    feature: str
    allocataire: str  # pseudonymised
    at: str | None
    grants: list[GrantStep]
    action: str
    target: str
    count: int
    eval_us: float  # the engine's time, in microseconds


class Entry(Details):
    """One logged decision (a dict at run time: written as is, one JSON line)."""

    decision_id: str
    ts: float
    kind: Kind
    client: str | None
    request_id: str | None
    organisation: str | None
    user: str | None
    allowed: bool
    reason: str
    revision: int


def new_entry(
    decision_id: str,
    kind: Kind,
    organisation: str | None,
    user: str | None,
    allowed: bool,
    reason: str,
    revision: int,
    **details: Unpack[Details],
) -> Entry:
    """The entry of a decision taken now, for the request being answered (its caller and request
    id are read from the request's context). ``user`` is already masked.

    The fields keep the order the log has always had (auditors' exports and the README's
    abridged answers read them in it): the head, what was asked (a check's service, role, Caf
    and day; an administrative action and target), the answer, a check's grants, the revision,
    then everything else."""
    rest: dict[str, Any] = dict(details)
    entry: dict[str, Any] = {
        "decision_id": decision_id,
        "ts": time.time(),
        "kind": kind,
        "client": context.client.get(),
        "request_id": context.request_id.get(),
        "organisation": organisation,
        "user": user,
    }
    for key in _ASKED.get(kind, ()):
        if key in rest:
            entry[key] = rest.pop(key)
    entry["allowed"] = allowed
    entry["reason"] = reason
    if kind == "check" and "grants" in rest:
        entry["grants"] = rest.pop("grants")
    entry["revision"] = revision
    entry.update(rest)
    return cast(Entry, entry)


# What each kind asked, placed before its answer.
_ASKED: dict[str, tuple[str, ...]] = {
    "check": ("service", "role", "caf", "at"),
    "admin": ("action", "target"),
}


_SIZES = {c.name: getattr(c.type, "length", None) for c in DecisionRecord.__table__.columns}


def _cut(column: str, value: _T) -> _T:
    """A value that fits its column (a 5,000-character login in a path must not block the
    shipping of every later entry); the entry itself keeps it whole."""
    size = _SIZES[column]
    if isinstance(value, str) and size is not None:
        return value[:size]  # type: ignore[return-value]  # a str cut is the same type
    return value


class Row(NamedTuple):
    """The ``decision_log`` row of one entry; its fields are the table's columns, in the order
    the shipper's INSERT names them."""

    decision_id: str
    ts_us: int
    kind: str
    organisation: str | None
    user: str | None
    service: str | None
    allowed: bool
    reason: str
    revision: int
    entry: str
    allocataire: str | None

    @classmethod
    def of(cls, line: bytes) -> Row:
        """The row of one JSON line; raises if it is not an entry."""
        return cls.of_entry(orjson.loads(line), line)

    @classmethod
    def of_entry(cls, entry: Entry, line: bytes) -> Row:
        """The row of ``entry``, read from the JSON line ``line``; raises if it is not one."""
        return cls(
            decision_id=str(entry["decision_id"])[: _SIZES["decision_id"]],
            ts_us=int(entry["ts"] * 1_000_000),
            kind=_cut("kind", entry["kind"]),
            organisation=_cut("organisation", entry.get("organisation")),
            user=_cut("user", entry.get("user")),
            service=_cut("service", entry.get("service")),
            allowed=bool(entry["allowed"]),
            reason=_cut("reason", entry["reason"]),
            revision=int(entry.get("revision") or 0),
            entry=line.decode(),
            allocataire=_cut("allocataire", entry.get("allocataire")),
        )
