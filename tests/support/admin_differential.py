"""The model side of the differential test of administrative decisions
(tests/engine/test_admin_differential.py): the snapshot's organisations, groups and users named
as administrative targets (``AdminWorld``), the comparison of the fast path with plain Casbin,
and the random mutator of administrative data with the days it makes interesting."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, insert, text, update
from sqlalchemy.orm import Session

from pdp.adapters.sql.database import record_change
from pdp.adapters.sql.models import Base
from pdp.core.catalogue import Catalogue
from pdp.core.clock import FOREVER
from pdp.engine.casbin_model import AdminReferenceEnforcer
from pdp.engine.decision import Reason
from pdp.engine.index import Index
from pdp.engine.rules import AdminReason, Rights, Target, authorise, parse_target
from pdp.engine.snapshot import Snapshot

TODAY = dt.date(2026, 3, 29)

Triple = tuple[str, str, str]  # (actor login, action, target)


def date_of(day: int) -> dt.date:
    """The date of an ordinal day."""
    return dt.date.fromordinal(day)


# -- what the queries are about ----------------------------------------------------------------


class AdminWorld:
    """The snapshot's organisations, groups and users, named as administrative targets."""

    def __init__(self, snap: Snapshot, index: Index) -> None:
        self.snap = snap
        self.index = index
        self.codes = {oid: code for oid, code, _ in snap.organisations}
        self.login_of = {uid: login for uid, login, *_ in snap.users}
        self.home = {login: org for _uid, login, org, *_ in snap.users}
        self.groups = {gid: (org, parent, code) for gid, org, parent, code, *_ in snap.groups}
        self.users_of: dict[int, list[str]] = {}
        for _uid, login, org, *_ in snap.users:
            if org is not None:
                self.users_of.setdefault(org, []).append(login)
        self.groups_of: dict[int, list[int]] = {}
        self.children: dict[int, list[int]] = {}
        for gid, (org, parent, _code) in self.groups.items():
            self.groups_of.setdefault(org, []).append(gid)
            if parent is not None:
                self.children.setdefault(parent, []).append(gid)
        self.members: dict[int, list[str]] = {}
        for uid, gid, _s, _e in snap.memberships:
            self.members.setdefault(gid, []).append(self.login_of[uid])
        self.managed: dict[str, list[int]] = {}  # every window: a bias, not a semantics
        for gid, uid, _s, _e in snap.group_managers:
            self.managed.setdefault(self.login_of[uid], []).append(gid)
        self.admins: dict[int, list[str]] = {}
        for org, uid, _s, _e in snap.partner_admins:
            self.admins.setdefault(org, []).append(self.login_of[uid])
        self.operators = [self.login_of[uid] for uid in snap.operators]
        self.logins = sorted(self.home)
        self.org_ids = sorted(self.codes)

    # -- targets --

    def group_target(self, gid: int) -> str:
        org, _parent, code = self.groups[gid]
        return f"group:{self.codes[org]}/{code}"

    def domain(self, target: Target) -> str | None:
        """The Casbin domain of ``target``: its organisation's code, "*" for the platform;
        None when the target does not exist or is a user of no organisation."""
        if target.kind == "platform":
            return "*"
        if target.kind == "user":
            org = self.home.get(target.login or "")
            return None if org is None else self.codes[org]
        org_ids = [oid for oid, code in self.codes.items() if code == target.organisation]
        if not org_ids:
            return None
        if target.kind == "group" and not any(
            self.groups[gid][2] == target.group for gid in self.groups_of.get(org_ids[0], [])
        ):
            return None
        return target.organisation

    def every_target(self) -> dict[str, list[str]]:
        """Every existing target with a domain, by kind."""
        return {
            "platform": ["platform"],
            "organisation": [f"organisation:{code}" for code in sorted(self.codes.values())],
            "group": [self.group_target(gid) for gid in sorted(self.groups)],
            "user": [f"user:{login}" for login in self.logins if self.home[login] is not None],
        }

    def near(self, gid: int) -> list[int]:
        """A group, its ancestors (a few) and its descendants: the edges of a perimeter."""
        out = [gid]
        cur = self.groups[gid][1]
        while cur is not None and cur in self.groups and cur not in out:
            out.append(cur)
            cur = self.groups[cur][1]
        todo = list(self.children.get(gid, []))
        while todo:
            node = todo.pop()
            if node not in out:
                out.append(node)
                todo.extend(self.children.get(node, []))
        return out

    # -- capacities on a day --

    def holders(self, day: int) -> dict[str, list[str]]:
        """Logins with a manager or partner admin row open on ``day``, the operators, and those
        who may use afas:habiliter on ``day``: a bias for sampling, not the semantics."""
        snap = self.snap
        managers = {self.login_of[uid] for _g, uid, s, e in snap.group_managers if s <= day < e}
        admins = {self.login_of[uid] for _o, uid, s, e in snap.partner_admins if s <= day < e}
        habiliter = {
            login
            for login in self.logins
            if self.index.decide(login, "afas", "habiliter", None, day).reason is Reason.ALLOWED
        }
        out = {
            "manager": sorted(managers),
            "partner_admin": sorted(admins),
            "operator": sorted(self.operators),
            "afas_habiliter": sorted(habiliter),
        }
        return {k: v for k, v in out.items() if v}

    def sample(
        self,
        rng: random.Random,
        rights: Rights,
        holders: dict[str, list[str]],
        i: int,
    ) -> Triple:
        """One (actor, action, target): mostly an actor holding a capacity, acting in their own
        organisation, on groups and users at the edges of their perimeter."""
        r = rng.random()
        if r < 0.75 and holders:
            actor = rng.choice(holders[rng.choice(sorted(holders))])
        elif r < 0.78:
            actor = f"inconnu.{i}"
        else:
            actor = rng.choice(self.logins)
        action = rng.choice(sorted(rights.actions))
        kind = rng.choice(sorted(rights.kinds_for(action)))
        if kind == "platform":
            return actor, action, "platform"
        home = self.home.get(actor)
        org = home if home is not None and rng.random() < 0.85 else rng.choice(self.org_ids)
        if kind == "organisation":
            return actor, action, f"organisation:{self.codes[org]}"
        managed = [g for g in self.managed.get(actor, []) if self.groups[g][0] == org]
        nearby = [n for g in managed for n in self.near(g)]
        if kind == "group":
            groups = nearby if nearby and rng.random() < 0.7 else self.groups_of.get(org, [])
            if not groups:
                groups = sorted(self.groups)
            return actor, action, self.group_target(rng.choice(groups))
        r = rng.random()
        if r < 0.1 and home is not None:
            login = actor  # oneself
        elif r < 0.3 and self.admins.get(org):
            login = rng.choice(self.admins[org])  # R-USR-5: never a partner admin
        elif r < 0.75 and nearby:
            members = [m for g in nearby for m in self.members.get(g, [])]
            login = rng.choice(members or self.users_of.get(org, self.logins))
        else:
            login = rng.choice(self.users_of.get(org) or self.logins)
        return actor, action, f"user:{login}"


# -- the comparison ------------------------------------------------------------------------------


def compare(
    index: Index,
    rights: Rights,
    reference: AdminReferenceEnforcer,
    world: AdminWorld,
    day: int,
    triples: Iterable[Triple],
    reasons: Counter[AdminReason],
) -> list[str]:
    """Ask both sides; count the fast path's reasons; return the disagreements, described."""
    mismatches: list[str] = []
    for actor, action, target_text in triples:
        target = parse_target(target_text)
        domain = world.domain(target)
        fast = authorise(index, rights, actor, action, target, day)
        if domain is None:  # no such target, or an operator: fail closed, no Casbin domain
            if fast is not AdminReason.UNKNOWN_TARGET:
                mismatches.append(
                    f"actor {actor} action {action} target {target_text} day {date_of(day)}: "
                    f"fast path {fast}, expected UNKNOWN_TARGET"
                )
            continue
        reasons[fast] += 1
        slow = reference.allowed(actor, domain, target.kind, str(target), action)
        if (fast is AdminReason.ALLOWED) != slow:
            mismatches.append(
                f"actor {actor} action {action} target {target_text} (domain {domain}) "
                f"day {date_of(day)}: fast path {fast}, Casbin {'allow' if slow else 'deny'}"
            )
    return mismatches


# -- random data and the mutator ---------------------------------------------------------------

DATED = (
    "organisations",
    "conventions",
    "subscriptions",
    "users",
    "groups",
    "memberships",
    "group_roles",
    "afas_profiles",
    "group_managers",
    "group_managers",
    "partner_admins",
    "partner_admins",
)

# The organisation (Casbin domain) a row belongs to, for ``record_change``.
ORG_OF = {
    "organisations": "SELECT id FROM organisations WHERE id = :id",
    "conventions": "SELECT organisation_id FROM conventions WHERE id = :id",
    "subscriptions": "SELECT c.organisation_id FROM subscriptions s "
    "JOIN conventions c ON c.id = s.convention_id WHERE s.id = :id",
    "users": "SELECT organisation_id FROM users WHERE id = :id",
    "groups": "SELECT organisation_id FROM groups WHERE id = :id",
    "memberships": "SELECT u.organisation_id FROM memberships m "
    "JOIN users u ON u.id = m.user_id WHERE m.id = :id",
    "group_roles": "SELECT g.organisation_id FROM group_roles r "
    "JOIN groups g ON g.id = r.group_id WHERE r.id = :id",
    "afas_profiles": "SELECT u.organisation_id FROM afas_profiles p "
    "JOIN users u ON u.id = p.user_id WHERE p.id = :id",
    "group_managers": "SELECT g.organisation_id FROM group_managers m "
    "JOIN groups g ON g.id = m.group_id WHERE m.id = :id",
    "partner_admins": "SELECT organisation_id FROM partner_admins WHERE id = :id",
}


class AdminMutator:
    """Random writes, each in its own transaction numbered by ``record_change``: those of the
    decision-side differential test (close, reopen, move an opening, add a record) and the
    administration's own (managers, partner admins, operators, group parents, afas:habiliter),
    at dates around today (often exactly today, yesterday or tomorrow)."""

    def __init__(self, db: Engine, rng: random.Random, catalogue: Catalogue) -> None:
        self.db = db
        self.rng = rng
        self.catalogue = catalogue
        self.tables = Base.metadata.tables
        self.done: Counter[str] = Counter()

    def day(self) -> dt.date:
        """A day near today, with the boundaries today ±1 over-represented."""
        rng = self.rng
        return TODAY + dt.timedelta(days=rng.choice((0, 0, 1, -1, rng.randint(-90, 90))))

    def dates(self) -> dict[str, dt.date | None]:
        rng = self.rng
        opens = self.day() if rng.random() < 0.5 else TODAY - dt.timedelta(days=400)
        return {"opens_on": opens, "closes_on": self.day() if rng.random() < 0.3 else None}

    def _ids(self, s: Session, table: str, where: str = "") -> list[int]:
        return list(s.execute(text(f"SELECT id FROM {table} {where}")).scalars())

    def step(self) -> None:
        """Apply one random write."""
        rng = self.rng
        with Session(self.db) as s, s.begin():
            op = rng.choice(
                ("close", "close", "reopen", "open", "add", "add", "admin", "admin", "admin")
            )
            org: int | None
            if op == "add":
                org, what = self._add(s)
            elif op == "admin":
                org, what = self._admin(s)
            else:
                org, what = self._date(s, op)
            if what:
                record_change(s, [org], f"test {what}")
                self.done[what.split()[0]] += 1

    def _date(self, s: Session, op: str) -> tuple[int | None, str]:
        table = self.rng.choice(DATED)
        ids = self._ids(s, table)
        if not ids:
            return None, ""
        row = self.rng.choice(ids)
        org = s.execute(text(ORG_OF[table]), {"id": row}).scalar()
        values: dict[str, Any]
        if op == "close":  # closing today takes effect at once (R-TIME-1)
            values = {"closes_on": self.day()}
        elif op == "reopen":
            values = {"closes_on": None}
        else:  # may end up after the closing day: an empty window, open on no day
            values = {"opens_on": self.day()}
        t = self.tables[table]
        s.execute(update(t).where(t.c.id == row).values(**values))
        return org, f"{op} {table}"

    def _org_user(self, s: Session) -> tuple[int, int]:
        user_id, org = self.rng.choice(
            s.execute(
                text("SELECT id, organisation_id FROM users WHERE organisation_id IS NOT NULL")
            ).all()
        )
        return int(user_id), int(org)

    def _add(self, s: Session) -> tuple[int | None, str]:
        """The decision side's additions: a membership, a role, a profile, a user, a
        subscription."""
        rng, t = self.rng, self.tables
        user_id, org = self._org_user(s)
        groups = self._ids(s, "groups", f"WHERE organisation_id = {org}")
        values: dict[str, Any]
        kind = rng.choice(("membership", "membership", "role", "profile", "user", "subscription"))
        if kind == "user":
            user_id = s.execute(
                insert(t["users"])
                .values(
                    login=f"nouveau.{rng.randrange(10**9)}", organisation_id=org, **self.dates()
                )
                .returning(t["users"].c.id)
            ).scalar_one()
            kind = "membership"
        if kind == "membership" and groups:
            values = {"user_id": user_id, "group_id": rng.choice(groups), **self.dates()}
            s.execute(insert(t["memberships"]).values(**values))
        elif kind == "role" and groups:
            service = rng.choice(sorted(self.catalogue.services))
            role = rng.choice(self.catalogue.services[service].roles)
            values = {"group_id": rng.choice(groups), "service": service, "role": role}
            s.execute(insert(t["group_roles"]).values(**values, **self.dates()))
        elif kind == "profile":
            profile = rng.choice(self.catalogue.services["afas"].user_profiles)
            values = {"user_id": user_id, "profile": profile, **self.dates()}
            s.execute(insert(t["afas_profiles"]).values(**values))
        else:
            conventions = self._ids(s, "conventions", f"WHERE organisation_id = {org}")
            service = rng.choice(sorted(self.catalogue.services))
            values = {"convention_id": rng.choice(conventions), "service": service}
            s.execute(insert(t["subscriptions"]).values(**values, **self.dates()))
        return org, f"add {kind}"

    def _admin(self, s: Session) -> tuple[int | None, str]:
        """The administration's records: managers, partner admins, operators, parents,
        afas:habiliter."""
        rng, t = self.rng, self.tables
        user_id, org = self._org_user(s)
        groups = self._ids(s, "groups", f"WHERE organisation_id = {org}")
        values: dict[str, Any]
        kind = rng.choice(
            ("manager", "manager", "partner_admin", "operator", "parent", "cycle", "habiliter")
        )
        if kind in ("manager", "parent", "cycle", "habiliter") and not groups:
            return None, ""
        if kind == "manager":
            # Now and then a manager of another organisation or an operator: corrupt data that
            # must give nothing (R-ADM-3).
            if rng.random() < 0.15:
                user_id = rng.choice(self._ids(s, "users"))
            values = {"group_id": rng.choice(groups), "user_id": user_id, **self.dates()}
            s.execute(insert(t["group_managers"]).values(**values))
        elif kind == "partner_admin":
            if rng.random() < 0.15:
                user_id = rng.choice(self._ids(s, "users"))
            values = {"organisation_id": org, "user_id": user_id, **self.dates()}
            s.execute(insert(t["partner_admins"]).values(**values))
        elif kind == "operator":
            if rng.random() < 0.4:  # a new Caf-side account: no organisation (R-CON-4)
                login = f"op.nouveau.{rng.randrange(10**9)}"
                values = {"login": login, "organisation_id": None, "is_operator": True}
                s.execute(insert(t["users"]).values(**values, **self.dates()))
                return None, "operator new"
            # An operator loses or regains the flag, or a user of an organisation gets it (not
            # what the product does, but nothing in the index or the lines may depend on it).
            toggled: tuple[int, int | None] = (user_id, org)
            if rng.random() < 0.5:
                toggled = (rng.choice(self._ids(s, "users", "WHERE organisation_id IS NULL")), None)
            s.execute(
                text("UPDATE users SET is_operator = NOT is_operator WHERE id = :id"),
                {"id": toggled[0]},
            )
            return toggled[1], "operator toggle"
        elif kind == "parent":
            gid = rng.choice(groups)
            r = rng.random()
            if r < 0.2:
                parent = None
            elif r < 0.35:  # a parent in another organisation: corrupt, grants nothing
                parent = rng.choice(self._ids(s, "groups", f"WHERE organisation_id != {org}"))
            else:  # may close a cycle when the new parent is below the group
                parent = rng.choice(groups)
            s.execute(update(t["groups"]).where(t["groups"].c.id == gid).values(parent_id=parent))
        elif kind == "cycle":
            # A group under one of its own children (or itself): both fail closed.
            rows = s.execute(
                text(
                    "SELECT id, parent_id FROM groups WHERE organisation_id = :org "
                    "AND parent_id IS NOT NULL"
                ),
                {"org": org},
            ).all()
            gid, parent = rng.choice(rows) if rows else (groups[0], groups[0])
            s.execute(update(t["groups"]).where(t["groups"].c.id == parent).values(parent_id=gid))
        else:  # R-AFAS-2: a group holding afas:habiliter, a member in it, afas subscribed
            gid = rng.choice(groups)
            s.execute(
                insert(t["group_roles"]).values(
                    group_id=gid, service="afas", role="habiliter", **self.dates()
                )
            )
            # Often a manager: then the manager and afas_habiliter capacities meet.
            managers = s.execute(
                text(
                    "SELECT m.user_id FROM group_managers m JOIN groups g ON g.id = m.group_id "
                    "WHERE g.organisation_id = :org"
                ),
                {"org": org},
            ).scalars()
            member = rng.choice([user_id, *managers])
            s.execute(insert(t["memberships"]).values(user_id=member, group_id=gid, **self.dates()))
            conventions = self._ids(s, "conventions", f"WHERE organisation_id = {org}")
            s.execute(
                insert(t["subscriptions"]).values(
                    convention_id=rng.choice(conventions),
                    service="afas",
                    opens_on=TODAY - dt.timedelta(days=400),
                    closes_on=None,
                )
            )
        return org, f"{kind} (administration)"

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()


def pick_days(snap: Snapshot, rng: random.Random, count: int) -> list[int]:
    """Today ±1, a day far away, and edges of the manager and partner admin windows (on the
    edge or the day before), then of users, groups and memberships."""
    today = TODAY.toordinal()
    days = {today, today - 1, today + 1, today + rng.choice((-400, -40, 40, 400))}

    def near(rows: Iterable[tuple[Any, ...]]) -> list[int]:
        return sorted(
            {d for row in rows for d in row[-2:] if d != FOREVER and abs(d - today) < 200}
        )

    kinds = [
        near(snap.group_managers),
        near(snap.partner_admins),
        near(snap.group_managers),
        near(snap.partner_admins),
        near([*snap.users, *snap.groups, *snap.memberships, *snap.group_roles]),
    ]
    kinds = [k for k in kinds if k]
    turn = 0
    while len(days) < count and kinds and turn < 10 * count:
        day = rng.choice(kinds[turn % len(kinds)])
        days.add(day if rng.random() < 0.7 else day - 1)
        turn += 1
    return sorted(days)
