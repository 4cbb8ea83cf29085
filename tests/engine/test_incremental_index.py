"""Differential test of the engine's incremental refresh: after every administration write, the
index the engine keeps up to date in place (``pdp.engine.index_delta``: one user, one
organisation's structure) equals the reference, ``Index.build`` over a full snapshot.

Random write sequences (seeded) run through the real administration service, acting as an open
partner admin of the organisation (R-ADM-1), on the bench generator's data at a tiny scale, on
SQLite and PostgreSQL: attach (R-MEM-1) and detach (R-MEM-2), assign and remove roles (R-GRP-4),
create groups with a manager (R-ADM-3), some opening later, edit them (label, a later opening:
their sub-groups' effective windows move with it; a closing day), close groups with their
sub-groups and members (R-GRP-2), replace managers (R-ADM-3), create users (R-USR-1), give
and remove Afas profiles (R-AFAS-1); and as an operator (R-CON-4), designate and end partner
admins (R-ADM-1).
Writes the rules refuse are part of the sequence: they must leave the index as it was. The
comparison is of a canonical dump (users with windows, memberships, profiles, managed groups
and grants; organisations with groups, roles, subscriptions, admins and the order of logins),
so that no difference hides behind an order the index does not promise.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bench.generate import generate
from pdp.adapters.sql.models import Convention, PolicyChange
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import Catalogue, load_catalogue
from pdp.core.errors import PdpError
from pdp.engine.index import Index
from pdp.engine.policy import PolicyEngine
from pdp.engine.snapshot import GROUP, STRUCTURE, USER
from pdp.records.audit_trail import AuditChain
from pdp.records.decision_log import MemoryLog
from pdp.services.admin import afas, contracts, grants, groups, managers, users
from pdp.services.admin.requests import (
    AfasProfileNew,
    DatesEdit,
    GroupEdit,
    GroupNew,
    ManagerSet,
    MembershipEdit,
    MembershipNew,
    NewUser,
    RoleRef,
    UserRef,
)
from pdp.services.admin.service import AdminService

TODAY = dt.date(2026, 6, 15)
SCALE = 0.0005  # 10 organisations, ~200 users, ~50 groups
SEEDS = (7, 8)
STEPS = 60
# Attach and assign twice as often: they are most of an administrator's writes.
OPS = ("attach", "attach", "detach", "assign", "assign", "remove", "create", "close")
OPS += ("manager", "user", "edit", "edit", "designate", "end_admin", "afas", "afas_off")

# Every test here runs with the index's users kept as objects and as flat records.
pytestmark = pytest.mark.usefixtures("users_layout")


def dump(index: Index) -> dict[str, Any]:
    """Everything a decision or a listing reads, in a form two indexes can be compared by."""
    out_users = {}
    for login, u in index.users.items():
        assert u.org is (index.orgs.get(u.organisation_id) if u.organisation_id else None)
        # A grant path is a Grant or, decoded from the users table, the same plain tuple.
        grants_ = {
            s: sorted(((a, b, r, tuple(path)) for a, b, r, path in g), key=repr)
            for s, g in u.grants.items()
            if g
        }
        out_users[login] = (
            u.id,
            u.organisation_id,
            u.start,
            u.end,
            sorted(u.memberships),
            sorted(u.profiles),
            u.is_operator,
            sorted(u.managed),
            grants_,
        )
    out_orgs = {}
    for oid, o in index.orgs.items():
        assert index.org_by_code[o.code] is o
        out_orgs[oid] = (
            o.code,
            o.name,
            {
                gid: (g.code, g.label, g.parent_id, g.start, g.end, _sorted(g.roles))
                for gid, g in o.groups.items()
            },
            _sorted(o.subscriptions),
            sorted(o.admins),
            list(o.logins),
            dict(o.group_by_code),
        )
    assert len(index.org_by_code) == len(index.orgs)
    return {"users": out_users, "orgs": out_orgs, "sorted": [o.id for o in index.sorted_orgs()]}


def _sorted(windows: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {k: sorted(v) for k, v in windows.items() if v}


class Loads:
    """An engine observer counting whole loads."""

    def __init__(self) -> None:
        self.loads = 0

    def loaded(self, seconds: float) -> None:
        self.loads += 1

    def fresh(self, revision: int) -> None:
        pass


class Writer:
    """Random administration writes through the real service (see the module)."""

    def __init__(self, svc: AdminService, rng: random.Random, catalogue: Catalogue) -> None:
        self.svc, self.rng, self.catalogue = svc, rng, catalogue
        self.day = TODAY.toordinal()
        self.made = 0

    def _org(self) -> tuple[str, str, Any]:
        """An organisation with an open partner admin: (code, admin login, partition)."""
        index = self.svc.engine.index
        choices = []
        for org in index.orgs.values():
            by_id = {index.users[login].id: login for login in org.logins}
            for uid, s, e in org.admins:
                user = index.users.get(by_id.get(uid, ""))
                if user is not None and s <= self.day < e and user.start <= self.day < user.end:
                    choices.append((org.code, user.login, org))
        assert choices, "the generated data has no open partner admin"
        return self.rng.choice(sorted(choices, key=lambda c: c[0]))

    def _open_groups(self, org: Any) -> list[str]:
        return sorted(g.code for g in org.groups.values() if g.start <= self.day < g.end)

    def step(self) -> str:
        """One write (it may be refused); return what was tried."""
        code, admin, org = self._org()
        rng, svc = self.rng, self.svc
        groups_open = self._open_groups(org) or ["NONE"]
        login = rng.choice(org.logins)
        op = rng.choice(OPS)
        try:
            if op == "attach":
                users.attach(svc, admin, code, login, MembershipNew(group=rng.choice(groups_open)))
            elif op == "detach":
                user = svc.engine.index.users[login]
                current = [g for g, s, e in user.memberships if s <= self.day < e]
                gid = rng.choice(current) if current else None
                if gid is not None and gid in org.groups:
                    group = org.groups[gid].code
                    users.edit_membership(svc, admin, code, login, group, MembershipEdit())
            elif op == "assign":
                service = rng.choice(sorted(org.subscriptions) or ["cdap"])
                roles = self.catalogue.services[service].roles if service != "afas" else ()
                if roles:
                    role = RoleRef(service=service, role=rng.choice(roles))
                    grants.assign_role(svc, admin, code, rng.choice(groups_open), role)
            elif op == "remove":
                held = [
                    (g.code, s, r)
                    for g in org.groups.values()
                    for s, rs in g.roles.items()
                    for r, a, b in rs
                    if a <= self.day < b
                ]
                if held:
                    group, service, role = rng.choice(sorted(held))
                    grants.remove_role(svc, admin, code, group, service, role)
            elif op == "create":
                self.made += 1
                data = GroupNew(
                    code=f"T{self.made}",
                    label="test",
                    parent=rng.choice(groups_open),
                    manager=UserRef(login=rng.choice([admin, login])),
                )
                if rng.random() < 0.3:
                    data = self._top(data, org.id)
                later = [g for g in org.groups.values() if g.own_start > self.day < g.end]
                if later and rng.random() < 0.5:  # under a group opening later, from then
                    parent = rng.choice(sorted(later, key=lambda g: g.code))
                    update = {"parent": parent.code, "opens_on": dt.date.fromordinal(parent.start)}
                    data = data.model_copy(update=update)
                elif rng.random() < 0.4:  # opening later: its opening may be moved (R-GRP-2)
                    day = TODAY + dt.timedelta(days=rng.randint(1, 30))
                    data = data.model_copy(update={"opens_on": day})
                groups.create_group(svc, admin, code, data)
            elif op in ("designate", "end_admin", "afas", "afas_off"):
                self._operator(op, code, login, admin)
            elif op == "edit":
                self._edit(admin, code, org)
            elif op == "close":
                groups.close_group(svc, admin, code, rng.choice(groups_open))
            elif op == "manager":
                group = rng.choice(groups_open)
                gid = org.group_by_code.get(group)
                current = [
                    u
                    for u in (svc.engine.index.users[x] for x in org.logins)
                    for g, s, e in u.managed
                    if g == gid and s <= self.day < e
                ]
                replaces = current[0].login if current else None
                managers.set_manager(
                    svc, admin, code, group, ManagerSet(login=login, replaces=replaces)
                )
            else:
                self.made += 1
                new = NewUser(
                    login=f"nouveau.{self.made}",
                    first_name="Anne",
                    last_name="Nouvelle",
                    email=f"n{self.made}@example.fr",
                )
                users.create_user(svc, admin, code, new)
        except PdpError as exc:
            return f"{op} (refused {exc.code})"
        return op

    def _edit(self, admin: str, code: str, org: Any) -> None:
        """Relabel a group, move a future group's opening, or close one on a later day: the
        members of it and of its sub-groups see their grants' windows change (R-GRP-2)."""
        rng = self.rng
        parents = {g.parent_id for g in org.groups.values()}
        # Groups opening later, those with sub-groups first: moving their opening moves their
        # sub-groups' effective windows, which the change does not name.
        later = [g.code for g in org.groups.values() if g.own_start > self.day and g.id in parents]
        later = later or [g.code for g in org.groups.values() if g.own_start > self.day]
        group = rng.choice(sorted(later) if later and rng.random() < 0.6 else self._all(org))
        day = TODAY + dt.timedelta(days=rng.randint(1, 40))
        data = rng.choice(
            [
                GroupEdit(label=f"relabelled {self.made}"),
                GroupEdit(opens_on=day),
                GroupEdit(closes_on=day + dt.timedelta(days=rng.randint(0, 60))),
            ]
        )
        groups.edit_group(self.svc, admin, code, group, data)

    def _operator(self, op: str, code: str, login: str, admin: str) -> None:
        """An operator's write (R-CON-4): designate or end a partner admin (R-ADM-1: the
        organisation's structure); or the partner admin's: give or remove an Afas profile
        (R-AFAS-1: the user)."""
        index, svc = self.svc.engine.index, self.svc
        operator = next(
            u.login
            for u in sorted(index.users.values(), key=lambda u: u.login)
            if u.is_operator and u.start <= self.day < u.end
        )
        if op == "designate":
            contracts.designate_admin(svc, operator, code, UserRef(login=login))
        elif op == "end_admin":
            contracts.end_admin(svc, operator, code, login, DatesEdit())
        elif op == "afas":
            profile = self.rng.choice(sorted(self.catalogue.services["afas"].user_profiles))
            afas.add_profile(svc, admin, code, login, AfasProfileNew(profile=profile))
        else:
            held = [p for p, s, e in index.users[login].profiles if s <= self.day < e]
            if held:
                afas.remove_profile(svc, admin, code, login, self.rng.choice(sorted(held)))

    def _all(self, org: Any) -> list[str]:
        return sorted(g.code for g in org.groups.values()) or ["NONE"]

    def _top(self, data: GroupNew, org_id: int) -> GroupNew:
        """The same group at the top, under one of the organisation's conventions."""
        with Session(self.svc.db) as s:
            refs = sorted(
                s.scalars(select(Convention.reference).where(Convention.organisation_id == org_id))
            )
        if not refs:
            return data
        return data.model_copy(update={"parent": None, "convention": self.rng.choice(refs)})


@pytest.mark.parametrize("seed", SEEDS)
def test_incremental_refresh_matches_a_full_build(db: Engine, seed: int) -> None:
    catalogue = load_catalogue()
    generate(db, SCALE, seed, today=TODAY, catalogue=catalogue)
    source = SqlSnapshotSource(db)
    observer = Loads()
    engine = PolicyEngine(source, catalogue, clock=lambda: TODAY, observer=observer)
    engine.load()
    other = PolicyEngine(source, catalogue, clock=lambda: TODAY)  # another worker, polling
    other.load()
    lagging = PolicyEngine(source, catalogue, clock=lambda: TODAY)  # several changes at once
    lagging.load()
    svc = AdminService(db, engine, catalogue, AuditChain(), MemoryLog(), None)
    writer = Writer(svc, random.Random(seed), catalogue)
    done: list[str] = []
    for step in range(STEPS):
        done.append(writer.step())
        other.refresh(force=True)
        reference = Index.build(source.load())
        assert engine.revision == other.revision == reference.revision, done
        want = dump(reference)
        assert dump(engine.index) == want, f"after step {step}: {done[-5:]}"
        assert dump(other.index) == want, f"other worker, after step {step}: {done[-5:]}"
        if step % 4 == 3:
            lagging.refresh(force=True)
            assert lagging.revision == reference.revision
            assert dump(lagging.index) == want, f"four at once, after step {step}: {done[-5:]}"
    applied = [d for d in done if "refused" not in d]
    assert len(applied) >= STEPS // 3, done  # not a sequence of refusals
    assert observer.loads == 1, "a write fell back to a whole load"
    with Session(db) as s:
        scopes = set(s.scalars(select(PolicyChange.scope)))
    assert {USER, GROUP, STRUCTURE} <= scopes  # the fine-grained path was taken


def test_moving_a_groups_opening_moves_its_sub_groups_windows(db: Engine) -> None:
    """R-GRP-2: a sub-group is open only while its parent is. Moving the opening of a group
    that opens later moves the effective window of its sub-group, which the change does not
    name: the engine recomputes it in memory, as the full build does."""
    catalogue = load_catalogue()
    generate(db, SCALE, SEEDS[0], today=TODAY, catalogue=catalogue)
    source = SqlSnapshotSource(db)
    engine = PolicyEngine(source, catalogue, clock=lambda: TODAY)
    engine.load()
    svc = AdminService(db, engine, catalogue, AuditChain(), MemoryLog(), None)
    code, admin, org = Writer(svc, random.Random(0), catalogue)._org()
    top = sorted(g.code for g in org.groups.values() if g.start <= TODAY.toordinal() < g.end)[0]
    soon, later = TODAY + dt.timedelta(days=5), TODAY + dt.timedelta(days=12)
    manager = UserRef(login=admin)
    for child, parent in (("LATER", top), ("LATER.SUB", "LATER")):
        data = GroupNew(code=child, label=child, parent=parent, manager=manager, opens_on=soon)
        groups.create_group(svc, admin, code, data)
    groups.edit_group(svc, admin, code, "LATER", GroupEdit(opens_on=later))
    sub = engine.index.orgs[org.id].groups[engine.index.orgs[org.id].group_by_code["LATER.SUB"]]
    assert sub.start == later.toordinal()  # itself opens on `soon`, its parent later
    assert dump(engine.index) == dump(Index.build(source.load()))


def test_a_structure_and_a_group_closing_applied_together(db: Engine) -> None:
    """A worker that applies, at once, a partner admin's designation (the organisation's
    structure, R-ADM-1) and the closing of a group with members (R-GRP-2: their memberships end):
    the structure does not hold the memberships, the group change does."""
    catalogue = load_catalogue()
    generate(db, SCALE, SEEDS[1], today=TODAY, catalogue=catalogue)
    source = SqlSnapshotSource(db)
    engine = PolicyEngine(source, catalogue, clock=lambda: TODAY)
    engine.load()
    lagging = PolicyEngine(source, catalogue, clock=lambda: TODAY)
    lagging.load()
    svc = AdminService(db, engine, catalogue, AuditChain(), MemoryLog(), None)
    writer = Writer(svc, random.Random(1), catalogue)
    code, admin, org = writer._org()
    day = TODAY.toordinal()
    members = {
        gid
        for login in org.logins
        for gid, s, e in engine.index.users[login].memberships
        if s <= day < e and gid in org.groups and org.groups[gid].start <= day
    }
    group = org.groups[min(members)].code
    candidate = next(x for x in org.logins if x != admin and engine.index.users[x].end > day)
    writer._operator("designate", code, candidate, admin)
    groups.close_group(svc, admin, code, group)
    lagging.refresh(force=True)
    assert lagging.revision == engine.revision
    assert dump(lagging.index) == dump(Index.build(source.load())) == dump(engine.index)
