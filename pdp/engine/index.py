"""The fast path: the domain store indexed by user and by organisation (the Casbin domain).

A check touches one user, their few memberships and their organisation's partition: its cost
does not depend on how many organisations there are. Dates stay in the index as day-ordinal
windows [start, end), so one index answers for any day (R-TIME-1, R-TIME-2) and no cache has to
be kept per day. Its semantics are those of ``policies/rbac_with_domains.conf`` evaluated by
Casbin over the lines of ``pdp.engine.casbin_model.policy_lines``; the differential tests check
that they agree.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import NamedTuple

from pdp.engine.decision import Grant, Reason
from pdp.engine.entries import GrantEntry, GroupEntry, OrgPartition, UserEntry, Window
from pdp.engine.snapshot import Snapshot
from pdp.engine.users_table import UserTable

_DAYS: dict[int, int] = {}  # day ordinal -> its one shared int object (see Index._absorb)


def _shared_day(ordinal: int) -> int:
    return _DAYS.setdefault(ordinal, ordinal)


class Outcome(NamedTuple):
    """What the index found: a reason and the grants (empty unless allowed)."""

    reason: Reason
    grants: tuple[Grant, ...] = ()


class Index:
    """Users and organisation partitions at one revision. Built whole by ``build``; changed in
    place afterwards only by the engine's refresh (``pdp.engine.index_delta``), on the thread
    that answers requests, between two answers (see ``pdp.engine.policy``)."""

    __slots__ = ("_sorted_orgs", "org_by_code", "orgs", "revision", "users")

    def __init__(self, revision: int = 0) -> None:
        self.revision = revision
        self.orgs: dict[int, OrgPartition] = {}
        # Flat records shared by the forked workers; a user read from it is a copy (see
        # ``pdp.engine.users_table``).
        self.users = UserTable(self.orgs)
        self.org_by_code: dict[str, OrgPartition] = {}
        self._sorted_orgs: list[OrgPartition] | None = None

    def sorted_orgs(self) -> list[OrgPartition]:
        """Every organisation by code (sorted once per index, for the listings)."""
        if self._sorted_orgs is None:
            self._sorted_orgs = sorted(self.orgs.values(), key=lambda o: o.code)
        return self._sorted_orgs

    @classmethod
    def build(cls, snap: Snapshot) -> Index:
        """Index a full snapshot."""
        index = cls(snap.revision)
        index._absorb(snap)
        return index

    def _absorb(self, snap: Snapshot) -> None:
        # Interned: every day ordinal, service, role and Caf code is one shared object, so a
        # check compares against objects already in the CPU cache instead of one copy per row
        # scattered over a gigabyte (the measured growth with scale was cache misses).
        day, intern = _shared_day, sys.intern
        orgs = {oid: OrgPartition(oid, code, name) for oid, code, name in snap.organisations}
        for org_id, service, caf, start, end in snap.subscriptions:
            if start < end:
                orgs[org_id].subscriptions.setdefault(intern(service), []).append(
                    (intern(caf), day(start), day(end))
                )
        entries: dict[int, GroupEntry] = {}
        windows = _effective_windows(snap)
        for gid, org_id, parent, code, label, own_start, own_end in snap.groups:
            org = orgs.get(org_id)
            if org is not None:
                start, end = windows[gid]
                entries[gid] = org.groups[gid] = GroupEntry(
                    gid, code, label, parent, day(start), day(end), {}, day(own_start), day(own_end)
                )
                org.group_by_code[code] = gid
        for gid, service, role, start, end in snap.group_roles:
            entry = entries.get(gid)
            if entry is not None and start < end:
                entry.roles.setdefault(intern(service), []).append(
                    (intern(role), day(start), day(end))
                )
        by_id: dict[int, UserEntry] = {}
        by_login: dict[str, UserEntry] = {}
        for uid, login, user_org, start, end in snap.users:
            user_entry = UserEntry(uid, login, user_org, day(start), day(end))
            by_id[uid] = by_login[login] = user_entry
            if user_org is not None and user_org in orgs:
                orgs[user_org].logins.append(login)
        for uid, gid, start, end in snap.memberships:
            user = by_id.get(uid)
            if user is not None and start < end:
                user.memberships.append((gid, day(start), day(end)))
        for uid, profile, start, end in snap.afas_profiles:
            user = by_id.get(uid)
            if user is not None and start < end:
                user.profiles.append((intern(profile), day(start), day(end)))
        for uid in snap.operators:
            user = by_id.get(uid)
            if user is not None:
                user.is_operator = True
        for org_id, uid, start, end in snap.partner_admins:
            if org_id in orgs and start < end:
                orgs[org_id].admins.append((uid, start, end))
        for gid, uid, start, end in snap.group_managers:
            user = by_id.get(uid)
            if user is not None and gid in entries and start < end:
                if isinstance(user.managed, tuple):
                    user.managed = []
                user.managed.append((gid, start, end))
        flat = {oid: _group_grants(org) for oid, org in orgs.items()}
        for user in by_id.values():
            if user.organisation_id is not None and user.organisation_id in orgs:
                user.org = orgs[user.organisation_id]
                _precompute_grants(user, flat[user.organisation_id])
        for org in orgs.values():
            org.logins.sort()
        self.orgs.update(orgs)
        self.org_by_code = {org.code: org for org in self.orgs.values()}
        self.users.add_all(by_login)  # last: a user is encoded as it is now

    # -- decisions ---------------------------------------------------------------------------

    def decide(
        self,
        login: str,
        service: str,
        role: str | None,
        caf: str | None,
        day: int,
        opening: frozenset[str] | None = None,
    ) -> Outcome:
        """Decide R-DEC-1 for one user on day ordinal ``day``; deny with a reason otherwise.
        ``opening``: asked for a feature, the roles that open it (any one of them will do).

        The hot path: plain loops over precomputed windows, shared outcomes for denials.
        """
        user = self.users.get(login)
        if user is None:
            return _DENIED[Reason.UNKNOWN_USER]
        if day < user.start:
            return _DENIED[Reason.USER_NOT_YET_OPEN]
        if day >= user.end:
            return _DENIED[Reason.USER_CLOSED]
        org = user.org
        if org is None:
            return _DENIED[Reason.NO_ORGANISATION]
        subs = org.subscriptions.get(service)
        subscribed = caf_ok = False
        if subs:
            for c, s, e in subs:  # plain loops: generators cost more than the work here
                if s <= day < e:
                    subscribed = True
                    if caf is None or c == caf:
                        caf_ok = True
                        break
        if not subscribed:
            return _DENIED[Reason.NO_SUBSCRIPTION]
        if not caf_ok:
            return _DENIED[Reason.CAF_NOT_SUBSCRIBED]
        entries = user.grants.get(service)
        if opening is not None:
            return _by_feature(user, org, service, entries, opening, day)
        if entries:
            make = tuple.__new__
            found = tuple(
                [
                    make(Grant, g)
                    for s, e, r, g in entries
                    if s <= day < e and (role is None or r == role)
                ]
            )
            if found:
                return make(Outcome, (Reason.ALLOWED, found))
        return _DENIED[_why_not(user, org, service, role, day)]

    def permissions(self, login: str, day: int) -> dict[str, tuple[list[Grant], list[str]]]:
        """Return, per usable service, its grants and the Cafs it may be used for (R-DEC-4)."""
        out: dict[str, tuple[list[Grant], list[str]]] = {}
        user = self.users.get(login)
        if user is None or not user.start <= day < user.end or user.org is None:
            return out
        subscriptions = user.org.subscriptions
        for service in sorted(user.grants):
            cafs = sorted({c for c, s, e in subscriptions.get(service, ()) if s <= day < e})
            grants = [
                tuple.__new__(Grant, g) for s, e, _r, g in user.grants[service] if s <= day < e
            ]
            if cafs and grants:
                out[service] = (grants, cafs)
        return out


def _group_grants(
    org: OrgPartition, only: Iterable[int] | None = None
) -> dict[int, list[tuple[str, int, int, str, Grant]]]:
    """Per group (of ``only``, when given): (service, start, end, role, grant), the group and
    role windows intersected."""
    out: dict[int, list[tuple[str, int, int, str, Grant]]] = {}
    groups = org.groups
    chosen = groups.items() if only is None else ((g, groups[g]) for g in only if g in groups)
    for gid, group in chosen:
        gs, ge = group.start, group.end
        flat = []
        for service, roles in group.roles.items():
            for r, rs, re in roles:
                s = rs if rs > gs else gs
                e = re if re < ge else ge
                if s < e:
                    flat.append((service, s, e, r, Grant(service, r, group.code)))
        if flat:
            out[gid] = flat
    return out


def _precompute_grants(
    user: UserEntry, flat: dict[int, list[tuple[str, int, int, str, Grant]]]
) -> None:
    """Fill ``user.grants``: every (membership ∩ group ∩ role) window that is not empty."""
    grants = user.grants
    for gid, ms, me in user.memberships:
        entries = flat.get(gid)  # a group of another organisation is not in ``flat``
        if entries is None:
            continue
        for service, s, e, r, grant in entries:
            if ms > s:
                s = ms
            if me < e:
                e = me
            if s < e:
                found = grants.get(service)
                if found is None:
                    grants[service] = [(s, e, r, grant)]
                else:
                    found.append((s, e, r, grant))
    for profile, ps, pe in user.profiles:
        grant = Grant("afas", profile, None, "afas_profile")
        grants.setdefault("afas", []).append((ps, pe, profile, grant))


def _by_feature(
    user: UserEntry,
    org: OrgPartition,
    service: str,
    entries: list[GrantEntry] | None,
    opening: frozenset[str],
    day: int,
) -> Outcome:
    """A feature of the service, once the user and subscription are known good: allowed by the
    grants whose role opens it; denied FEATURE_NOT_GRANTED when the user may use the service
    but with no such role, else for the reason the service itself is denied."""
    held = [(r, g) for s, e, r, g in entries or () if s <= day < e]
    found = tuple([tuple.__new__(Grant, g) for r, g in held if r in opening])
    if found:
        return Outcome(Reason.ALLOWED, found)
    if held:
        return _DENIED[Reason.FEATURE_NOT_GRANTED]
    return _DENIED[_why_not(user, org, service, None, day)]


def _why_not(
    user: UserEntry, org: OrgPartition, service: str, role: str | None, day: int
) -> Reason:
    """Explain a denial once the user and subscription are known good (R-DEC-3)."""
    member = False
    for gid, ms, me in user.memberships:
        if not ms <= day < me:
            continue
        group = org.groups.get(gid)
        if group is None:
            continue
        group_open = group.start <= day < group.end
        member = member or group_open
        if group_open:
            continue
        for r, rs, re in group.roles.get(service, ()):
            if rs <= day < re and (role is None or r == role):
                return Reason.GROUP_CLOSED
    return Reason.ROLE_NOT_GRANTED if member else Reason.NO_MEMBERSHIP


# Denials carry no grants: one shared outcome per reason.
_DENIED = {reason: Outcome(reason) for reason in Reason}


def _effective_windows(snap: Snapshot) -> dict[int, Window]:
    """Return each group's window intersected with its ancestors' (R-GRP-2, R-DEC-1).

    A group whose parent is unknown, in another organisation, or that sits on a cycle, gets an
    empty window: it grants nothing (fail closed on corrupt data).
    """
    org_of = {gid: org for gid, org, *_ in snap.groups}
    raw: dict[int, tuple[int | None, int, int]] = {}
    for gid, org, parent, _c, _l, start, end in snap.groups:
        if parent is not None and org_of.get(parent) != org:
            parent = -1  # a parent in another organisation counts as missing
        raw[gid] = (parent, start, end)
    windows: dict[int, Window] = {}
    for gid in raw:
        chain: list[int] = []
        cur: int | None = gid
        while cur is not None and cur not in windows:
            if cur not in raw or cur in chain:
                for node in chain:
                    windows[node] = (0, 0)
                break
            chain.append(cur)
            cur = raw[cur][0]
        else:
            start, end = windows[cur] if cur is not None else (0, 1 << 62)
            for node in reversed(chain):
                _, s, e = raw[node]
                start, end = max(start, s), min(end, e)
                windows[node] = (start, end)
    return windows


def service_users(
    index: Index,
    service: str,
    role: str | None,
    organisations: list[OrgPartition],
    day: int,
    after: tuple[str, str] | None,
    limit: int,
    opening: frozenset[str] | None = None,
) -> tuple[list[tuple[str, str, tuple[Grant, ...]]], tuple[str, str] | None]:
    """Return up to ``limit`` (organisation code, login, grants) allowed to use the service
    (with ``role``, or with one of the roles ``opening`` a feature).

    ``organisations`` must be sorted by code. Ordered by (organisation code, login), starting
    after ``after``; the second value is the position to resume from, or None at the end.
    """
    found: list[tuple[str, str, tuple[Grant, ...]]] = []
    for org in organisations:
        if after is not None and org.code < after[0]:
            continue
        subs = org.subscriptions.get(service)
        if not subs or not any(s <= day < e for _, s, e in subs):
            continue
        for login in org.logins:
            if after is not None and (org.code, login) <= after:
                continue
            outcome = index.decide(login, service, role, None, day, opening)
            if outcome.reason is Reason.ALLOWED:
                if len(found) == limit:
                    last = found[-1]
                    return found, (last[0], last[1])
                found.append((org.code, login, outcome.grants))
    return found, None
