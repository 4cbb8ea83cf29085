"""Changes applied to an ``Index`` in place, in proportion to what they touched.

The full build (``Index.build``) stays the reference: the differential tests compare, after
every write, the index kept up to date here with one built from scratch.

Three sizes of change, read from the change log (``pdp.engine.snapshot.Change``):

- a user (``USER``): their entry is rebuilt from their rows (``Delta.users``) and replaces the
  old one; their grants are computed against their organisation's groups as they are now;
- an organisation's structure (``STRUCTURE``: itself, subscriptions, partner admins, groups,
  roles, managers): its partition object is kept (users point to it) and its contents replaced
  from ``Delta.structure``; the users whose grants may differ (a membership of a group whose
  window, code, parent or roles changed) are recomputed, the others keep theirs;
- groups (``GROUP``): their entries and their memberships are rebuilt from their rows
  (``Delta.groups``; closing a group ends its memberships: one change, not one per member), the
  effective windows of their organisation recomputed in memory from every group's own window,
  and the grants recomputed for the members of the groups whose window, code, parent or roles
  changed; the managers of those groups are brought in line;
- a whole organisation (``replace_partitions``): its partition and users are replaced, as the
  full build makes them; no other user is copied.

Every function here mutates the index. The engine calls them only from the thread that answers
requests, between two answers, after every row has been read (no I/O in between): a check never
sees half a change (see ``pdp.engine.policy``).
"""

from __future__ import annotations

import bisect
import sys

from pdp.engine.entries import GroupEntry, OrgPartition, UserEntry
from pdp.engine.index import (
    Index,
    _effective_windows,
    _group_grants,
    _precompute_grants,
    _shared_day,
)
from pdp.engine.snapshot import Snapshot


def replace_partitions(index: Index, snap: Snapshot) -> None:
    """Replace the organisations of ``snap`` (a partial snapshot) and their users by its rows."""
    assert snap.organisation_ids is not None
    for org_id in snap.organisation_ids:
        old = index.orgs.pop(org_id, None)
        if old is not None:
            for login in old.logins:
                index.users.pop(login, None)
    index._absorb(snap)
    index._sorted_orgs = None


def apply_structure(index: Index, snap: Snapshot) -> set[int]:
    """Replace the structure of the organisations of ``snap`` (``Delta.structure``) and
    recompute the grants of their users that may change; return the organisations it could
    not apply (not in the index, or gone from the store): they need their partition reloaded."""
    assert snap.organisation_ids is not None
    day, intern = _shared_day, sys.intern
    rows = {oid: (code, name) for oid, code, name in snap.organisations}
    windows = _effective_windows(snap)
    fresh: dict[int, OrgPartition] = {}
    for oid in snap.organisation_ids:
        if oid in rows and oid in index.orgs:
            fresh[oid] = OrgPartition(oid, *rows[oid])
    for org_id, service, caf, start, end in snap.subscriptions:
        if org_id in fresh and start < end:
            fresh[org_id].subscriptions.setdefault(intern(service), []).append(
                (intern(caf), day(start), day(end))
            )
    entries: dict[int, GroupEntry] = {}
    for gid, org_id, parent, code, label, own_start, own_end in snap.groups:
        if org_id in fresh:
            start, end = windows[gid]
            entries[gid] = fresh[org_id].groups[gid] = GroupEntry(
                gid, code, label, parent, day(start), day(end), {}, day(own_start), day(own_end)
            )
            fresh[org_id].group_by_code[code] = gid
    for gid, service, role, start, end in snap.group_roles:
        entry = entries.get(gid)
        if entry is not None and start < end:
            entry.roles.setdefault(intern(service), []).append((intern(role), day(start), day(end)))
    for org_id, uid, start, end in snap.partner_admins:
        if org_id in fresh and start < end:
            fresh[org_id].admins.append((uid, start, end))
    managed: dict[int, list[tuple[int, int, int]]] = {}
    for gid, uid, start, end in snap.group_managers:
        if gid in entries and start < end:
            managed.setdefault(uid, []).append((gid, start, end))
    for oid, new in fresh.items():
        _swap_structure(index, index.orgs[oid], new, managed)
    return set(snap.organisation_ids) - set(fresh)


def _swap_structure(
    index: Index,
    org: OrgPartition,
    new: OrgPartition,
    managed: dict[int, list[tuple[int, int, int]]],
) -> None:
    """Move ``new``'s structure into ``org`` (kept: its users point to it), then bring its
    users' managed groups and grants in line."""
    changed = {
        gid
        for gid in org.groups.keys() | new.groups.keys()
        if _group_key(org.groups.get(gid)) != _group_key(new.groups.get(gid))
    }
    if new.code != org.code:
        if index.org_by_code.get(org.code) is org:
            del index.org_by_code[org.code]
        index.org_by_code[new.code] = org
        index._sorted_orgs = None
    org.code, org.name = new.code, new.name
    org.groups, org.group_by_code = new.groups, new.group_by_code
    org.subscriptions, org.admins = new.subscriptions, new.admins
    flat = _group_grants(org) if changed else {}
    for login in org.logins:
        uid, memberships, held = index.users.links(login)
        new_managed = managed.get(uid) or ()
        regrant = changed and any(gid in changed for gid, _s, _e in memberships)
        if regrant or new_managed != held:
            user = index.users[login]  # a copy: written back
            user.managed = new_managed
            if regrant:
                user.grants = {}
                _precompute_grants(user, flat)
            index.users[login] = user


def apply_groups(index: Index, snap: Snapshot, noted: dict[int, set[int]]) -> set[int | None]:
    """Rebuild the groups ``noted`` (group id -> the organisations the change log named them
    in) and their members' memberships of them from ``snap`` (``Delta.groups``); return what to
    reload instead: the organisations of a group gone or moved, or None (everything) for a
    member who is not a user of the group's organisation."""
    day, intern = _shared_day, sys.intern
    rows = {row[0]: row for row in snap.groups}
    roles: dict[int, dict[str, list[tuple[str, int, int]]]] = {}
    for gid, service, role, start, end in snap.group_roles:
        if start < end:
            roles.setdefault(gid, {}).setdefault(intern(service), []).append(
                (intern(role), day(start), day(end))
            )
    managers: dict[int, list[tuple[int, int, int]]] = {}  # user id -> (group, start, end)
    for gid, uid, start, end in snap.group_managers:
        if start < end:
            managers.setdefault(uid, []).append((gid, start, end))
    members: dict[int, list[tuple[int, int, int]]] = {}  # group id -> (user, start, end)
    for uid, gid, start, end in snap.memberships:
        if start < end:
            members.setdefault(gid, []).append((uid, day(start), day(end)))
    reload: set[int | None] = set()
    by_org: dict[int, list[int]] = {}
    for gid in sorted(noted):
        row = rows.get(gid)
        if row is None or noted[gid] != {row[1]} or row[1] not in index.orgs:
            reload.update(noted[gid] | ({row[1]} if row is not None else set()))
            continue
        by_org.setdefault(row[1], []).append(gid)
    for oid, gids in by_org.items():
        if oid in reload:
            continue
        org = index.orgs[oid]
        for gid in gids:
            _, _, parent, code, label, own_start, own_end = rows[gid]
            old = org.groups.get(gid)
            if old is not None and org.group_by_code.get(old.code) == gid:
                del org.group_by_code[old.code]
            # Its effective window is set below, with every other group's.
            org.groups[gid] = GroupEntry(
                gid, code, label, parent, 0, 0, roles.get(gid, {}), day(own_start), day(own_end)
            )
            org.group_by_code[code] = gid
        of_org: dict[int, list[tuple[int, int, int]]] = {}  # user id -> (group, start, end)
        for gid in gids:
            for uid, start, end in members.get(gid, ()):
                of_org.setdefault(uid, []).append((gid, start, end))
        if not _settle(index, org, set(gids), managers, of_org):
            reload.add(None)
    return reload


def _settle(
    index: Index,
    org: OrgPartition,
    rebuilt: set[int],
    managers: dict[int, list[tuple[int, int, int]]],
    members: dict[int, list[tuple[int, int, int]]],
) -> bool:
    """After the groups ``rebuilt`` were replaced in ``org``: recompute every effective window,
    then the memberships of those groups (``members``: every membership of them, by user), the
    managed groups and grants of the users they concern. False if a member is not a user of
    ``org`` (the index is then to be rebuilt)."""
    before = {gid: (g.start, g.end) for gid, g in org.groups.items()}
    rows = Snapshot(0)
    rows.groups = [
        (g.id, org.id, g.parent_id, g.code, g.label, g.own_start, g.own_end)
        for g in org.groups.values()
    ]
    changed = set(rebuilt)
    for gid, (start, end) in _effective_windows(rows).items():
        group = org.groups[gid]
        if (start, end) != before[gid] or gid in rebuilt:
            group.start, group.end = _shared_day(start), _shared_day(end)
            changed.add(gid)
    affected = []
    seen = 0
    for login in org.logins:
        uid, memberships, held = index.users.links(login)
        rows_of = members.get(uid)
        touched = rows_of is not None or any(g in rebuilt for g, _s, _e in memberships)
        if not (
            touched
            or any(m[0] in rebuilt for m in held)
            or uid in managers
            or any(gid in changed for gid, _s, _e in memberships)
        ):
            continue  # nothing of theirs changed: not even decoded
        user = index.users[login]  # a copy: written back below when it changed
        if touched:  # its grants go with the memberships it no longer has, too
            kept = [m for m in user.memberships if m[0] not in rebuilt]
            user.memberships = kept + (rows_of or [])
            seen += rows_of is not None
        mine = [m for m in user.managed if m[0] not in rebuilt]
        mine += managers.get(user.id, [])
        dirty = mine != list(user.managed)
        if dirty:
            user.managed = mine or ()
        if touched or any(gid in changed for gid, _s, _e in user.memberships):
            affected.append(user)
        elif dirty:
            index.users[login] = user
    flat = _group_grants(org, {gid for u in affected for gid, _s, _e in u.memberships})
    for user in affected:
        user.grants = {}
        _precompute_grants(user, flat)
        index.users[user.login] = user
    return seen == len(members)


def _group_key(group: GroupEntry | None) -> object:
    """What of a group its members' grants depend on (None: no such group)."""
    if group is None:
        return None
    return (group.code, group.parent_id, group.start, group.end, group.roles)


def apply_users(index: Index, snap: Snapshot, noted: dict[int, set[int]]) -> set[int | None]:
    """Rebuild the entries of the users ``noted`` (user id -> the organisations the change log
    named them in) from ``snap`` (``Delta.users``); return what must be reloaded instead: the
    organisations of a user who moved between organisations, or None (everything) for a user
    without one or in an organisation the index does not have."""
    day, intern = _shared_day, sys.intern
    rows = {row[0]: row for row in snap.users}
    memberships: dict[int, list[tuple[int, int, int]]] = {}
    for uid, gid, start, end in snap.memberships:
        if start < end:
            memberships.setdefault(uid, []).append((gid, day(start), day(end)))
    profiles: dict[int, list[tuple[str, int, int]]] = {}
    for uid, profile, start, end in snap.afas_profiles:
        if start < end:
            profiles.setdefault(uid, []).append((intern(profile), day(start), day(end)))
    managed: dict[int, list[tuple[int, int, int]]] = {}
    for gid, uid, start, end in snap.group_managers:
        if start < end:
            managed.setdefault(uid, []).append((gid, start, end))
    operators = set(snap.operators)
    reload: set[int | None] = set()
    logins: dict[int, dict[int, str]] = {}  # per organisation: user id -> login, made if needed
    for uid in sorted(noted):
        row = rows.get(uid)
        org_id = row[2] if row is not None else None
        org = index.orgs.get(org_id) if org_id is not None else None
        if org is None or org_id is None or row is None:
            reload.add(None)  # gone, without an organisation, or in one not indexed
            continue
        if noted[uid] != {org_id}:  # named in another organisation: it moved
            reload.update({org_id, *noted[uid]})
            continue
        _, login, _, start, end = row
        other = index.users.get(login)
        if other is not None and other.id == uid and other.organisation_id == org_id:
            old_login: str | None = login  # the usual case: same login, same organisation
        else:  # a new user, or a renamed one: found by id among the organisation's users
            if org_id not in logins:
                logins[org_id] = {index.users[x].id: x for x in org.logins}
            old_login = logins[org_id].get(uid)
        if old_login is None and other is not None:
            # New to this organisation under a login the index has: it moved (or a login was
            # reused); both partitions are reloaded.
            reload.update({org_id, other.organisation_id})
            continue
        entry = UserEntry(uid, login, org_id, day(start), day(end))
        entry.memberships = memberships.get(uid, [])
        entry.profiles = profiles.get(uid, [])
        entry.is_operator = uid in operators
        mine = [m for m in managed.get(uid, ()) if m[0] in org.groups]
        entry.managed = mine or ()
        entry.org = org
        _precompute_grants(entry, _group_grants(org, {g for g, _s, _e in entry.memberships}))
        if old_login != login:
            if old_login is not None:
                del index.users[old_login]
                org.logins.remove(old_login)
            bisect.insort(org.logins, login)
            if org_id in logins:
                logins[org_id][uid] = login
        index.users[login] = entry
    return reload
