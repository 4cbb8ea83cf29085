"""The decision verbs: check, batch check, permissions, service users. Queries never write.

Each verb takes plain data, validates it against the catalogue (BadRequest otherwise), asks the
engine, records the decision in the decision log, and returns plain results for the API.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Unpack

from pdp.core.catalogue import Catalogue
from pdp.core.errors import BadRequest, Conflict, NotFound, PdpError, Unavailable
from pdp.core.masking import Masker
from pdp.engine.decision import MESSAGES, Decision, Grant, Query, Reason
from pdp.engine.index import service_users as index_service_users
from pdp.engine.policy import PolicyEngine
from pdp.observability import metrics, tracing
from pdp.records.decision_log import DecisionLog, new_decision_id
from pdp.records.decision_log.entry import Details, Entry, GrantStep, Kind, new_entry

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger("pdp.decisions")

_CAF_CODE = re.compile(r"^[0-9A-Za-z]{1,10}$")


@dataclass(frozen=True)
class Checked:
    """A decision with its id, as returned to callers."""

    decision_id: str
    decision: Decision


@dataclass(frozen=True, slots=True)
class GrantPath:
    """One path that grants access, as answered: the group (None for an Afas profile), the
    service and role it grants, and its source (``group`` or ``afas_profile``)."""

    group: str | None
    service: str
    role: str
    source: str

    @classmethod
    def of(cls, grant: Grant) -> GrantPath:
        return cls(grant.group, grant.service, grant.role, grant.source)


@dataclass(frozen=True, slots=True)
class ServicePermission:
    """A service the user may use, with the roles and Cafs it is open for, and why."""

    service: str
    roles: list[str]
    features: list[str] | None  # None: the service declares none (a role opens it all)
    cafs: list[str]
    grants: list[GrantPath]


@dataclass(frozen=True, slots=True)
class Permissions:
    """Everything a user may use on a day (R-DEC-4), under the id of its logged listing."""

    user: str
    at: dt.date
    revision: int
    services: list[ServicePermission]
    decision_id: str


@dataclass(frozen=True, slots=True)
class ServiceUser:
    """A user who may use the service, with the roles they hold on it."""

    login: str
    organisation: str
    roles: list[str]


@dataclass(frozen=True, slots=True)
class ServiceUsers:
    """A page of a service's users; ``next_cursor`` is None on the last page."""

    service: str
    role: str | None
    at: dt.date
    revision: int
    users: list[ServiceUser]
    next_cursor: str | None
    decision_id: str


class DecisionService:
    """The composition of engine, catalogue and decision log behind the decision API."""

    def __init__(
        self,
        engine: PolicyEngine,
        catalogue: Catalogue,
        decision_log: DecisionLog,
        masker: Masker | None = None,
    ) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self.decision_log = decision_log
        self.masker = masker or Masker()
        # Set when PDP_TRACING is on (pdp.observability.tracing): a span per decision.
        self.tracer: Tracer | None = None

    def at_least(self, revision: int | None, timeout: float) -> None:
        """Read-your-writes: return once the engine serves ``revision`` or later, never answer
        from an older state. Raise Conflict (409 REVISION_UNKNOWN) when the store itself has no
        such revision, Unavailable (503 REVISION_NOT_REACHED) when the store could not be read
        within ``timeout`` seconds."""
        if revision is None:
            return
        outcome = self.engine.wait_for(revision, timeout)
        if outcome == "reached":
            return
        if outcome == "unknown":
            raise Conflict(
                f"La révision {revision} n'existe pas (révision courante : "
                f"{self.engine.revision}).",
                code="REVISION_UNKNOWN",
                details={"wanted": revision, "served": self.engine.revision},
            )
        raise Unavailable(
            f"La révision {revision} des habilitations n'est pas encore disponible ici "
            f"(révision servie : {self.engine.revision}) ; réessayer.",
            code="REVISION_NOT_REACHED",
            details={"wanted": revision, "served": self.engine.revision},
        )

    def validate(self, query: Query) -> None:
        """Raise BadRequest (UNKNOWN_SERVICE / UNKNOWN_ROLE / UNKNOWN_FEATURE /
        ROLE_AND_FEATURE / INVALID_CAF) for bad names."""
        self.catalogue.check_role(query.service, query.role)
        if query.feature is not None:
            self.catalogue.check_feature(query.service, query.role, query.feature)
        if query.caf is not None and not _CAF_CODE.match(query.caf):
            raise BadRequest(f"Code Caf invalide : {query.caf!r}.", code="INVALID_CAF")

    def check(self, query: Query) -> Checked:
        """Decide one query (R-DEC-1) and log it before returning (LogUnavailable if it cannot
        be logged). Raises BadRequest for catalogue errors only."""
        self.validate(query)
        self.engine.refresh()
        checked, entry = self._decide(query) if self.tracer is None else self._traced(query)
        self.decision_log.record(entry)
        return checked

    def check_many(self, queries: list[Query | PdpError]) -> list[Checked | PdpError]:
        """Decide each valid query; items that are errors are answered as such, in order. The
        entries of the whole batch are logged in one write, before returning."""
        self.engine.refresh()
        out: list[Checked | PdpError] = []
        entries: list[Entry] = []
        for query in queries:
            if isinstance(query, PdpError):
                out.append(query)
                continue
            try:
                self.validate(query)
            except BadRequest as exc:
                out.append(exc)
                continue
            checked, entry = self._decide(query) if self.tracer is None else self._traced(query)
            out.append(checked)
            entries.append(entry)
        self.decision_log.record_many(entries)
        return out

    def _fresh(self) -> None:
        """Refresh the engine; raise Unavailable if its rules are too old to list rights."""
        self.engine.refresh()
        if self.engine.stale:
            raise Unavailable(MESSAGES[Reason.POLICY_UNAVAILABLE])

    def _traced(self, query: Query) -> tuple[Checked, Entry]:
        """``_decide`` in a ``pdp.decision`` span naming the decision."""
        if self.tracer is None or not tracing.recording():
            return self._decide(query)
        with tracing.decision_span(self.tracer) as span:
            checked, entry = self._decide(query)
            decision = checked.decision
            tracing.describe_decision(
                span,
                {
                    "decision_id": checked.decision_id,
                    "reason": decision.reason.value,
                    "allowed": decision.allowed,
                    "service": query.service,
                    "revision": decision.revision,
                },
            )
        return checked, entry

    def _decide(self, query: Query) -> tuple[Checked, Entry]:
        started = time.perf_counter_ns()
        decision = self.engine.check(query)
        elapsed = time.perf_counter_ns() - started
        metrics.CHECKS[decision.reason]()
        # 128 random bits from the (per-process, fork-reseeded) Mersenne Twister: unique like a
        # UUID4 at a tenth of its cost (uuid4 makes a system call per decision).
        decision_id = new_decision_id()
        entry = new_entry(
            decision_id,
            "check",
            self._organisation(query.user),
            self.masker.mask_field("user", query.user),
            decision.allowed,
            decision.reason.value,
            decision.revision,
            eval_us=elapsed / 1000,
            service=query.service,
            role=query.role,
            caf=query.caf,
            at=decision.day.isoformat() if decision.day else None,
            # The grant path: (group, service, role, source) of every grant that allows.
            grants=[(g.group, g.service, g.role, g.source) for g in decision.grants],
        )
        if query.feature is not None:
            entry["feature"] = query.feature
        if query.allocataire is not None:  # always pseudonymised, whatever PDP_LOG_MASK says
            entry["allocataire"] = self.masker.pseudonym(query.allocataire)
        return Checked(decision_id, decision), entry

    def _organisation(self, login: str) -> str | None:
        user = self.engine.index.users.get(login)
        return user.org.code if user is not None and user.org is not None else None

    def _log_listing(
        self,
        kind: Kind,
        login: str | None,
        found: bool,
        reason: str,
        organisation: str | None = None,
        **details: Unpack[Details],
    ) -> str:
        """Log a listing of rights (of a user, or of a service's users in ``organisation``)."""
        decision_id = new_decision_id()
        self.decision_log.record(
            new_entry(
                decision_id,
                kind,
                self._organisation(login) if login else organisation,
                self.masker.mask_field("user", login) if login else None,
                found,
                reason,
                self.engine.revision,
                **details,
            )
        )
        metrics.count_decision(kind, found, reason)
        return decision_id

    def permissions(
        self, login: str, at: dt.date | None, services_asked: frozenset[str] | None = None
    ) -> Permissions:
        """Every service, role and Caf the user may use on the day (R-DEC-4); only the
        services in ``services_asked`` when given (those the calling front-end may ask about)."""
        self._fresh()
        day = self.engine.day(at)
        index = self.engine.index
        user = index.users.get(login)
        if user is None:
            decision_id = self._log_listing(
                "permissions", login, False, Reason.UNKNOWN_USER.value, at=day.isoformat()
            )
            raise NotFound(
                f"Utilisateur inconnu : {login!r}.",
                code="UNKNOWN_USER",
                details={"decision_id": decision_id},
            )
        try:
            found = index.permissions(login, day.toordinal())
        except Exception:
            log.exception("permissions listing failed: %r", login)
            raise Unavailable(MESSAGES[Reason.ENGINE_ERROR], code="ENGINE_ERROR") from None
        services = []
        grants_logged: list[GrantStep] = []
        for service, (grants, cafs) in found.items():
            if services_asked is not None and service not in services_asked:
                continue
            roles = sorted({g.role for g in grants})
            services.append(
                ServicePermission(
                    service,
                    roles,
                    self._features(service, roles),
                    cafs,
                    [GrantPath.of(g) for g in grants],
                )
            )
            grants_logged.extend((g.group, g.service, g.role, g.source) for g in grants)
        decision_id = self._log_listing(
            "permissions",
            login,
            bool(services),
            Reason.ALLOWED.value if services else "NOTHING_GRANTED",
            at=day.isoformat(),
            grants=grants_logged,
        )
        return Permissions(login, day, index.revision, services, decision_id)

    def _features(self, service: str, roles: list[str]) -> list[str] | None:
        """The features ``roles`` open, in the catalogue's order (None: the service declares
        none)."""
        spec = self.catalogue.services.get(service)
        if spec is None or not spec.features:
            return None
        opened = {f for role in roles for f in spec.opens.get(role, ())}
        return [f for f in spec.features if f in opened]

    def service_users(
        self,
        service: str,
        role: str | None,
        organisation: str | None,
        at: dt.date | None,
        limit: int,
        cursor: str | None,
        feature: str | None = None,
    ) -> ServiceUsers:
        """Who may use the service (with the role, or opening the feature) on the day, by
        (organisation, login)."""
        self.catalogue.check_role(service, role)
        self.catalogue.check_feature(service, role, feature)
        opening = None if feature is None else self.catalogue.services[service].opened_by(feature)
        self._fresh()
        index = self.engine.index
        day = self.engine.day(at)
        if organisation is not None:
            org = index.org_by_code.get(organisation)
            if org is None:
                raise NotFound(
                    f"Organisme inconnu : {organisation!r}.", code="UNKNOWN_ORGANISATION"
                )
            orgs = [org]
        else:
            orgs = index.sorted_orgs()
        after = decode_cursor(cursor) if cursor else None
        try:
            rows, last = index_service_users(
                index, service, role, orgs, day.toordinal(), after, limit, opening
            )
        except Exception:
            log.exception("service users listing failed: %s", service)
            raise Unavailable(MESSAGES[Reason.ENGINE_ERROR], code="ENGINE_ERROR") from None
        details: Details = {
            "service": service,
            "role": role,
            "at": day.isoformat(),
            "count": len(rows),
        }
        if feature is not None:
            details["feature"] = feature
        decision_id = self._log_listing(
            "service_users",
            None,
            bool(rows),
            Reason.ALLOWED.value if rows else "NOTHING_GRANTED",
            organisation,
            **details,
        )
        return ServiceUsers(
            service,
            role,
            day,
            index.revision,
            [
                ServiceUser(login, org_code, sorted({g.role for g in grants}))
                for org_code, login, grants in rows
            ],
            encode_cursor(last) if last else None,
            decision_id,
        )


def grant_json(grant: Grant) -> dict[str, Any]:
    """The JSON form of a grant path."""
    return {
        "group": grant.group,
        "service": grant.service,
        "role": grant.role,
        "source": grant.source,
    }


def encode_cursor(position: tuple[str, str]) -> str:
    """Opaque pagination cursor for an (organisation code, login) position."""
    raw = f"{position[0]}\x00{position[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Decode a cursor made by ``encode_cursor``; raise BadRequest(INVALID_CURSOR) otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        org, login = raw.split("\x00")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("Curseur de pagination invalide.", code="INVALID_CURSOR") from None
    return org, login
