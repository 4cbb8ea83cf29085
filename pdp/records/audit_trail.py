"""The audit trail of administrative writes (R-ADM-7): a hash chain in the database.

Every committed write leaves one ``AuditEvent`` per thing it changed (actor, action, target,
before/after, revision, request id). The policy write (``pdp.records.policy_write``) collects
them during the transaction and ``AuditChain.append`` inserts them **in that same
transaction**, just before the commit: no change without its record, and no record of a change
that did not happen.

The chain: record n carries ``prev_hash`` (record n-1's hash, 64 zeros for the first) and
``hash`` = SHA-256, or HMAC-SHA-256 when ``PDP_AUDIT_KEY`` is set, of its own fields and
``prev_hash``. The head (last seq and hash) is kept in the ``policy_revision`` row, updated in
the same transaction. Writers are serialised by that row's lock (``bump_revision``), so the chain
never forks. ``verify`` walks the chain and names the first broken record.

Revisions and records: every write that takes a revision leaves at least one record of that
revision (``AdminService.write``, the demo load), and the API keys' records carry the current
revision without taking one (``pdp.services.api_keys``). So the last record's revision is the
policy's revision, and an empty chain goes with revision 0: ``verify`` checks both, which shows
records cut off the end even when the head was moved back with them. Records cut off the end
with the revision moved back too are shown by a checkpoint kept outside the database
(``pdp.records.checkpoints``), which ``verify`` compares when given one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.orm import Session
from typing_extensions import TypedDict  # pydantic documents it (Python < 3.12)

from pdp.adapters.sql.models import AuditRecord, PolicyRevision
from pdp.core.masking import Masker

GENESIS = "0" * 64


class Anchor(Protocol):
    """A record of the chain seen from outside the database (``pdp.records.checkpoints``)."""

    @property
    def seq(self) -> int:
        """The record's number."""

    @property
    def hash(self) -> str:
        """Its hash when it was seen."""

    def describe(self) -> str:
        """For messages: which anchor, when and where it was written."""


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
    related: str | None = None


def now() -> float:
    """The events' timestamp (seconds since the epoch)."""
    return time.time()


def _canonical(value: dict[str, Any] | None) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


def record_digest(key: bytes | None, fields: dict[str, Any]) -> str:
    """The hash of one record's stored fields (everything but ``hash`` itself)."""
    data = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


_HASHED = (
    "seq",
    "ts_us",
    "actor",
    "action",
    "target",
    "related",
    "organisation",
    "before",
    "after",
    "revision",
    "request_id",
    "prev_hash",
)


# Built once: every write runs them (see ``append``).
_HEAD = select(PolicyRevision.audit_seq, PolicyRevision.audit_hash).where(PolicyRevision.id == 1)
_INSERT = insert(AuditRecord)
_NEW_HEAD = (
    update(PolicyRevision)
    .where(PolicyRevision.id == 1)
    .values(audit_seq=bindparam("seq"), audit_hash=bindparam("hash"))
)


class AuditChain:
    """Appends records to the chain (inside the caller's transaction) and verifies it."""

    def __init__(self, key: str = "", masker: Masker | None = None) -> None:
        self._key = key.encode() if key else None
        self._masker = masker or Masker()

    def append(self, session: Session, events: list[AuditEvent], request_id: str | None) -> int:
        """Insert ``events`` after the chain's head; return the new head's seq.

        Must run in the write's transaction, after ``bump_revision`` (which holds the lock).
        """
        head = session.execute(_HEAD).one()
        seq, prev = int(head.audit_seq), str(head.audit_hash)
        rows = []
        mask = self._masker.mask_target
        for event in events:
            seq += 1
            row: dict[str, Any] = {
                "seq": seq,
                "ts_us": int(event.ts * 1_000_000),
                "actor": self._masker.mask_field("user", event.actor),
                "action": event.action,
                "target": mask(event.target),
                "related": mask(event.related) if event.related else None,
                "organisation": event.organisation,
                "before": _canonical(self._masker.mask_mapping(event.before)),
                "after": _canonical(self._masker.mask_mapping(event.after)),
                "revision": event.revision,
                "request_id": request_id,
                "prev_hash": prev,
            }
            row["hash"] = prev = record_digest(self._key, row)
            rows.append(row)
        if rows:
            session.execute(_INSERT, rows)
            session.execute(_NEW_HEAD, {"seq": seq, "hash": prev})
        return seq

    def verify(
        self, db: Engine, chunk: int = 5000, checkpoint: Anchor | None = None
    ) -> VerifyReport:
        """Walk the whole chain; report the first broken record, if any. Then check that the
        policy revision is the last record's (0 for an empty chain) and that the chain holds
        ``checkpoint``'s record with its hash, naming what is missing."""
        expected_seq, prev, count, last_revision = 1, GENESIS, 0, None
        held = GENESIS if checkpoint is not None and checkpoint.seq == 0 else None
        with db.connect() as conn:
            if conn.dialect.name == "postgresql":
                # One snapshot for the head and every chunk: under READ COMMITTED a write
                # committed during the walk would show records past the head read first, and
                # an intact chain would be reported broken.
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            head = conn.execute(
                select(
                    PolicyRevision.audit_seq, PolicyRevision.audit_hash, PolicyRevision.revision
                ).where(PolicyRevision.id == 1)
            ).one()
            last = 0
            while True:
                rows = conn.execute(
                    select(AuditRecord)
                    .where(AuditRecord.seq > last)
                    .order_by(AuditRecord.seq)
                    .limit(chunk)
                ).all()
                if not rows:
                    break
                for row in rows:
                    fields = {name: getattr(row, name) for name in _HASHED}
                    if row.seq != expected_seq:
                        return VerifyReport(
                            False,
                            count,
                            row.seq,
                            f"record {row.seq} follows record {expected_seq - 1}: "
                            f"record {expected_seq} is missing (deleted), or {row.seq} was "
                            "inserted",
                        )
                    if row.prev_hash != prev:
                        return VerifyReport(
                            False,
                            count,
                            row.seq,
                            f"record {row.seq} does not link to record {row.seq - 1} "
                            "(a record before it was replaced, inserted or deleted)",
                        )
                    if record_digest(self._key, fields) != row.hash:
                        return VerifyReport(
                            False,
                            count,
                            row.seq,
                            f"record {row.seq} does not match its hash (edited, or the chain "
                            "was written with another PDP_AUDIT_KEY)",
                        )
                    prev, expected_seq, count = row.hash, expected_seq + 1, count + 1
                    last, last_revision = row.seq, int(row.revision)
                    if checkpoint is not None and row.seq == checkpoint.seq:
                        held = row.hash
        if (int(head.audit_seq), str(head.audit_hash)) != (expected_seq - 1, prev):
            return VerifyReport(
                False,
                count,
                int(head.audit_seq),
                f"the chain ends at record {expected_seq - 1} but its head says "
                f"{head.audit_seq}: records were deleted from its end, or appended behind "
                "the service's back",
            )
        revision = int(head.revision)
        lacking = None
        if checkpoint is not None:
            lacking = missing(checkpoint, count, held)
        behind = revision_problem(revision, count, last_revision)
        if lacking is None and behind is None:
            return VerifyReport(
                True,
                count,
                None,
                f"{count} records, chain intact, head {prev}, revision {revision}",
            )
        # The first record that is not as it should be: the first missing one, or the one
        # the checkpoint saw with another hash.
        first = (
            count + 1 if lacking is None or held is None or checkpoint is None else checkpoint.seq
        )
        message = "; ".join(p for p in (lacking, behind) if p)
        return VerifyReport(False, count, first, message, lacks_checkpoint=lacking is not None)


def missing(checkpoint: Anchor, end: int, held: str | None) -> str | None:
    """What the chain lacks of ``checkpoint``, or None if it holds it. ``end`` is the chain's
    last record, ``held`` the hash of its record ``checkpoint.seq`` (None: no such record)."""
    if held == checkpoint.hash and end >= checkpoint.seq:
        return None
    saw = f"the {checkpoint.describe()} saw record {checkpoint.seq} with hash {checkpoint.hash}"
    if held is None:
        lost = span("record", end + 1, checkpoint.seq)
        are = "is" if end + 1 == checkpoint.seq else "are"
        return f"{lost} {are} missing: the chain ends at record {end}, {saw}"
    if held != checkpoint.hash:
        return (
            f"record {checkpoint.seq} is not the one checkpointed (hash {held}): the chain "
            f"was rewritten or replaced from that record or before; {saw}"
        )
    return f"the chain ends at record {end}, before record {checkpoint.seq}: {saw}"


def span(noun: str, first: int, last: int) -> str:
    """ "record 7", or "records 7-9"."""
    return f"{noun} {first}" if first == last else f"{noun}s {first}-{last}"


def revision_problem(revision: int, count: int, last_revision: int | None) -> str | None:
    """Why an intact chain of ``count`` records, the last of revision ``last_revision``, does
    not go with the policy's ``revision`` (see the module), or None."""
    if last_revision is None:
        if revision == 0:
            return None
        return (
            f"the chain is empty but the policy is at revision {revision}: every revision "
            f"leaves records, so those of {span('revision', 1, revision)} are missing (the "
            "trail was emptied and its head reset)"
        )
    if last_revision < revision:
        return (
            f"the policy is at revision {revision} but the chain's last record, {count}, is of "
            f"revision {last_revision}: the records of "
            f"{span('revision', last_revision + 1, revision)} are missing (cut off the end, and "
            "the head moved back)"
        )
    if last_revision > revision:
        return (
            f"the chain's last record, {count}, is of revision {last_revision}, after the "
            f"policy's revision {revision}: the revision was moved back"
        )
    return None


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of ``AuditChain.verify``: ``first_broken`` is a seq, or None if intact."""

    ok: bool
    checked: int
    first_broken: int | None
    message: str
    lacks_checkpoint: bool = False  # the chain does not hold the checkpoint compared


class RecordJson(TypedDict):
    """The API form of one audit record: who did what, on what (``target``, and ``related``
    for a membership or a manager), the state before and after, the revision and request it
    belongs to, and its link in the chain (``hash``)."""

    seq: int
    at: str
    actor: str
    action: str
    target: str
    related: str | None
    organisation: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    revision: int
    request_id: str | None
    hash: str


def record_json(row: Any) -> RecordJson:
    """The API form of one audit record."""
    return {
        "seq": row.seq,
        "at": iso_us(row.ts_us),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "related": row.related,
        "organisation": row.organisation,
        "before": orjson.loads(row.before) if row.before else None,
        "after": orjson.loads(row.after) if row.after else None,
        "revision": row.revision,
        "request_id": row.request_id,
        "hash": row.hash,
    }


def iso_us(ts_us: int) -> str:
    """Microseconds since the epoch as ISO 8601 UTC ("…Z")."""
    return (
        dt.datetime.fromtimestamp(ts_us / 1_000_000, dt.UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def iter_records(db: Engine, after_seq: int = 0) -> Iterator[RecordJson]:
    """Every record after ``after_seq``, oldest first, in their API form (tests, export)."""
    with db.connect() as conn:
        for row in conn.execute(
            select(AuditRecord).where(AuditRecord.seq > after_seq).order_by(AuditRecord.seq)
        ):
            yield record_json(row)


def head_seq(db: Engine) -> int:
    """The seq of the chain's last record (0 when empty)."""
    with db.connect() as conn:
        return int(
            conn.execute(
                select(PolicyRevision.audit_seq).where(PolicyRevision.id == 1)
            ).scalar_one()
        )


@dataclass(frozen=True)
class StoredEvent:
    """An audit record read back (``AuditReader``)."""

    seq: int
    actor: str
    action: str
    target: str
    related: str | None
    organisation: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    revision: int
    request_id: str | None


class AuditReader:
    """The records appended to the chain since this reader was made (tests, benchmarks)."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        self.start = head_seq(db)

    @property
    def events(self) -> list[StoredEvent]:
        """The new records, oldest first."""
        return [
            StoredEvent(
                seq=r["seq"],
                actor=r["actor"],
                action=r["action"],
                target=r["target"],
                related=r["related"],
                organisation=r["organisation"],
                before=r["before"],
                after=r["after"],
                revision=r["revision"],
                request_id=r["request_id"],
            )
            for r in iter_records(self.db, self.start)
        ]
