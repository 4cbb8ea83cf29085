"""Feeds Casbin from the domain store: the policy lines that hold on one day.

This is written from the rules directly and independently of the fast index, so that Casbin
evaluating these lines is a real reference for it. Only records open on the day become lines
(pycasbin's own time-conditioned links are unusable at our scale: in pycasbin 2.8, adding one at
run time fails and loading a few thousand takes minutes):

- a *membership* line  (user, group, organisation) for each membership open on the day of a
  user open on the day;
- a *grant* line       (subject, organisation, service, role) for each group role open on the
  day in a group open on the day whose ancestors are all open too (R-GRP-2, R-DEC-1), and for
  each Afas profile open on the day of a user open on the day (subject = the user);
- a *subscription* line (caf, service, organisation) for each subscription open on the day under
  an open convention of an open organisation (R-CON-2, R-CON-3), plus one with ``ANY_CAF``;
- a *feature* line (role, feature, service) for each feature a role opens (the catalogue's
  ``opens``: no dates, it changes with the catalogue only).

Names are prefixed (``user:``, ``group:``, ``org:``, ``caf:``) so that a login can never be
taken for a group, nor a Caf for a service. ``pdp.engine.casbin_model`` turns these into
Casbin ``p``/``g``/``g2``/``g3`` rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pdp.core.catalogue import Catalogue
from pdp.engine.snapshot import Snapshot

ANY_CAF = "*"  # unprefixed: no Caf code maps to it, not even "*"


def user_subject(login: str) -> str:
    """Casbin subject of a user."""
    return f"user:{login}"


def group_subject(group_id: int) -> str:
    """Casbin role name of a group."""
    return f"group:{group_id}"


def caf_name(code: str | None) -> str:
    """Casbin name of a Caf (``ANY_CAF`` for "some Caf"). Prefixed: Casbin links every name to
    itself, so a bare Caf code equal to a service name would match that service."""
    return ANY_CAF if code is None else f"caf:{code}"


def org_domain(code: str) -> str:
    """Casbin domain of an organisation."""
    return f"org:{code}"


@dataclass
class PolicyLines:
    """The lines of one day, deduplicated (a duplicate link is a pycasbin trap)."""

    grants: set[tuple[str, str, str, str]] = field(default_factory=set)
    memberships: set[tuple[str, str, str]] = field(default_factory=set)
    subscriptions: set[tuple[str, str, str]] = field(default_factory=set)
    features: set[tuple[str, str, str]] = field(default_factory=set)


def _open(day: int, start: int, end: int) -> bool:
    return start <= day < end


def feature_name(feature: str) -> str:
    """Casbin name of a feature (prefixed: a feature is never taken for a role)."""
    return f"feature:{feature}"


def policy_lines(snap: Snapshot, day: int, catalogue: Catalogue | None = None) -> PolicyLines:
    """Return the lines that hold on day ordinal ``day`` for the snapshot's organisations, and
    the catalogue's features (what each role of each service opens) when it is given."""
    lines = PolicyLines()
    for spec in catalogue.services.values() if catalogue is not None else ():
        for role, opened in spec.opens.items():
            lines.features.update((role, feature_name(f), spec.name) for f in opened)
    org_code = {oid: code for oid, code, _ in snap.organisations}
    for org_id, service, caf, start, end in snap.subscriptions:
        if _open(day, start, end) and org_id in org_code:
            dom = org_domain(org_code[org_id])
            lines.subscriptions.add((caf_name(caf), service, dom))
            lines.subscriptions.add((ANY_CAF, service, dom))

    groups = {gid: (org, parent, s, e) for gid, org, parent, _c, _l, s, e in snap.groups}

    def group_open(gid: int, org: int, seen: frozenset[int] = frozenset()) -> bool:
        # Open on the day with every ancestor; a parent that is missing, in another
        # organisation, or on a cycle is corrupt data: the group grants nothing.
        if gid not in groups or gid in seen or groups[gid][0] != org:
            return False
        _org, parent, s, e = groups[gid]
        if not _open(day, s, e):
            return False
        return parent is None or group_open(parent, org, seen | {gid})

    for gid, service, role, start, end in snap.group_roles:
        if _open(day, start, end) and gid in groups and group_open(gid, groups[gid][0]):
            org = groups[gid][0]
            if org in org_code:
                lines.grants.add((group_subject(gid), org_domain(org_code[org]), service, role))

    users = {
        uid: (login, org)
        for uid, login, org, s, e in snap.users
        if _open(day, s, e) and org is not None and org in org_code
    }
    for uid, gid, start, end in snap.memberships:
        if uid in users and _open(day, start, end):
            login, org = users[uid]
            lines.memberships.add(
                (user_subject(login), group_subject(gid), org_domain(org_code[org]))
            )
    for uid, profile, start, end in snap.afas_profiles:
        if uid in users and _open(day, start, end):
            login, org = users[uid]
            lines.grants.add((user_subject(login), org_domain(org_code[org]), "afas", profile))
    return lines


# -- Administration (policies/admin.conf) ---------------------------------------------------


def actor_subject(login: str) -> str:
    """Casbin subject of the actor of an administrative request.

    Not ``user_subject``: a target user is the object ``user:<login>``, and Casbin's role
    manager links every name to itself and follows links transitively. Were actors named like
    target users, a manager would be in their own perimeter, and the perimeter of a manager
    whose perimeter holds another manager would take in that manager's perimeter too.
    """
    return f"actor:{login}"


def group_object(org_code: str, group_code: str) -> str:
    """Casbin object of a group, as administrative targets name it."""
    return f"group:{org_code}/{group_code}"


@dataclass
class AdminLines:
    """The administration model's links on one day (``g``, ``g2``, ``g3`` of admin.conf)."""

    capacities: set[tuple[str, str, str]] = field(default_factory=set)
    perimeter: set[tuple[str, str, str]] = field(default_factory=set)
    below: set[tuple[str, str, str]] = field(default_factory=set)


def admin_lines(snap: Snapshot, day: int, afas_habiliter: set[str]) -> AdminLines:
    """Return the administration links that hold on day ordinal ``day``.

    ``afas_habiliter`` is the logins that may use afas:habiliter on the day (asked of the
    decision model by the caller, R-AFAS-2).
    """
    lines = AdminLines()
    org_code = {oid: code for oid, code, _ in snap.organisations}
    groups = {gid: (org, parent, code, s, e) for gid, org, parent, code, _l, s, e in snap.groups}
    children: dict[int, list[int]] = {}
    for gid, (org, parent, *_rest) in groups.items():
        if parent is not None and parent in groups and groups[parent][0] == org:
            children.setdefault(parent, []).append(gid)

    def group_open(gid: int, seen: frozenset[int] = frozenset()) -> bool:
        if gid not in groups or gid in seen:
            return False
        org, parent, _code, s, e = groups[gid]
        if not _open(day, s, e):
            return False
        if parent is None:
            return True
        return groups.get(parent, (None,))[0] == org and group_open(parent, seen | {gid})

    def descendants(gid: int) -> set[int]:
        found: set[int] = set()
        todo = list(children.get(gid, ()))
        while todo:
            cur = todo.pop()
            if cur not in found and cur != gid:
                found.add(cur)
                todo.extend(children.get(cur, ()))
        return found

    users = {uid: (login, org) for uid, login, org, s, e in snap.users if _open(day, s, e)}
    all_users = {uid: (login, org) for uid, login, org, _s, _e in snap.users}
    for uid in snap.operators:
        if uid in users:
            lines.capacities.add((actor_subject(users[uid][0]), "operator", "*"))
    admins: set[tuple[int, int]] = set()
    for org, uid, start, end in snap.partner_admins:
        if _open(day, start, end) and org in org_code:
            admins.add((org, uid))
            if uid in users and users[uid][1] == org:
                lines.capacities.add(
                    (actor_subject(users[uid][0]), "partner_admin", org_domain(org_code[org]))
                )
    for login, home in users.values():
        if home is not None and home in org_code and login in afas_habiliter:
            lines.capacities.add(
                (actor_subject(login), "afas_habiliter", org_domain(org_code[home]))
            )
    memberships: dict[int, list[int]] = {}
    for uid, gid, start, end in snap.memberships:
        if _open(day, start, end):
            memberships.setdefault(uid, []).append(gid)
    perimeters: dict[int, set[int]] = {}  # manager user id -> groups in their perimeter
    for gid, uid, start, end in snap.group_managers:
        if not (_open(day, start, end) and uid in users and gid in groups):
            continue
        login, home = users[uid]
        if home is None or groups[gid][0] != home or home not in org_code or not group_open(gid):
            continue
        dom = org_domain(org_code[home])
        manager = actor_subject(login)
        lines.capacities.add((manager, "manager", dom))
        below = descendants(gid)
        perimeters.setdefault(uid, set()).update(below | {gid})
        for target in below | {gid}:
            obj = group_object(org_code[home], groups[target][2])
            lines.perimeter.add((obj, manager, dom))
            if target in below:
                lines.below.add((obj, manager, dom))
    for manager_id, perimeter in perimeters.items():
        manager_login, manager_org = users[manager_id]
        assert manager_org is not None
        dom = org_domain(org_code[manager_org])
        for uid, (login, user_org) in all_users.items():
            if user_org != manager_org or (manager_org, uid) in admins:
                continue
            if all(gid in perimeter for gid in memberships.get(uid, ())):
                lines.perimeter.add((user_subject(login), actor_subject(manager_login), dom))
    return lines
