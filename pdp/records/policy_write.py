"""The one unit of work of every write to the policy store: a transaction that takes the
revision row's lock, then commits the change, its change log and its audit records together, or
nothing at all.

Writers (the administration verbs through ``AdminService.write``, the API keys'
``ClientStore``) open a ``PolicyWriter.write``, change rows through its session, and note what
they did (``PolicyWrite.record``, ``PolicyWrite.changed``). The lock serialises writers: what a
writer reads after taking it is the latest committed state. A write that takes a new revision
logs the domains it touched, or the parts of them (a user, an organisation's groups), so that
every engine reloads them; one that does not (an API key)
records the current revision in its audit records. The audit records are appended to the chain
in the same transaction, just before the commit: no change without its record, no record of a
change that did not happen.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from pdp.adapters.sql.database import UnitOfWork, bump_revision, lock_revision, log_changes
from pdp.records.audit_trail import AuditChain, AuditEvent


@dataclass
class PolicyWrite:
    """A write in progress: its session, its revision, the domains it touched, its records."""

    session: Session
    revision: int
    new_revision: bool = True
    organisations: set[int | None] = field(default_factory=set)
    events: list[AuditEvent] = field(default_factory=list)
    # Parts of domains touched: (organisation, scope, subject id) (``pdp.engine.snapshot``).
    parts: set[tuple[int, str, int | None]] = field(default_factory=set)

    def changed(
        self, organisation_id: int | None, scope: str | None = None, subject: int | None = None
    ) -> None:
        """Note a domain to reload (None: every domain), or only a part of it: ``scope``
        ``USER`` (the user ``subject``) or ``STRUCTURE`` (see ``pdp.engine.snapshot``)."""
        if scope is None or organisation_id is None:
            self.organisations.add(organisation_id)
        else:
            self.parts.add((organisation_id, scope, subject))

    def touched(self) -> set[int | None]:
        """Every domain touched, wholly or in part."""
        return self.organisations | {org for org, _, _ in self.parts}

    def record(self, event: AuditEvent) -> None:
        """Note one change for the audit trail."""
        self.events.append(event)


class PolicyWriter:
    """Opens policy writes (see the module)."""

    def __init__(self, uow: UnitOfWork, audit: AuditChain) -> None:
        self._uow = uow
        self._audit = audit

    @contextmanager
    def write(
        self, reason: str, *, new_revision: bool = True, request_id: str | None = None
    ) -> Iterator[PolicyWrite]:
        """One write: committed when the block ends normally, rolled back on an exception.
        ``new_revision`` False keeps the current revision (no engine has anything to reload)."""
        with self._uow.begin() as session:
            write = begin(session, new_revision=new_revision)
            yield write
            finish(write, self._audit, reason, request_id=request_id)


def begin(session: Session, *, new_revision: bool = True) -> PolicyWrite:
    """Start a policy write in ``session``'s transaction: take the revision row's lock, and a
    new revision unless ``new_revision`` is False. (``PolicyWriter.write`` is the usual way;
    a loader that owns its transaction, such as the demo's, calls this and ``finish``.)"""
    revision = bump_revision(session) if new_revision else lock_revision(session)
    return PolicyWrite(session, revision, new_revision=new_revision)


def finish(
    write: PolicyWrite, audit: AuditChain, reason: str, *, request_id: str | None = None
) -> None:
    """Log the domains a new revision touched and append the write's audit records, in its
    transaction (the caller commits it)."""
    if write.new_revision:
        whole = write.organisations or (set() if write.parts else {None})
        log_changes(write.session, write.revision, whole, reason, write.parts)
    audit.append(write.session, write.events, request_id)
