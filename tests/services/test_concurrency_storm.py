"""A storm of conflicting administrative writes: many workers, several rounds, a seeded mix.

tests/services/test_admin_races.py races two or three requests of one kind; here sixteen
workers (each its own Flask app, engine and connection pool, like gunicorn workers) are released
together by its
``Racers.race`` barrier, round after round, with a random mix of conflicts on different objects:

- designating partner admins of one organisation, one of them being ended (R-ADM-1);
- replacing one group's manager, while one of the candidates is being closed (R-ADM-3);
- giving a sub-group a role while its parent loses it (R-GRP-4);
- creating groups with one code, top-level and sub-group (R-GRP-1);
- closing a user while attaching them to groups (R-USR-4, R-MEM-1);
- closing a group while sub-groups are created under it and a member attached (R-GRP-2).

Each conflict's possible outcomes are checked (the loser gets a 4xx with the rule's code, never
a 5xx), then the business rules are read straight from the database after every round, and at
the end the whole history: every committed write took one revision, contiguous, and left exactly
its audit records (its actor, its request id), and the audit chain verifies (``pdp audit
verify``). Objects of each conflict are made before the round, one write at a time.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, aliased
from werkzeug.test import TestResponse

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import (
    AuditRecord,
    Group,
    GroupManager,
    Membership,
    Organisation,
    PartnerAdmin,
    PolicyChange,
    User,
)
from pdp.records.audit_trail import AuditChain

from support.constants import CONVENTION, MANAGER, OPERATOR, SECRET, MakeApp
from support.constants import MAIRIE as BASE
from support.constants import MAIRIE_CODE as ORG
from support.constants import PARTNER_ADMIN as ADMIN
from support.races import Call, Racers, orphan_roles

WORKERS = 16
ROUNDS = 10
# Another mix: PDP_TEST_STORM_SEED=<int> (the seed is printed with the counts, run with -s).
SEED = int(os.environ.get("PDP_TEST_STORM_SEED", "20261124"))
# Each organisation of the demo and its partner admin (R-ADM-1: one open, one more allowed).
ORGS = ["mairie-montreuil", "habitat-93", "sip-lyon", "asso-entraide", "ccas-grand-paris"]
T1 = {"service": "cdap", "role": "T1"}
T18 = {"service": "cdap", "role": "T18"}

Audit = list[tuple[str, str]]  # (action, target) of the audit records a write must leave


@dataclass(frozen=True)
class Op:
    """One request of the storm, and the audit records it leaves if it commits."""

    call: Call
    audit: Callable[[dict[str, Any]], Audit]


@dataclass
class Conflict:
    """Requests that conflict with each other, and the check of their outcomes."""

    name: str
    ops: list[Op]
    check: Callable[[list[TestResponse]], None]


@dataclass
class Tally:
    """What the storm did."""

    setup: int = 0
    raced: int = 0
    committed: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    conflicts: Counter[str] = field(default_factory=Counter)


def _person(login: str) -> dict[str, str]:
    return {"login": login, "first_name": "Zoé", "last_name": "Durand", "email": f"{login}@x.fr"}


def _status(r: TestResponse) -> tuple[int, str | None]:
    return r.status_code, (r.get_json()["error"]["code"] if r.status_code >= 400 else None)


def _rev(r: TestResponse) -> int:
    return int(r.get_json()["revision"])


def _group(code: str) -> str:
    return f"group:{ORG}/{code}"


def _leaves(*records: tuple[str, str]) -> Callable[[dict[str, Any]], Audit]:
    """The audit records of a write that does not depend on its answer."""
    return lambda _body: list(records)


class Storm:
    """The racers, a seeded random source, fresh names, and set-up one write at a time."""

    def __init__(self, racers: Racers, rng: random.Random, today: dt.date) -> None:
        self.r = racers
        self.rng = rng
        self.today = today
        self.tally = Tally()
        self._n = 0

    def name(self, kind: str) -> str:
        self._n += 1
        return f"s{self._n:03d}-{kind}"

    def setup(self, actor: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self.r.send(Call(actor, method, path, body))
        assert response.status_code in (200, 201), response.get_json()
        self.tally.setup += 1
        return response.get_json()  # type: ignore[no-any-return]

    def user(self) -> str:
        login = self.name("user").replace("-", ".")
        self.setup(ADMIN, "POST", f"{BASE}/users", _person(login))
        return login

    def group(self, roles: tuple[dict[str, str], ...] = (), parent: str | None = None) -> str:
        code = self.name("grp").upper()
        body: dict[str, Any] = {"code": code, "label": "Tempête", "manager": {"login": MANAGER}}
        body |= {"parent": parent} if parent else {"convention": CONVENTION}
        self.setup(ADMIN, "POST", f"{BASE}/groups", body)
        for role in roles:
            self.setup(ADMIN, "POST", f"{BASE}/groups/{code}/roles", role)
        return code

    # -- the conflicts -------------------------------------------------------------------------

    def admins(self) -> Conflict:
        """R-ADM-1: three designations (each creating its user) in one organisation, and the
        end of a designation the storm made earlier, if any: never more than two open."""
        org = self.rng.choice(ORGS)
        current = _open_admins(self.r.db, org, self.today)
        made = [login for login in current if login.startswith("s")]
        ops = []
        for _ in range(3):
            login = self.name("adm").replace("-", ".")
            ops.append(
                Op(
                    Call(
                        OPERATOR,
                        "POST",
                        f"/v1/organisations/{org}/admins",
                        {"new_user": _person(login)},
                    ),
                    _leaves(
                        ("user.create", f"user:{login}"), ("admins.designate", f"user:{login}")
                    ),
                )
            )
        if made:
            gone = self.rng.choice(made)
            ops.append(
                Op(
                    Call(OPERATOR, "DELETE", f"/v1/organisations/{org}/admins/{gone}"),
                    _leaves(("admins.designate", f"user:{gone}")),
                )
            )

        def check(rs: list[TestResponse]) -> None:
            designations = [_status(r) for r in rs[:3]]
            won = designations.count((201, None))
            assert won + designations.count((409, "TOO_MANY_ADMINS")) == 3, designations
            room = 2 - len(current)
            assert min(3, room) <= won <= min(3, room + len(rs[3:])), (current, designations)
            assert [_status(r) for r in rs[3:]] in ([], [(200, None)])
            assert len(_open_admins(self.r.db, org, self.today)) <= 2

        return Conflict("admins", ops, check)

    def manager(self) -> Conflict:
        """R-ADM-3: three admins replace the manager of one group at once, while one candidate
        is closed from tomorrow: one replacement wins, the others are stale (MANAGER_CHANGED)
        or name a closing user (MANAGER_NOT_OPEN); a user who won cannot be closed
        (USER_MANAGES_GROUPS)."""
        code = self.group()
        candidates = [self.user() for _ in range(3)]
        ops = [
            Op(
                Call(
                    ADMIN, "PUT", f"{BASE}/groups/{code}/manager", {"login": c, "replaces": MANAGER}
                ),
                lambda _b: [("group.manager.set", _group(code))],
            )
            for c in candidates
        ]
        doomed = candidates[0]
        ops.append(
            Op(
                Call(
                    ADMIN,
                    "PATCH",
                    f"{BASE}/users/{doomed}",
                    {"closes_on": str(self.today + dt.timedelta(days=1))},
                ),
                lambda _b: [("user.close", f"user:{doomed}")],
            )
        )

        def check(rs: list[TestResponse]) -> None:
            puts, close = [_status(r) for r in rs[:3]], _status(rs[3])
            assert puts.count((200, None)) == 1, puts
            winner = candidates[puts.index((200, None))]
            for who, got in zip(candidates, puts, strict=True):
                allowed = {(200, None), (409, "MANAGER_CHANGED")}
                if who == doomed:
                    allowed.add((409, "MANAGER_NOT_OPEN"))
                assert got in allowed, (who, got)
            if winner == doomed:
                assert close == (409, "USER_MANAGES_GROUPS"), close
            else:
                assert close == (200, None), close
            assert _open_managers(self.r.db, code, self.today) == [winner]

        return Conflict("manager", ops, check)

    def subgroup_role(self) -> Conflict:
        """R-GRP-4: the parent's manager gives a sub-group T18 and T1 while an admin removes
        T18 from the parent: T18 on the sub-group either came first (and the removal cascaded to
        it) or is refused (SUBGROUP_ROLE_NOT_IN_PARENT)."""
        parent = self.group((T1, T18))
        sub = self.group(parent=parent)
        ops = [
            Op(
                Call(MANAGER, "POST", f"{BASE}/groups/{sub}/roles", T18),
                lambda _b: [("group.roles.edit", _group(sub))],
            ),
            Op(
                Call(ADMIN, "DELETE", f"{BASE}/groups/{parent}/roles/cdap/T18"),
                lambda b: [("group.roles.edit", _group(g)) for g in b["groups"]],
            ),
            Op(
                Call(MANAGER, "POST", f"{BASE}/groups/{sub}/roles", T1),
                lambda _b: [("group.roles.edit", _group(sub))],
            ),
        ]

        def check(rs: list[TestResponse]) -> None:
            assign, remove, other = rs
            assert _status(remove) == (200, None) and _status(other) == (201, None)
            cascaded = remove.get_json()["groups"]
            if _status(assign) == (201, None):
                assert _rev(assign) < _rev(remove) and cascaded == [parent, sub], cascaded
            else:
                assert _status(assign) == (409, "SUBGROUP_ROLE_NOT_IN_PARENT")
                assert cascaded == [parent], cascaded

        return Conflict("subgroup-role", ops, check)

    def same_code(self) -> Conflict:
        """R-GRP-1: two top-level groups and a sub-group with one code: one is created, the
        others get GROUP_CODE_TAKEN (never a 500 from the unique constraint)."""
        parent = self.group()
        code = self.name("same").upper()
        top = {"code": code, "label": "x", "convention": CONVENTION, "manager": {"login": MANAGER}}
        sub = {"code": code, "label": "x", "parent": parent, "manager": {"login": MANAGER}}
        ops = [
            Op(
                Call(ADMIN, "POST", f"{BASE}/groups", top),
                lambda _b: [("group.create_top", _group(code))],
            ),
            Op(
                Call(ADMIN, "POST", f"{BASE}/groups", top),
                lambda _b: [("group.create_top", _group(code))],
            ),
            Op(
                Call(MANAGER, "POST", f"{BASE}/groups", sub),
                lambda _b: [("group.create_sub", _group(code))],
            ),
        ]

        def check(rs: list[TestResponse]) -> None:
            got = sorted((_status(r) for r in rs), key=str)
            assert got == sorted([(201, None)] + [(409, "GROUP_CODE_TAKEN")] * 2, key=str), got

        return Conflict("same-code", ops, check)

    def close_user(self) -> Conflict:
        """R-USR-4, R-MEM-1: a user is closed from tomorrow while attached, from tomorrow, to
        three groups: an attachment after the closing is refused (USER_NOT_OPEN)."""
        login = self.user()
        groups = [self.group() for _ in range(3)]
        tomorrow = str(self.today + dt.timedelta(days=1))
        ops = [
            Op(
                Call(ADMIN, "PATCH", f"{BASE}/users/{login}", {"closes_on": tomorrow}),
                lambda _b: [("user.close", f"user:{login}")],
            )
        ] + [
            Op(
                Call(
                    MANAGER,
                    "POST",
                    f"{BASE}/users/{login}/memberships",
                    {"group": g, "opens_on": tomorrow},
                ),
                lambda _b: [("group.members.edit", f"user:{login}")],
            )
            for g in groups
        ]

        def check(rs: list[TestResponse]) -> None:
            close, attaches = rs[0], rs[1:]
            assert _status(close) == (200, None)
            for a in attaches:
                if _status(a) == (201, None):
                    assert _rev(a) < _rev(close)
                else:
                    assert _status(a) == (409, "USER_NOT_OPEN"), _status(a)

        return Conflict("close-user", ops, check)

    def close_group(self) -> Conflict:
        """R-GRP-2: a group is closed while an admin and its manager create sub-groups under it
        and a user is attached to it: what came first is closed or detached with it, what came
        after is refused (GROUP_NOT_OPEN, or 403: a closed group is no perimeter, R-ADM-4)."""
        code = self.group()
        login = self.user()
        subs = [self.name("sub").upper() for _ in range(3)]
        ops = [
            Op(
                Call(ADMIN, "POST", f"{BASE}/groups/{code}/close"),
                lambda b: [("group.close", _group(g)) for g in b["closed"]],
            )
        ]
        for i, sub in enumerate(subs):
            body = {"code": sub, "label": "x", "parent": code, "manager": {"login": MANAGER}}
            ops.append(
                Op(
                    Call(MANAGER if i == 2 else ADMIN, "POST", f"{BASE}/groups", body),
                    _leaves(("group.create_sub", _group(sub))),
                )
            )
        ops.append(
            Op(
                Call(ADMIN, "POST", f"{BASE}/users/{login}/memberships", {"group": code}),
                lambda _b: [("group.members.edit", f"user:{login}")],
            )
        )

        def check(rs: list[TestResponse]) -> None:
            close, creates, attach = rs[0], rs[1:4], rs[4]
            assert _status(close) == (200, None)
            closed = close.get_json()["closed"]
            before = [s for s, r in zip(subs, creates, strict=True) if r.status_code == 201]
            assert sorted(closed) == sorted([code, *before]), (closed, before)
            for i, r in enumerate(creates):
                if r.status_code == 201:
                    assert _rev(r) < _rev(close)
                elif r.status_code == 403 and i == 2:
                    assert r.get_json()["error"]["code"]
                else:
                    assert _status(r) == (409, "GROUP_NOT_OPEN"), _status(r)
            if _status(attach) == (201, None):
                assert _rev(attach) < _rev(close)
                assert close.get_json()["group"]["code"] == code
            else:
                assert _status(attach) == (409, "GROUP_NOT_OPEN"), _status(attach)

        return Conflict("close-group", ops, check)

    # -- a round -----------------------------------------------------------------------------

    def round(self) -> None:
        """Pick conflicts at random until the workers are all busy, race them, check them."""
        makers = [
            self.admins,
            self.manager,
            self.subgroup_role,
            self.same_code,
            self.close_user,
            self.close_group,
        ]
        self.rng.shuffle(makers)
        conflicts: list[Conflict] = []
        for make in makers:
            if sum(len(c.ops) for c in conflicts) + 5 <= WORKERS:
                conflicts.append(make())
        slots = [(i, j) for i, c in enumerate(conflicts) for j in range(len(c.ops))]
        self.rng.shuffle(slots)  # which worker sends which request
        responses = self.r.race([conflicts[i].ops[j].call for i, j in slots])
        got: dict[tuple[int, int], TestResponse] = dict(zip(slots, responses, strict=True))
        for i, c in enumerate(conflicts):
            answers = [got[(i, j)] for j in range(len(c.ops))]
            c.check(answers)
            self.tally.conflicts[c.name] += 1
            for op, r in zip(c.ops, answers, strict=True):
                self.tally.raced += 1
                if r.status_code < 300:
                    self.tally.committed += 1
                    _assert_audited(self.r.db, op, r)
                else:
                    self.tally.refused[f"{r.status_code} {r.get_json()['error']['code']}"] += 1
        assert_rules_hold(self.r.db, self.today)


# -- reading the database ------------------------------------------------------------------------


def _not_ended(column: Any, today: dt.date) -> Any:
    return column.is_(None) | (column > today)


def _open_admins(db: Engine, org: str, today: dt.date) -> list[str]:
    """Logins of the organisation's partner admins open today (R-ADM-1)."""
    with Session(db) as s:
        return sorted(
            s.execute(
                select(User.login)
                .join(PartnerAdmin, PartnerAdmin.user_id == User.id)
                .join(Organisation, Organisation.id == PartnerAdmin.organisation_id)
                .where(
                    Organisation.code == org,
                    _not_ended(PartnerAdmin.closes_on, today),
                    _not_ended(User.closes_on, today),
                )
            ).scalars()
        )


def _open_managers(db: Engine, code: str, today: dt.date) -> list[str]:
    with Session(db) as s:
        return sorted(
            s.execute(
                select(User.login)
                .join(GroupManager, GroupManager.user_id == User.id)
                .join(Group, Group.id == GroupManager.group_id)
                .where(Group.code == code, _not_ended(GroupManager.closes_on, today))
            ).scalars()
        )


def _assert_audited(db: Engine, op: Op, response: TestResponse) -> None:
    """A committed write left exactly its audit records: its revision, actor, request id."""
    body = response.get_json()
    with Session(db) as s:
        records = list(
            s.execute(select(AuditRecord).where(AuditRecord.revision == body["revision"])).scalars()
        )
    assert sorted((r.action, r.target) for r in records) == sorted(op.audit(body)), (
        op.call,
        body,
    )
    assert {r.actor for r in records} == {op.call.actor}
    assert {r.request_id for r in records} == {response.headers["X-Request-Id"]}


def assert_rules_hold(db: Engine, today: dt.date) -> None:
    """The business rules, read straight from the database."""
    with Session(db) as s:
        # R-ADM-1: at most two open partner admins per organisation.
        admins = s.execute(
            select(PartnerAdmin.organisation_id, func.count())
            .join(User, User.id == PartnerAdmin.user_id)
            .where(_not_ended(PartnerAdmin.closes_on, today), _not_ended(User.closes_on, today))
            .group_by(PartnerAdmin.organisation_id)
        ).all()
        assert all(n <= 2 for _, n in admins), admins
        # R-ADM-3: every group not closed has one manager, an open user, who does not close
        # before the group does.
        managers = Counter(
            s.execute(
                select(Group.code)
                .join(GroupManager, GroupManager.group_id == Group.id)
                .join(User, User.id == GroupManager.user_id)
                .where(
                    _not_ended(Group.closes_on, today),
                    _not_ended(GroupManager.closes_on, today),
                    User.opens_on <= today,
                    User.closes_on.is_(None)
                    | (Group.closes_on.is_not(None) & (Group.closes_on <= User.closes_on)),
                )
            ).scalars()
        )
        unmanaged = [
            code
            for code in s.execute(
                select(Group.code).where(_not_ended(Group.closes_on, today))
            ).scalars()
            if managers[code] != 1
        ]
        assert unmanaged == [], unmanaged
        # R-GRP-1: a code names one group of its organisation.
        dupes = s.execute(
            select(Group.organisation_id, Group.code)
            .group_by(Group.organisation_id, Group.code)
            .having(func.count() > 1)
        ).all()
        assert dupes == []
        # R-USR-4, R-MEM-1: no user was attached after the write that closed them.
        closed_at = dict(
            s.execute(
                select(AuditRecord.target, func.max(AuditRecord.revision))
                .where(AuditRecord.action == "user.close")
                .group_by(AuditRecord.target)
            ).all()
        )
        late = [
            (target, revision)
            for target, revision in s.execute(
                select(AuditRecord.target, AuditRecord.revision).where(
                    AuditRecord.action == "group.members.edit", AuditRecord.before.is_(None)
                )
            ).all()
            if target in closed_at and revision > closed_at[target]
        ]
        assert late == []
        # R-GRP-2: a closed group's sub-groups closed with it; its memberships (of the groups
        # the storm closed, today) ended.
        parent = aliased(Group)
        open_below = s.execute(
            select(Group.code, parent.code)
            .join(parent, parent.id == Group.parent_id)
            .where(
                parent.closes_on.is_not(None),
                Group.closes_on.is_(None) | (Group.closes_on > parent.closes_on),
            )
        ).all()
        assert open_below == []
        members = s.execute(
            select(Group.code, Membership.user_id)
            .join(Membership, Membership.group_id == Group.id)
            .where(Group.closes_on == today, _not_ended(Membership.closes_on, today))
        ).all()
        assert members == []
    # R-GRP-4: no sub-group holds a role its parent lacks.
    assert orphan_roles(db, today) == []


def assert_history_whole(db: Engine) -> None:
    """Every revision from 1 to the last was committed once, with its change log and audit
    records, the records of one write consecutive; the audit chain verifies."""
    with Session(db) as s:
        last = s.execute(select(func.max(PolicyChange.revision))).scalar_one()
        changes = set(s.execute(select(PolicyChange.revision)).scalars())
        audited = list(s.execute(select(AuditRecord.revision).order_by(AuditRecord.seq)).scalars())
    assert changes == set(range(1, last + 1))
    assert set(audited) == changes
    assert audited == sorted(audited)  # one write's records are not interleaved with another's
    report = AuditChain().verify(db)
    assert report.ok, report.message


# -- the test ------------------------------------------------------------------------------------


@pytest.fixture
def racers(make_app: MakeApp, demo_db: str) -> Iterator[Racers]:
    """WORKERS apps over the demo database (test_admin_races.Racers), and a direct engine."""
    apps = [make_app(jwt_secret=SECRET)[0] for _ in range(WORKERS)]
    db = make_engine(demo_db)
    yield Racers(apps, db)
    db.dispose()


def test_a_storm_of_conflicting_writes_keeps_every_rule_and_the_audit_chain(
    racers: Racers, today: dt.date, backend: str
) -> None:
    """ROUNDS rounds of WORKERS conflicting writes at once: every conflict ends as one of its
    possible serial orders, no 5xx, the rules hold after each round (R-ADM-1, R-ADM-3,
    R-GRP-1, R-GRP-2, R-GRP-4, R-USR-4, R-MEM-1) and the history is whole (R-ADM-7)."""
    started = time.monotonic()
    storm = Storm(racers, random.Random(SEED), today)
    assert_rules_hold(racers.db, today)
    for _ in range(ROUNDS):
        storm.round()
    assert_history_whole(racers.db)
    t = storm.tally
    print(
        f"\nstorm[{backend}, seed {SEED}]: {WORKERS} workers, {ROUNDS} rounds, "
        f"{t.setup + t.raced} writes "
        f"({t.setup} set-up, {t.raced} conflicting), {t.committed} committed, refused "
        f"{dict(sorted(t.refused.items()))}, conflicts {dict(sorted(t.conflicts.items()))}, "
        f"{time.monotonic() - started:.1f} s"
    )
    assert t.committed and sum(t.refused.values()) and len(t.conflicts) >= 4


def test_a_user_closing_tomorrow_cannot_be_named_manager(
    make_app: MakeApp, demo_db: str, today: dt.date
) -> None:
    """R-ADM-3, the storm's serial order "close, then replace": a user closed from tomorrow
    cannot become the manager of a group that stays open (a manager cannot be closed before
    being replaced either: USER_MANAGES_GROUPS), or the group is left with a closed manager."""
    db = make_engine(demo_db)
    racers = Racers([make_app(jwt_secret=SECRET)[0]], db)
    storm = Storm(racers, random.Random(SEED), today)
    code, login = storm.group(), storm.user()
    tomorrow = str(today + dt.timedelta(days=1))
    storm.setup(ADMIN, "PATCH", f"{BASE}/users/{login}", {"closes_on": tomorrow})
    body = {"login": login, "replaces": MANAGER}
    response = racers.send(Call(ADMIN, "PUT", f"{BASE}/groups/{code}/manager", body))
    assert _status(response) == (409, "MANAGER_NOT_OPEN"), response.get_json()
    new = {"code": "LATE", "label": "x", "convention": CONVENTION, "manager": {"login": login}}
    response = racers.send(Call(ADMIN, "POST", f"{BASE}/groups", new))
    assert _status(response) == (409, "MANAGER_NOT_OPEN"), response.get_json()
    assert_rules_hold(racers.db, today)
    db.dispose()
