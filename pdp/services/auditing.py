"""What auditors ask: the decision log and the audit trail, read back with their explanation.

Operators read everything; a partner admin reads the decisions and the audit trail of their own
organisation only (``log.read`` in ``policies/admin_policy.csv``). Each of these reads is itself
an administrative decision, logged like any other (R-ADM-7).

"Who looked at what, under which right, and who granted that right": a logged check holds its
grant path (user → group → role, at the policy revision it was decided at); ``decision`` adds to
each step the audit record that made it: who attached the user to the group and when, who gave
the group the role and when.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import Engine, Select, or_, select

from pdp.adapters.sql.models import AuditRecord, DecisionRecord
from pdp.core.errors import BadRequest, Forbidden, NotFound
from pdp.core.masking import Masker
from pdp.engine.actions import Action
from pdp.engine.rules import AdminReason, Target
from pdp.records.audit_trail import RecordJson, iso_us, record_json
from pdp.services.admin import contracts
from pdp.services.admin.responses import OrganisationItem
from pdp.services.admin.service import AdminService
from pdp.services.audit_pages import (
    AuditPage,
    DecisionPage,
    ExplainedStep,
    Granted,
    HistoryPage,
    LoggedDecision,
    Reader,
)

PAGE_DEFAULT = 50
_MAX_BIGINT = 1 << 63


class AuditorQueries:
    """The read side of the decision log and of the audit trail."""

    def __init__(self, db: Engine, admin: AdminService, masker: Masker) -> None:
        self.db = db
        self.admin = admin
        self.masker = masker

    # -- who may read what ---------------------------------------------------------------------

    def _scope(self, actor: str, organisation: str | None) -> str | None:
        """The organisation the actor reads (None: every one, operators only). Without an
        organisation named, a partner admin reads their own."""
        if organisation is None:
            user = self.admin.engine.index.users.get(actor)
            if user is None or user.org is None:
                self.admin.require(actor, Action.LOG_READ, Target("platform"))
                return None
            organisation = user.org.code
        self.admin.require(actor, Action.LOG_READ, Target("organisation", organisation))
        return organisation

    def _known(self, service: str | None, role: str | None) -> None:
        """Raise BadRequest (UNKNOWN_SERVICE / UNKNOWN_ROLE) for a filter outside the
        catalogue, as every other endpoint does."""
        catalogue = self.admin.catalogue
        if service is not None:
            catalogue.check_role(service, role)
        elif role is not None and not any(s.accepts(role) for s in catalogue.services.values()):
            raise BadRequest(f"Rôle inconnu : {role!r}.", code="UNKNOWN_ROLE")

    def _home(self, actor: str) -> str | None:
        """The actor's organisation (None: a Caf operator, or an unknown login)."""
        self.admin.engine.refresh()
        user = self.admin.engine.index.users.get(actor)
        return user.org.code if user is not None and user.org is not None else None

    def may_read(self, actor: str) -> bool:
        """Whether the actor may read the log at all (what a menu offers, R-ADM-7): operators,
        and partner admins in their own organisation. A logged decision, like any other."""
        home = self._home(actor)
        target = Target("organisation", home) if home is not None else Target("platform")
        reason, _ = self.admin.decide(actor, Action.LOG_READ, target)
        return reason is AdminReason.ALLOWED

    def reader(
        self, actor: str, organisation: str | None = None, *, own_organisation: bool = False
    ) -> Reader:
        """Authorise the actor to read the log, as the reads below do (``log.read``: Forbidden
        with the engine's reason otherwise), before anything is read or any filter judged; and
        say what they read:

        - ``organisation``: the organisation read: ``organisation`` when named, else the
          actor's own (None: every one, operators only). With ``own_organisation`` (the audit
          trail's form, which offers a partner admin no choice) a partner admin reads their
          own whatever ``organisation`` names;
        - ``may_choose``: whether the actor chooses the organisation (operators);
        - ``organisations``: what an operator may choose from (``pdp.services.admin.contracts.
          list_organisations``: code, name, dates); empty for the others.
        """
        home = self._home(actor)
        if own_organisation and home is not None:
            organisation = home
        scope = self._scope(actor, organisation)
        choices: list[OrganisationItem] = []
        if home is None:  # an operator (log.read on the platform was just allowed)
            choices = contracts.list_organisations(self.admin, actor).organisations
        return Reader(scope, home is None, choices)

    # -- the decision log ----------------------------------------------------------------------

    def decisions(
        self,
        actor: str,
        *,
        organisation: str | None = None,
        user: str | None = None,
        service: str | None = None,
        allowed: bool | None = None,
        kind: str | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        limit: int = PAGE_DEFAULT,
        cursor: str | None = None,
        allocataire: str | None = None,
    ) -> DecisionPage:
        """A page of logged decisions, newest first (``allocataire``: the checks about that
        family's file, found by its pseudonym)."""
        scope = self._scope(actor, organisation)
        self._known(service, None)
        query = select(DecisionRecord)
        if scope is not None:
            query = query.where(DecisionRecord.organisation == scope)
        if user is not None:
            query = query.where(DecisionRecord.user == self.masker.mask_field("user", user))
        if service is not None:
            query = query.where(DecisionRecord.service == service)
        if allowed is not None:
            query = query.where(DecisionRecord.allowed == allowed)
        if kind is not None:
            query = query.where(DecisionRecord.kind == kind)
        if allocataire is not None:
            query = query.where(DecisionRecord.allocataire == self.masker.pseudonym(allocataire))
        if start is not None:
            query = query.where(DecisionRecord.ts_us >= _us(start))
        if end is not None:
            query = query.where(DecisionRecord.ts_us < _us(end))
        if cursor is not None:
            ts_us, decision_id = _decode_pair(cursor)
            query = query.where(
                or_(
                    DecisionRecord.ts_us < ts_us,
                    (DecisionRecord.ts_us == ts_us) & (DecisionRecord.decision_id < decision_id),
                )
            )
        query = query.order_by(DecisionRecord.ts_us.desc(), DecisionRecord.decision_id.desc())
        rows = self._page(query, limit)
        last = rows[limit - 1] if len(rows) > limit else None
        return DecisionPage(
            [_decision_json(r) for r in rows[:limit]],
            _encode_pair(last.ts_us, last.decision_id) if last else None,
        )

    def decision(self, actor: str, decision_id: str) -> LoggedDecision:
        """One logged decision with its full explanation; 404 if absent or not the actor's to
        read (an auditor of one organisation does not learn that another's exists)."""
        with self.db.connect() as conn:
            row = conn.execute(
                select(DecisionRecord).where(DecisionRecord.decision_id == decision_id)
            ).first()
        try:
            if row is not None and row.organisation is None:
                # A decision of no organisation (an operator's, an unknown user's, a listing
                # across organisations) is the platform's: operators only.
                self.admin.require(actor, Action.LOG_READ, Target("platform"))
            else:
                self._scope(actor, row.organisation if row is not None else None)
        except Forbidden:
            row = None
        if row is None:
            raise NotFound(
                f"Décision inconnue (ou pas encore expédiée au journal) : {decision_id!r}.",
                code="UNKNOWN_DECISION",
            )
        out = _decision_json(row)
        out["explanation"] = self._explain(out)
        return out

    def _explain(self, entry: LoggedDecision) -> list[ExplainedStep]:
        """For each grant of the entry, the audit records that made it."""
        org, login, revision = entry.get("organisation"), entry.get("user"), entry["revision"]
        steps = []
        for group, service, role, source in entry.get("grants") or ():
            step: ExplainedStep = {
                "group": group,
                "service": service,
                "role": role,
                "source": source,
            }
            if source == "group" and group is not None and org is not None:
                group_target = f"group:{org}/{group}"
                step["membership_granted"] = self._last(
                    [AuditRecord.target == f"user:{login}", AuditRecord.related == group_target],
                    revision,
                    {"group": group},
                )
                step["role_granted"] = self._last(
                    [AuditRecord.target == group_target],
                    revision,
                    {"service": service, "role": role},
                )
            elif source == "afas_profile" and login is not None:
                step["profile_granted"] = self._last(
                    [AuditRecord.target == f"user:{login}"], revision, {"profile": role}
                )
            steps.append(step)
        return steps

    def _last(self, where: list[Any], revision: int, expect: dict[str, Any]) -> Granted | None:
        """The latest audit record (at or before ``revision``) that created something whose
        ``after`` state has the ``expect``ed values."""
        query = (
            select(AuditRecord)
            .where(*where, AuditRecord.revision <= revision, AuditRecord.before.is_(None))
            .order_by(AuditRecord.seq.desc())
        )
        with self.db.connect() as conn:
            for row in conn.execute(query):
                after = orjson.loads(row.after) if row.after else {}
                if all(after.get(k) == v for k, v in expect.items()):
                    return {
                        "by": row.actor,
                        "at": iso_us(row.ts_us),
                        "action": row.action,
                        "revision": row.revision,
                        "audit_seq": row.seq,
                    }
        return None

    # -- the audit trail -----------------------------------------------------------------------

    def audit(
        self,
        actor: str,
        organisation: str,
        *,
        by: str | None = None,
        target: str | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        limit: int = PAGE_DEFAULT,
        cursor: str | None = None,
    ) -> AuditPage:
        """A page of the organisation's audit records, newest first."""
        self._scope(actor, organisation)
        query = select(AuditRecord).where(AuditRecord.organisation == organisation)
        if by is not None:
            query = query.where(AuditRecord.actor == self.masker.mask_field("user", by))
        if target is not None:
            query = query.where(AuditRecord.target == self.masker.mask_target(target))
        return self._audit_page(query, start, end, limit, cursor)

    def history(
        self,
        actor: str,
        organisation: str,
        target: str,
        *,
        service: str | None = None,
        role: str | None = None,
        limit: int = PAGE_DEFAULT,
        cursor: str | None = None,
    ) -> HistoryPage:
        """The history of one user or group: the records about it, and for a user the records
        that gave or took a role from the groups they were attached to ("who gave Alice T18,
        and when?"), optionally only those about ``service``/``role``."""
        self._scope(actor, organisation)
        self._known(service, role)
        target = self.masker.mask_target(target)
        about = or_(AuditRecord.target == target, AuditRecord.related == target)
        if target.startswith("user:"):
            with self.db.connect() as conn:
                groups = {
                    related
                    for (related,) in conn.execute(
                        select(AuditRecord.related).where(
                            AuditRecord.target == target,
                            AuditRecord.related.like("group:%"),
                        )
                    )
                }
            if groups:
                about = or_(about, AuditRecord.target.in_(sorted(groups)))
        query = select(AuditRecord).where(AuditRecord.organisation == organisation, about)
        if not (service or role):
            page = self._audit_page(query, None, None, limit, cursor)
            return HistoryPage(target, page.records, page.next_cursor)
        # The groups of this history that held the role at some point: their memberships and
        # their own records (opening, closing) are how the role came and went.
        with self.db.connect() as conn:
            held = {
                r["target"]
                for r in map(record_json, conn.execute(query.where(_GROUP_TARGET)))
                if _mentions(r, service, role)
            }
        # Filtered in Python (before/after are JSON text): read on until one record more than
        # the page is found, and resume after the last record *returned*, so that a page never
        # skips the matching records that followed it in the rows read.
        matched: list[RecordJson] = []
        position = cursor
        while len(matched) <= limit:
            raw = self._audit_page(query, None, None, limit * 4, position)
            matched.extend(r for r in raw.records if _concerns(r, target, held, service, role))
            position = raw.next_cursor
            if position is None:
                break
        records = matched[:limit]
        more = len(matched) > limit
        return HistoryPage(target, records, _encode_pair(records[-1]["seq"], "") if more else None)

    def _audit_page(
        self,
        query: Select[Any],
        start: dt.datetime | None,
        end: dt.datetime | None,
        limit: int,
        cursor: str | None,
    ) -> AuditPage:
        if start is not None:
            query = query.where(AuditRecord.ts_us >= _us(start))
        if end is not None:
            query = query.where(AuditRecord.ts_us < _us(end))
        if cursor is not None:
            query = query.where(AuditRecord.seq < _decode_seq(cursor))
        rows = self._page(query.order_by(AuditRecord.seq.desc()), limit)
        last = rows[limit - 1] if len(rows) > limit else None
        return AuditPage(
            [record_json(r) for r in rows[:limit]],
            _encode_pair(last.seq, "") if last else None,
        )

    def _page(self, query: Select[Any], limit: int) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(query.limit(limit + 1)))


def export_decisions(
    db: Engine, organisation: str | None, start: dt.datetime | None, end: dt.datetime | None
) -> Iterable[bytes]:
    """Every logged decision in the period, oldest first, as JSON lines (the CLI's export)."""
    query = select(DecisionRecord).order_by(DecisionRecord.ts_us, DecisionRecord.decision_id)
    if organisation is not None:
        query = query.where(DecisionRecord.organisation == organisation)
    if start is not None:
        query = query.where(DecisionRecord.ts_us >= _us(start))
    if end is not None:
        query = query.where(DecisionRecord.ts_us < _us(end))
    with db.connect() as conn:
        for row in conn.execution_options(yield_per=2000).execute(query):
            yield orjson.dumps(_decision_json(row), option=orjson.OPT_APPEND_NEWLINE)


_GROUP_TARGET = AuditRecord.target.like("group:%")


def _right(state: Any) -> tuple[Any, Any] | None:
    """The (service, role) a record's state gives: a group's role, or an Afas profile."""
    if not isinstance(state, dict):
        return None
    if "role" in state:
        return state.get("service"), state["role"]
    if "profile" in state:
        return "afas", state["profile"]
    return None


def _mentions(record: RecordJson, service: str | None, role: str | None) -> bool:
    """Whether the record gives or takes that service (and role)."""
    for state in (record["before"], record["after"]):
        right = _right(state)
        if right is not None and service in (None, right[0]) and role in (None, right[1]):
            return True
    return False


def _concerns(
    record: RecordJson, target: str, held: set[str], service: str | None, role: str | None
) -> bool:
    """Whether a record of ``target``'s history belongs to its history filtered on a role:
    the records giving or taking that role; the memberships of the groups that held it; the
    other records of ``target`` itself and of those groups (creation, dates, closing)."""
    if _right(record["before"]) is not None or _right(record["after"]) is not None:
        return _mentions(record, service, role)
    related = record["related"] or ""
    if record["target"].startswith("user:") and related.startswith("group:"):
        return related in held  # a membership
    return record["target"] == target or record["target"] in held


def _decision_json(row: Any) -> LoggedDecision:
    entry: LoggedDecision = orjson.loads(row.entry)
    entry["at_time"] = iso_us(row.ts_us)
    entry["grants"] = entry.get("grants") or []  # a JSON array each; none for some kinds
    return entry


def _us(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1_000_000)


def _encode_pair(number: int, text: str) -> str:
    return base64.urlsafe_b64encode(f"{number}\x00{text}".encode()).decode().rstrip("=")


def _decode_pair(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        number, text = raw.split("\x00")
        value = int(number)
        if not 0 <= value < _MAX_BIGINT:
            raise ValueError(number)  # out of a BIGINT column's range: a 500 otherwise
        return value, text
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("Curseur de pagination invalide.", code="INVALID_CURSOR") from None


def _decode_seq(cursor: str) -> int:
    return _decode_pair(cursor)[0]
