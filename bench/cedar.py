"""Cedar (cedarpy) as an alternative to the engine: the same day's lines, the same queries.

The entities are built from ``pdp.engine.casbin_lines.policy_lines``, the very lines the plain
Casbin alternative loads, and mirror ``policies/rbac_with_domains.conf``:

- a ``Permission`` entity ``"<org domain>|<service>|<role>"`` stands for the matcher's
  ``r.dom == p.dom && r.obj == p.obj && r.act == p.act``; each grant also yields
  ``"<org domain>|<service>|*"``, which is what asking for "any role" (``r.act == "*"``) means;
  its attribute ``cafs`` holds the Caf names subscribed for (service, domain), with ``"*"``
  for "some Caf": the ``g2(r.caf, r.obj, r.dom)`` link;
- a ``Group`` entity ``"group:<id>"`` has as parents the Permissions of its grants;
- a ``User`` entity ``"user:<login>"`` has as parents the Groups of its membership lines
  (``g(r.sub, p.sub, r.dom)``) and the Permissions of its own Afas grants (Casbin links a user
  to itself). Groups only hold grants of their own organisation and the Permission asked
  carries the user's organisation, so the domain of ``g`` is enforced by the Permission's id.

One policy: ``principal in resource && resource.cafs.contains(context.caf)``. A request asks
for the Permission ``"<user's org domain>|<service>|<role or *>"`` with the Caf as context;
its entity slice is the user, the user's groups and that one Permission. Unknown users and
users with no organisation get a slice with only themselves: Cedar denies, as Casbin does.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import cedarpy

from bench.stats import summary
from pdp.engine.casbin_lines import PolicyLines, caf_name, org_domain, policy_lines, user_subject
from pdp.engine.casbin_model import ANY_ROLE
from pdp.engine.decision import Query, Reason
from pdp.engine.index import Index
from pdp.engine.snapshot import Snapshot

POLICY = """permit (principal, action == Action::"use", resource)
when { principal in resource && resource.cafs.contains(context.caf) };"""

Entity = dict[str, Any]
_ACTION = {"type": "Action", "id": "use"}


def _uid(kind: str, name: str) -> dict[str, str]:
    return {"type": kind, "id": name}


def _permission(domain: str, service: str, role: str) -> str:
    return f"{domain}|{service}|{role}"


class CedarReference:
    """The day's policy lines as Cedar entities, asked with the engine's vocabulary."""

    def __init__(self, lines: PolicyLines, domains: dict[str, str]) -> None:
        """``domains`` maps each login with an organisation to its org domain."""
        self.policies = cedarpy.PolicySet.from_str(POLICY)
        self.domains = domains
        self.parents: dict[str, set[str]] = {}  # user or group subject -> parents' ids
        self.groups: dict[str, set[str]] = {}  # user subject -> group subjects
        for subject, domain, service, role in lines.grants:
            perms = self.parents.setdefault(subject, set())
            perms.add(_permission(domain, service, role))
            perms.add(_permission(domain, service, ANY_ROLE))
        for user, group, _domain in lines.memberships:
            self.groups.setdefault(user, set()).add(group)
        by_pair: dict[str, set[str]] = {}
        for caf, service, domain in lines.subscriptions:
            by_pair.setdefault(f"{domain}|{service}", set()).add(caf)
        # "domain|service" -> Caf names
        self.cafs: dict[str, list[str]] = {pair: sorted(c) for pair, c in by_pair.items()}
        self._group_entities: dict[str, Entity] = {}
        self._slices: dict[str, list[Entity]] = {}  # login -> user entity and its groups

    @classmethod
    def for_day(cls, snap: Snapshot, day: int) -> CedarReference:
        """Build the entities for the snapshot's organisations on day ordinal ``day``."""
        codes = {oid: code for oid, code, _ in snap.organisations}
        domains = {
            login: org_domain(codes[org])
            for _, login, org, _s, _e in snap.users
            if org is not None and org in codes
        }
        return cls(policy_lines(snap, day), domains)

    def entity_count(self) -> int:
        """Users and groups with some line, and the Permissions they are in."""
        groups = {g for gs in self.groups.values() for g in gs}
        perms = {p for ps in self.parents.values() for p in ps}
        return len(set(self.groups) | set(self.parents) | groups) + len(perms)

    def _group(self, group: str) -> Entity:
        entity = self._group_entities.get(group)
        if entity is None:
            parents = [_uid("Permission", p) for p in sorted(self.parents.get(group, ()))]
            entity = {"uid": _uid("Group", group), "attrs": {}, "parents": parents}
            self._group_entities[group] = entity
        return entity

    def _user_slice(self, login: str) -> list[Entity]:
        found = self._slices.get(login)
        if found is None:
            subject = user_subject(login)
            groups = sorted(self.groups.get(subject, ()))
            parents = [_uid("Group", g) for g in groups]
            parents += [_uid("Permission", p) for p in sorted(self.parents.get(subject, ()))]
            user = {"uid": _uid("User", subject), "attrs": {}, "parents": parents}
            found = [user, *(self._group(g) for g in groups)]
            self._slices[login] = found
        return found

    def request(
        self, login: str, service: str, role: str | None, caf: str | None
    ) -> tuple[dict[str, Any], list[Entity]]:
        """The Cedar request of a check, and its entity slice."""
        domain = self.domains.get(login)
        principal = _uid("User", user_subject(login))
        resource_id = _permission(domain or "-", service, role or ANY_ROLE)
        request = {
            "principal": principal,
            "action": _ACTION,
            "resource": _uid("Permission", resource_id),
            "context": {"caf": caf_name(caf)},
        }
        if domain is None:  # unknown, or no organisation: nothing to be in
            return request, [{"uid": principal, "attrs": {}, "parents": []}]
        cafs = self.cafs.get(f"{domain}|{service}", [])
        permission = {"uid": request["resource"], "attrs": {"cafs": cafs}, "parents": []}
        return request, [*self._user_slice(login), permission]

    def allowed(self, login: str, service: str, role: str | None, caf: str | None) -> bool:
        """Return Cedar's answer for a check of user ``login``."""
        request, entities = self.request(login, service, role, caf)
        return cedarpy.is_authorized(request, self.policies, entities).allowed


def compare_cedar(
    snap: Snapshot,
    index: Index,
    day: dt.date,
    sample: list[Query],
    budget_s: float,
    min_queries: int = 30,
) -> dict[str, Any]:
    """Build Cedar entities over ``snap``'s lines of ``day``; time ``is_authorized`` on a sample.

    Stops after ``budget_s`` seconds once ``min_queries`` are done. Each answer is compared
    with ``index.decide``; slice building is timed apart from the Cedar call.
    """
    started = time.perf_counter()
    ordinal = day.toordinal()
    cedar = CedarReference.for_day(snap, ordinal)
    build_s = time.perf_counter() - started
    policies = cedar.policies
    allowed_ns: list[int] = []
    denied_ns: list[int] = []
    slice_ns: list[int] = []
    agree = errors = first_ns = 0
    disagreements: list[str] = []
    deadline = time.perf_counter() + budget_s
    clock = time.perf_counter_ns
    for q in sample:
        done = len(slice_ns)
        if done >= min_queries and time.perf_counter() > deadline:
            break
        t0 = clock()
        request, entities = cedar.request(q.user, q.service, q.role, q.caf)
        t1 = clock()
        result = cedarpy.is_authorized(request, policies, entities)
        elapsed = clock() - t1
        slice_ns.append(t1 - t0)
        if done == 0:
            first_ns = elapsed
        slow = result.allowed
        errors += bool(result.diagnostics.errors)
        (allowed_ns if slow else denied_ns).append(elapsed)
        fast = index.decide(q.user, q.service, q.role, q.caf, ordinal).reason is Reason.ALLOWED
        if fast == slow:
            agree += 1
        elif len(disagreements) < 10:
            disagreements.append(f"{q} ours={fast} cedar={slow}")
    return {
        "build_s": build_s,
        "entities": cedar.entity_count(),
        "first_call_ms": first_ns / 1e6,
        "all": summary(allowed_ns + denied_ns),
        "allowed": summary(allowed_ns),
        "denied": summary(denied_ns),
        "slice": summary(slice_ns),
        "errors": errors,
        "agree": agree,
        "compared": len(slice_ns),
        "disagreements": disagreements,
        "budget_s": budget_s,
    }
