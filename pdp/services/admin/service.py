"""The administration service: who acts, may they (R-ADM-7), and one policy write per action.

Every write goes through ``AdminService.write``, over the store's one unit of work for policy
writes (``pdp.records.policy_write``):

1. the policy write takes the next revision: its row lock serialises writers, so what the write
   reads next is the latest committed state and concurrent requests cannot both pass a check
   that only one of them may pass (a third admin, two managers, ...): the second one sees the
   first one's commit and is refused with 409;
2. the engine is brought up to the revision just before, then asked whether the actor may do
   the action on the target (403 with the engine's reason otherwise);
3. the verb runs with a ``Tx``: the write's session and revision, the actor's day, and two
   narrow abilities (authorise a second action, ask the engine a check); it validates, writes
   rows and notes its audit records;
4. the policy write logs the domains touched and appends the audit records to the chain in the
   same transaction, then commits; on any error nothing is written, audit records included;
5. after the commit, the engine is refreshed at once (the next decision on this instance sees
   the change) and the other workers of this instance are told.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine as SqlEngine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from pdp.adapters.sql.database import UnitOfWork
from pdp.adapters.sql.snapshot import load_snapshot
from pdp.core import context
from pdp.core.catalogue import Catalogue
from pdp.core.errors import Forbidden, NotFound, Unauthorized, Unavailable
from pdp.core.masking import Masker
from pdp.engine.actions import Action, parse_action
from pdp.engine.decision import Decision, Query
from pdp.engine.index import Index
from pdp.engine.policy import PolicyEngine
from pdp.engine.rules import ADMIN_MESSAGES, AdminReason, Target, parse_target
from pdp.observability import metrics
from pdp.records.audit_trail import AuditChain, AuditEvent, now
from pdp.records.decision_log import DecisionLog, new_decision_id
from pdp.records.decision_log.entry import new_entry
from pdp.records.policy_write import PolicyWrite, PolicyWriter
from pdp.services.admin.preview import Preview, PreviewReady, consequences, previewing, summary
from pdp.services.admin.responses import AdminCheckReason, AdminCheckResponse, Notice
from pdp.services.tokens import TokenVerifier

log = logging.getLogger("pdp.admin")

# The database failing under a request (connection lost, disk full, lock or statement timeout,
# pool exhausted): the transaction is rolled back, nothing was written, the caller may retry.
STORE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
STORE_UNAVAILABLE = (
    "La base des habilitations est momentanément indisponible : rien n'a été modifié, "
    "réessayer plus tard."
)


@dataclass
class Tx:
    """One administrative write in progress: the policy write (session, revision, records), who
    does what on which day, and the two things a verb may ask beyond its rows: authorise a second
    action of the same actor, and a check of the engine (R-AFAS-4's notice)."""

    write: PolicyWrite
    actor: str
    action: Action
    target: Target
    today: dt.date
    _authorise: Callable[[str, Action, Target], None]
    check: Callable[[Query], Decision]
    notices: list[Notice] = field(default_factory=list)

    @property
    def session(self) -> Session:
        """The write's session."""
        return self.write.session

    @property
    def revision(self) -> int:
        """The revision the write takes."""
        return self.write.revision

    def authorise(self, action: Action, target: Target) -> None:
        """Also require ``action`` on ``target`` (a write that does two things, e.g. creating
        the manager it names). Raises Forbidden."""
        self._authorise(self.actor, action, target)

    def record(
        self,
        target: str,
        organisation: str | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        organisation_id: int | None,
        action: Action | None = None,
        related: str | None = None,
        scope: tuple[str, int | None] | None = None,
    ) -> None:
        """Note one change for the audit trail, and the domain to reload. ``related`` names a
        second object the change concerns (the group of a membership, the manager of a
        group), so that the history of either finds it. ``scope``: only that part of the
        domain changed (``pdp.engine.snapshot``: (USER, user id), (GROUP, group id),
        (STRUCTURE, None)); by default the whole domain is reloaded."""
        if scope is None:
            self.write.changed(organisation_id)
        else:
            self.write.changed(organisation_id, *scope)
        self.write.record(
            AuditEvent(
                actor=self.actor,
                action=action or self.action,
                target=target,
                organisation=organisation,
                before=before,
                after=after,
                revision=self.revision,
                ts=now(),
                related=related,
            )
        )

    def notice(self, code: str, message: str) -> None:
        """Add a notice to the response (e.g. R-AFAS-4)."""
        self.notices.append(Notice(code=code, message=message))


class AdminService:
    """Authenticates actors, asks the engine, runs each write in one transaction."""

    def __init__(
        self,
        db: SqlEngine,
        engine: PolicyEngine,
        catalogue: Catalogue,
        audit: AuditChain,
        decision_log: DecisionLog,
        verifier: TokenVerifier | None,
        masker: Masker | None = None,
    ) -> None:
        self.db = db
        self.engine = engine
        self.catalogue = catalogue
        self.audit = audit
        self.decision_log = decision_log
        self.verifier = verifier
        self.masker = masker or Masker()
        self.uow = UnitOfWork(sessionmaker(db, expire_on_commit=False))
        self.writer = PolicyWriter(self.uow, audit)

    def today(self) -> dt.date:
        """Today in Europe/Paris (the engine's clock)."""
        return self.engine.clock()

    # -- who acts ----------------------------------------------------------------------------

    def actor(self, authorization: str | None) -> str:
        """Return the acting user's login from the Authorization header; raise Unauthorized
        unless the token is valid and names a user open today (R-USR-4)."""
        if self.verifier is None:
            raise Unauthorized(
                "L'API d'administration n'est pas configurée : définir PDP_JWT_SECRET ou "
                "PDP_JWT_PUBLIC_KEY.",
                code="AUTH_NOT_CONFIGURED",
            )
        return self.open_actor(self.verifier.login(authorization))

    def open_actor(self, login: str) -> str:
        """Return ``login`` if it names a user open today; raise Unauthorized otherwise
        (``UNKNOWN_ACTOR``; ``ACTOR_CLOSED``: closed, or not open yet, R-USR-4). The console's
        sign-in asks the same question."""
        self.engine.refresh()
        user = self.engine.index.users.get(login)
        day = self.today().toordinal()
        if user is None:
            raise Unauthorized(f"Utilisateur inconnu : {login!r}.", code="UNKNOWN_ACTOR")
        if day < user.start:
            raise Unauthorized("Compte pas encore ouvert (R-USR-4).", "ACTOR_CLOSED")
        if day >= user.end:
            raise Unauthorized("Compte clôturé (R-USR-4).", "ACTOR_CLOSED")
        return login

    # -- may they ----------------------------------------------------------------------------

    def decide(self, actor: str, action: Action, target: Target) -> tuple[AdminReason, str]:
        """Ask the engine (R-ADM-7) and log the decision; return (reason, decision id)."""
        self.engine.refresh()
        started = time.perf_counter_ns()
        reason = self.engine.authorise(actor, action, target)
        elapsed = time.perf_counter_ns() - started
        decision_id = new_decision_id()
        self.decision_log.record(
            new_entry(
                decision_id,
                "admin",
                self._organisation(actor, target),
                self.masker.mask_field("user", actor),
                reason is AdminReason.ALLOWED,
                reason.value,
                self.engine.revision,
                eval_us=elapsed / 1000,
                action=action,
                target=self.masker.mask_target(str(target)),
            )
        )
        metrics.ADMIN[reason]()
        return reason, decision_id

    def _organisation(self, actor: str, target: Target) -> str | None:
        """The organisation a decision belongs to: the target's, else the actor's."""
        if target.organisation:
            return target.organisation
        user = self.engine.index.users.get(target.login or actor)
        return user.org.code if user is not None and user.org is not None else None

    def check(self, actor: str, action: str, target: str) -> AdminCheckResponse:
        """The public question "may ``actor`` do ``action`` on ``target``?" (R-ADM-7). Raises
        BadRequest (INVALID_TARGET, UNKNOWN_ACTION, ACTION_TARGET_MISMATCH) for a meaningless
        question."""
        parsed = parse_target(target)
        named = parse_action(action)
        self.engine.rights.validate(named, parsed)
        reason, decision_id = self.decide(actor, named, parsed)
        return AdminCheckResponse(
            allowed=reason is AdminReason.ALLOWED,
            reason=AdminCheckReason(code=reason, message=ADMIN_MESSAGES[reason]),
            decision_id=decision_id,
            revision=self.engine.revision,
        )

    def require(self, actor: str, action: Action, target: Target) -> None:
        """Raise Forbidden (code = the engine's reason) unless the actor may act; NotFound
        if the target does not exist."""
        self.engine.rights.validate(action, target)
        reason, decision_id = self.decide(actor, action, target)
        if reason is AdminReason.POLICY_UNAVAILABLE:
            raise Unavailable(ADMIN_MESSAGES[reason])
        if reason is AdminReason.UNKNOWN_TARGET:
            raise self._unknown(target, decision_id)
        if reason is not AdminReason.ALLOWED:
            raise Forbidden(
                ADMIN_MESSAGES[reason],
                code=reason.value,
                details={"action": action, "target": str(target), "decision_id": decision_id},
            )

    def _unknown(self, target: Target, decision_id: str) -> NotFound:
        """What a target the engine does not know is, for every route alike: 404 with the
        unknown part (UNKNOWN_ORGANISATION, UNKNOWN_GROUP, UNKNOWN_USER)."""
        details = {"target": str(target), "decision_id": decision_id}
        if target.kind == "user":
            return NotFound(f"Utilisateur inconnu : {target.login!r}.", "UNKNOWN_USER", details)
        if target.kind == "group" and target.organisation in self.engine.index.org_by_code:
            return NotFound(
                f"Groupe inconnu dans {target.organisation} : {target.group!r}.",
                "UNKNOWN_GROUP",
                details,
            )
        return NotFound(
            f"Organisme inconnu : {target.organisation!r}.", "UNKNOWN_ORGANISATION", details
        )

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def read(self, actor: str, action: Action, target: Target) -> Iterator[Session]:
        """Authorise a read, then yield a session in a read-only transaction. Raises
        Unavailable(STORE_UNAVAILABLE) if the database fails."""
        self.require(actor, action, target)
        try:
            with self.uow.begin() as session:
                yield session
        except STORE_ERRORS as exc:
            log.warning("database error during %s: %s", action, exc)
            raise Unavailable(STORE_UNAVAILABLE, code="STORE_UNAVAILABLE") from exc

    @contextmanager
    def write(
        self, actor: str, action: Action, target: Target, *, new_revision: bool = True
    ) -> Iterator[Tx]:
        """One write = one policy write (``pdp.records.policy_write``), serialised by the
        revision lock, authorised at the revision just before it (see the module). Raises
        Unavailable(STORE_UNAVAILABLE) if the database fails: nothing is written.
        ``new_revision`` False: a write that changes no right (an access review's records)
        keeps the current revision, under the same lock, and still leaves its audit records."""
        try:
            with self.writer.write(
                action, new_revision=new_revision, request_id=context.request_id.get()
            ) as write:
                # Authorised at the revision just before the new one, or at the one kept.
                taken = write.revision if new_revision else write.revision + 1
                self._authorise_before(taken, actor, action, target)
                tx = Tx(write, actor, action, target, self.today(), self.require, self.engine.check)
                yield tx
                if previewing.get():  # rolled back by the unit of work: nothing is written
                    raise PreviewReady(self._preview(write, action, target))
                if not write.events:
                    # Every revision leaves a record: `pdp audit verify` checks the policy's
                    # revision against the chain's last record. A write that changed nothing
                    # still says who took the revision, and for what.
                    tx.record(str(target), target.organisation, None, None, None)
        except STORE_ERRORS as exc:
            # Rolled back (the unit of work): a 503 the caller may retry, not a 500.
            log.warning("database error during %s, rolled back: %s", action, exc)
            raise Unavailable(STORE_UNAVAILABLE, code="STORE_UNAVAILABLE") from exc
        if new_revision:
            self.engine.notify(write.revision)

    def _preview(self, write: PolicyWrite, action: Action, target: Target) -> Preview:
        """The write's consequences, read back from its own transaction and indexed by the
        engine's index, against the engine's index at the revision just before it."""
        before = self.engine.index
        touched = write.touched()
        ids = sorted(before.orgs) if None in touched else sorted(i for i in touched if i)
        write.session.flush()  # the verb's pending rows, into the transaction read below
        after = Index.build(load_snapshot(write.session.connection(), ids))
        users, groups = consequences(before, after, ids, self.today(), self.catalogue)
        text = summary(users, groups, self.catalogue)
        return Preview(str(action), str(target), False, users, groups, text)

    def _authorise_before(self, revision: int, actor: str, action: Action, target: Target) -> None:
        """Bring the engine to the revision just before ``revision`` (the lock is held: nothing
        else commits meanwhile), then require the actor's right (Forbidden otherwise)."""
        if self.engine.revision != revision - 1:
            self.engine.refresh(force=True)
            if self.engine.revision != revision - 1:
                raise Unavailable(ADMIN_MESSAGES[AdminReason.POLICY_UNAVAILABLE])
        self.require(actor, action, target)
