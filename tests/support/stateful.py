"""What the stateful test of the administration API (tests/services/test_stateful_admin.py) reads
straight from the database: the whole store as plain rows (a ``World``), its digest, and the
business invariants checked after every step.

Everything here reads; nothing writes. The store of a test is small (the demo plus a few dozen
writes), so reading every table after each step costs a few milliseconds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, select

from pdp.adapters.sql.models import (
    Base,
    PolicyRevision,
)

Row = dict[str, Any]


def is_open(row: Row, day: dt.date) -> bool:
    """Open on ``day``: opening ≤ day < closing (R-TIME-1)."""
    return bool(row["opens_on"] <= day and (row["closes_on"] is None or day < row["closes_on"]))


def not_ended(row: Row, day: dt.date) -> bool:
    """Open on ``day`` or opening later."""
    return row["closes_on"] is None or day < row["closes_on"]


@dataclass
class World:
    """Every row of the store at one moment, with the indexes the test needs."""

    tables: dict[str, list[Row]]
    revision: int
    audit_seq: int
    today: dt.date
    org_code: dict[int, str] = field(default_factory=dict)
    login: dict[int, str] = field(default_factory=dict)
    group_by_id: dict[int, Row] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.org_code = {o["id"]: o["code"] for o in self.tables["organisations"]}
        self.login = {u["id"]: u["login"] for u in self.tables["users"]}
        self.group_by_id = {g["id"]: g for g in self.tables["groups"]}

    # -- lookups -----------------------------------------------------------------------------

    def org_id(self, code: str) -> int | None:
        return next((i for i, c in self.org_code.items() if c == code), None)

    def users(self, org: str | None = None) -> list[Row]:
        """Users of ``org`` (every user when None), by login."""
        oid = self.org_id(org) if org is not None else None
        rows = [u for u in self.tables["users"] if org is None or u["organisation_id"] == oid]
        return sorted(rows, key=lambda u: u["login"])

    def user(self, login: str) -> Row | None:
        return next((u for u in self.tables["users"] if u["login"] == login), None)

    def groups(self, org: str) -> list[Row]:
        oid = self.org_id(org)
        return sorted(
            (g for g in self.tables["groups"] if g["organisation_id"] == oid),
            key=lambda g: g["code"],
        )

    def group(self, org: str, code: str) -> Row | None:
        return next((g for g in self.groups(org) if g["code"] == code), None)

    def parent(self, g: Row) -> Row | None:
        return None if g["parent_id"] is None else self.group_by_id.get(g["parent_id"])

    def group_open(self, g: Row, day: dt.date) -> bool:
        """The group and every ancestor open on ``day`` (a closed ancestor closes the
        branch, R-GRP-2)."""
        seen: set[int] = set()
        cur: Row | None = g
        while cur is not None and cur["id"] not in seen:
            if not is_open(cur, day):
                return False
            seen.add(cur["id"])
            cur = self.parent(cur)
        return True

    def conventions(self, org: str) -> list[Row]:
        oid = self.org_id(org)
        return sorted(
            (c for c in self.tables["conventions"] if c["organisation_id"] == oid),
            key=lambda c: c["reference"],
        )

    def subscriptions(self, org: str) -> list[Row]:
        convs = {c["id"] for c in self.conventions(org)}
        return [s for s in self.tables["subscriptions"] if s["convention_id"] in convs]

    def subscribed(self, org: str, day: dt.date, convention_id: int | None = None) -> set[str]:
        """Services with a subscription open on ``day`` under an open convention (R-CON-2)."""
        convs = {
            c["id"]: c
            for c in self.conventions(org)
            if is_open(c, day) and (convention_id is None or c["id"] == convention_id)
        }
        return {
            s["service"]
            for s in self.tables["subscriptions"]
            if s["convention_id"] in convs and is_open(s, day)
        }

    def roles(self, g: Row, day: dt.date) -> set[tuple[str, str]]:
        """The roles the group's own records hold on ``day``."""
        return {
            (r["service"], r["role"])
            for r in self.tables["group_roles"]
            if r["group_id"] == g["id"] and is_open(r, day)
        }

    def roles_not_ended(self, g: Row) -> set[tuple[str, str]]:
        return {
            (r["service"], r["role"])
            for r in self.tables["group_roles"]
            if r["group_id"] == g["id"] and not_ended(r, self.today)
        }

    def managers(self, g: Row, day: dt.date) -> list[str]:
        """Logins of the group's manager records open on ``day``."""
        return [
            self.login[m["user_id"]]
            for m in self.tables["group_managers"]
            if m["group_id"] == g["id"] and is_open(m, day)
        ]

    def current_manager(self, g: Row) -> str | None:
        """The manager record that has not ended, latest opening first (as the service reads
        it)."""
        rows = [
            m
            for m in self.tables["group_managers"]
            if m["group_id"] == g["id"] and not_ended(m, self.today)
        ]
        rows.sort(key=lambda m: m["opens_on"], reverse=True)
        return self.login[rows[0]["user_id"]] if rows else None

    def managed_by(self, login: str, day: dt.date) -> list[Row]:
        """Groups open on ``day`` with an open manager record naming ``login``."""
        u = self.user(login)
        if u is None:
            return []
        return [
            self.group_by_id[m["group_id"]]
            for m in self.tables["group_managers"]
            if m["user_id"] == u["id"]
            and is_open(m, day)
            and is_open(self.group_by_id[m["group_id"]], day)
        ]

    def admins(self, org: str, day: dt.date) -> list[str]:
        """Partner admins of ``org`` on ``day``: an open designation of a user open that day
        (a closed user is no admin, R-USR-4)."""
        oid = self.org_id(org)
        out = []
        for a in self.tables["partner_admins"]:
            u = next(x for x in self.tables["users"] if x["id"] == a["user_id"])
            if a["organisation_id"] == oid and is_open(a, day) and is_open(u, day):
                out.append(u["login"])
        return sorted(out)

    def designations_not_ended(self, org: str) -> list[tuple[Row, Row]]:
        oid = self.org_id(org)
        users = {u["id"]: u for u in self.tables["users"]}
        return [
            (a, users[a["user_id"]])
            for a in self.tables["partner_admins"]
            if a["organisation_id"] == oid and not_ended(a, self.today)
        ]

    def memberships(self, login: str, not_ended_only: bool = True) -> list[tuple[Row, Row]]:
        """(membership, group) of the user."""
        u = self.user(login)
        if u is None:
            return []
        return [
            (m, self.group_by_id[m["group_id"]])
            for m in self.tables["memberships"]
            if m["user_id"] == u["id"] and (not not_ended_only or not_ended(m, self.today))
        ]

    def afas_profiles(self, login: str) -> list[str]:
        """The user's Afas profiles that have not ended."""
        u = self.user(login)
        if u is None:
            return []
        return sorted(
            p["profile"]
            for p in self.tables["afas_profiles"]
            if p["user_id"] == u["id"] and not_ended(p, self.today)
        )

    def audit(self, revision: int) -> list[Row]:
        return [a for a in self.tables["audit_log"] if a["revision"] == revision]

    def boundary_days(self) -> list[dt.date]:
        """Today and every later day on which something opens or closes: the store's state is
        constant between two of them, so checking these days checks every future day."""
        days = {self.today}
        for name in ("users", "groups", "group_managers", "group_roles", "partner_admins"):
            for row in self.tables[name]:
                for d in (row["opens_on"], row["closes_on"]):
                    if d is not None and d > self.today:
                        days.add(d)
        return sorted(days)

    # -- digest --------------------------------------------------------------------------------

    def digest(self) -> str:
        """A hash of every domain table, the revision and the audit head."""
        h = hashlib.sha256()
        for name in sorted(self.tables):
            h.update(name.encode())
            skipped = BOOKKEEPING.get(name, frozenset())
            for row in self.tables[name]:
                kept = {k: v for k, v in row.items() if k not in skipped}
                h.update(orjson.dumps(kept, option=orjson.OPT_SORT_KEYS, default=str))
        h.update(f"{self.revision}/{self.audit_seq}".encode())
        return h.hexdigest()


DOMAIN = [t for t in Base.metadata.sorted_tables if t.name != "policy_revision"]
# What any request may write, refused or not, outside the domain: the day an API key was last
# used (R-OPS-3, noted by every keyed request and written with the keys' periodic re-read).
BOOKKEEPING = {"api_clients": frozenset({"last_used_on"})}


def load_world(db: Engine, today: dt.date) -> World:
    """Read every domain table (rows sorted by primary key) and the revision row."""
    tables: dict[str, list[Row]] = {}
    with db.connect() as conn:
        for table in DOMAIN:
            order = list(table.primary_key.columns)
            tables[table.name] = [
                dict(r._mapping) for r in conn.execute(select(table).order_by(*order))
            ]
        head = conn.execute(
            select(PolicyRevision.revision, PolicyRevision.audit_seq).where(PolicyRevision.id == 1)
        ).one()
    return World(tables, int(head.revision), int(head.audit_seq), today)


# -- invariants ---------------------------------------------------------------------------------


def admins_at_most_two(w: World) -> list[str]:
    """R-ADM-1: at most two open partner admins per organisation, today and on every later
    day."""
    problems = []
    for org in w.org_code.values():
        for day in w.boundary_days():
            admins = w.admins(org, day)
            if len(admins) > 2:
                problems.append(f"R-ADM-1: {org} has {len(admins)} admins on {day}: {admins}")
    return problems


def one_manager_per_group(w: World) -> list[str]:
    """R-ADM-3: each open group has exactly one manager at a time, an open user of its
    organisation; checked today and on every later boundary day."""
    problems = []
    users = {u["id"]: u for u in w.tables["users"]}
    for g in w.tables["groups"]:
        org = w.org_code[g["organisation_id"]]
        for day in w.boundary_days():
            if not is_open(g, day):
                continue
            rows = [
                m
                for m in w.tables["group_managers"]
                if m["group_id"] == g["id"] and is_open(m, day)
            ]
            if len(rows) != 1:
                names = [w.login[m["user_id"]] for m in rows]
                problems.append(f"R-ADM-3: {org}/{g['code']} has managers {names} on {day}")
                continue
            u = users[rows[0]["user_id"]]
            if u["organisation_id"] != g["organisation_id"] or not is_open(u, day):
                problems.append(
                    f"R-ADM-3: the manager of {org}/{g['code']} on {day}, {u['login']}, is not "
                    f"an open user of {org} (user open {u['opens_on']}–{u['closes_on']})"
                )
    return problems


def subgroup_roles_in_parent(w: World) -> list[str]:
    """R-GRP-4: a sub-group holds only roles its direct parent holds (today); R-GRP-2: an open
    sub-group has an open parent (today and every later day: a closed parent holds no role,
    so neither may its children)."""
    problems = []
    for g in w.tables["groups"]:
        parent = w.parent(g)
        if parent is None:
            continue
        org = w.org_code[g["organisation_id"]]
        if is_open(g, w.today):
            extra = w.roles(g, w.today) - (
                w.roles(parent, w.today) if is_open(parent, w.today) else set()
            )
            if extra:
                problems.append(
                    f"R-GRP-4: {org}/{g['code']} holds {sorted(extra)} that its parent "
                    f"{parent['code']} does not hold today"
                )
        for day in w.boundary_days():
            if is_open(g, day) and not is_open(parent, day):
                problems.append(
                    f"R-GRP-2: {org}/{g['code']} is open on {day} but its parent "
                    f"{parent['code']} is not (parent {parent['opens_on']}–{parent['closes_on']})"
                )
                break
    return problems


def decision_checks(w: World, services: Iterable[str]) -> list[tuple[dict[str, str], str]]:
    """Checks that must be denied, each with the rule it stands for:

    - R-USR-4: every user closed today (or not yet open) is denied every service;
    - R-CON-2 / R-DEC-1: every open user of an organisation is denied each service the
      organisation has no open subscription to (under an open convention).
    """
    services = list(services)
    out: list[tuple[dict[str, str], str]] = []
    for u in w.users():
        if u["is_operator"]:
            continue
        if not is_open(u, w.today):
            out += [({"user": u["login"], "service": s}, "R-USR-4") for s in services]
            continue
        org = w.org_code.get(u["organisation_id"])
        if org is None:
            continue
        open_services = w.subscribed(org, w.today)
        out += [
            ({"user": u["login"], "service": s}, "R-CON-2")
            for s in services
            if s not in open_services
        ]
    return out
