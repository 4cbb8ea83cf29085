"""Concurrent administrative writes: the revision lock serialises them (pdp.services.admin.service).

Each racer is its own Flask app built over the same database (its own engine and connection
pool, like separate gunicorn workers), released together by a ``threading.Barrier`` to send one
request. Whatever the interleaving, the business rules hold afterwards, read straight from the
database: at most two open partner admins (R-ADM-1), no sub-group role its parent lacks
(R-GRP-4), one open manager per group (R-ADM-3), one group per code (R-GRP-1). The loser of a
race gets a 409 with the rule's code, never a 500; failed writes take no revision, so the
successful ones carry the next revisions, one each.

PostgreSQL is the case that matters (READ COMMITTED, row lock on the revision); on SQLite the
same must hold (the revision UPDATE takes the database's write lock).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import (
    Group,
    GroupManager,
    GroupRole,
    Organisation,
    PartnerAdmin,
    User,
)
from pdp.web.container import services

from support.constants import CONVENTION, SECRET, MakeApp
from support.constants import MAIRIE as BASE
from support.constants import MAIRIE_CODE as ORG
from support.races import Call, Racers, not_ended, orphan_roles

ROUNDS = 4
T18 = {"service": "cdap", "role": "T18"}


@pytest.fixture
def racers(make_app: MakeApp, demo_db: str) -> Iterator[Callable[[int], Racers]]:
    """``racers(n)``: n apps over the demo database, each with its own pool."""
    engines: list[Engine] = []

    def build(n: int) -> Racers:
        apps = [make_app(jwt_secret=SECRET)[0] for _ in range(n)]
        engine = make_engine(demo_db)
        engines.append(engine)
        return Racers(apps, engine)

    yield build
    for engine in engines:
        engine.dispose()


def _today(racers: Racers) -> dt.date:
    today: dt.date = services(racers.apps[0]).admin.today()
    return today


def _codes(responses: list[TestResponse]) -> list[tuple[int, str | None]]:
    """(status, error code or None) of each response, in order."""
    return [
        (r.status_code, r.get_json()["error"]["code"] if r.status_code >= 400 else None)
        for r in responses
    ]


def _org_id(s: Session) -> int:
    return int(s.execute(select(Organisation.id).where(Organisation.code == ORG)).scalar_one())


# -- R-ADM-1: at most two open partner admins ----------------------------------------------------


def _open_admins(db: Engine, today: dt.date) -> list[str]:
    with Session(db) as s:
        return sorted(
            s.execute(
                select(User.login)
                .join(PartnerAdmin, PartnerAdmin.user_id == User.id)
                .where(
                    PartnerAdmin.organisation_id == _org_id(s),
                    not_ended(PartnerAdmin.closes_on, today),
                )
            ).scalars()
        )


def test_designating_admins_concurrently_never_exceeds_two(
    racers: Callable[[int], Racers],
) -> None:
    """alice.martin is the only admin: of three designations at once (one more would be fine),
    exactly one passes; the others get 409 TOO_MANY_ADMINS, and two admins are open (R-ADM-1)."""
    r = racers(3)
    today = _today(r)
    assert _open_admins(r.db, today) == ["alice.martin"]
    candidates = ["chloe.roux", "emma.garnier", "bruno.petit"]
    calls = [Call("op.caf751", "POST", f"{BASE}/admins", {"login": c}) for c in candidates]
    responses = r.race(calls)
    codes = _codes(responses)
    assert sorted(codes, key=str) == sorted(
        [(201, None), (409, "TOO_MANY_ADMINS"), (409, "TOO_MANY_ADMINS")], key=str
    ), codes
    winner = next(
        c for c, resp in zip(candidates, responses, strict=True) if resp.status_code == 201
    )
    assert _open_admins(r.db, today) == sorted(["alice.martin", winner])


# -- R-GRP-4: a sub-group holds only roles of its parent -------------------------------------


def _holds(db: Engine, code: str, service: str, role: str, today: dt.date) -> bool:
    with Session(db) as s:
        found = s.execute(
            select(GroupRole.id)
            .join(Group, Group.id == GroupRole.group_id)
            .where(
                Group.organisation_id == _org_id(s),
                Group.code == code,
                GroupRole.service == service,
                GroupRole.role == role,
                not_ended(GroupRole.closes_on, today),
            )
        ).first()
    return found is not None


def test_assigning_to_a_subgroup_while_the_parent_loses_the_role(
    racers: Callable[[int], Racers],
) -> None:
    """POST CCAS-ACCUEIL/roles cdap:T18 against DELETE CCAS/roles/cdap/T18, several rounds:
    either the assignment came first and the removal cascaded to it, or it came second and was
    refused (409 SUBGROUP_ROLE_NOT_IN_PARENT); never CCAS-ACCUEIL with T18 and CCAS without."""
    r = racers(2)
    today = _today(r)
    assert orphan_roles(r.db, today) == []
    outcomes = set()
    for round_ in range(ROUNDS):
        if round_:  # the previous round removed it: give it back to the parent
            again = r.send(Call("alice.martin", "POST", f"{BASE}/groups/CCAS/roles", T18))
            assert again.status_code == 201, again.get_json()
        assert _holds(r.db, "CCAS", "cdap", "T18", today)
        assert not _holds(r.db, "CCAS-ACCUEIL", "cdap", "T18", today)
        # The manager of CCAS assigns while the partner admin removes (either order).
        calls = [
            Call("bruno.petit", "POST", f"{BASE}/groups/CCAS-ACCUEIL/roles", T18),
            Call("alice.martin", "DELETE", f"{BASE}/groups/CCAS/roles/cdap/T18"),
        ]
        if round_ % 2:
            calls.reverse()
        responses = r.race(calls)
        by_kind = {c.method: resp for c, resp in zip(calls, responses, strict=True)}
        assign, remove = by_kind["POST"], by_kind["DELETE"]
        assert remove.status_code == 200, remove.get_json()
        removed_from = remove.get_json()["groups"]
        assert removed_from[0] == "CCAS"
        if assign.status_code == 201:
            # The assignment committed first: the removal saw it and cascaded to it.
            assert assign.get_json()["revision"] < remove.get_json()["revision"]
            assert "CCAS-ACCUEIL" in removed_from
            outcomes.add("assign first")
        else:
            assert _codes([assign]) == [(409, "SUBGROUP_ROLE_NOT_IN_PARENT")]
            assert "CCAS-ACCUEIL" not in removed_from
            outcomes.add("remove first")
        assert not _holds(r.db, "CCAS", "cdap", "T18", today)
        assert not _holds(r.db, "CCAS-ACCUEIL", "cdap", "T18", today)
        assert orphan_roles(r.db, today) == []
    assert outcomes  # which orders happened is up to the scheduler


# -- R-ADM-3: one manager per group ------------------------------------------------------------


def _open_managers(db: Engine, code: str, today: dt.date) -> list[str]:
    with Session(db) as s:
        return sorted(
            s.execute(
                select(User.login)
                .join(GroupManager, GroupManager.user_id == User.id)
                .join(Group, Group.id == GroupManager.group_id)
                .where(
                    Group.organisation_id == _org_id(s),
                    Group.code == code,
                    not_ended(GroupManager.closes_on, today),
                )
            ).scalars()
        )


def test_replacing_the_same_manager_concurrently(racers: Callable[[int], Racers]) -> None:
    """Two partner-admin requests replace the manager of CCAS-ACCUEIL with two different users,
    both naming the same current manager: one wins (200), the other is stale (409
    MANAGER_CHANGED, naming the winner); one manager is open afterwards (R-ADM-3). Three rounds,
    each replacing the previous winner."""
    r = racers(2)
    today = _today(r)
    people = ["bruno.petit", "chloe.roux", "emma.garnier"]
    current = "bruno.petit"
    for _ in range(3):
        assert _open_managers(r.db, "CCAS-ACCUEIL", today) == [current]
        candidates = [p for p in people if p != current]
        calls = [
            Call(
                "alice.martin",
                "PUT",
                f"{BASE}/groups/CCAS-ACCUEIL/manager",
                {"login": c, "replaces": current},
            )
            for c in candidates
        ]
        responses = r.race(calls)
        codes = _codes(responses)
        assert sorted(codes, key=str) == sorted([(200, None), (409, "MANAGER_CHANGED")], key=str), (
            codes
        )
        won = next(resp for resp in responses if resp.status_code == 200).get_json()
        lost = next(resp for resp in responses if resp.status_code == 409).get_json()
        assert won["previous"] == current
        assert won["manager"] in candidates
        assert lost["error"]["details"] == {"current": won["manager"]}
        current = won["manager"]
        assert _open_managers(r.db, "CCAS-ACCUEIL", today) == [current]


# -- R-GRP-1: a code names one group of the organisation -----------------------------------------


def test_creating_groups_with_the_same_code_concurrently(racers: Callable[[int], Racers]) -> None:
    """Three groups with the same code at once (two top-level by the partner admin, one
    sub-group of CCAS by its manager): one 201, the others 409 GROUP_CODE_TAKEN, never a 500
    from the unique constraint; one group with that code exists afterwards."""
    r = racers(3)
    today = _today(r)
    for round_ in range(2):
        code = f"RACE-{round_}"
        top = {"code": code, "convention": CONVENTION, "manager": {"login": "chloe.roux"}}
        calls = [
            Call("alice.martin", "POST", f"{BASE}/groups", {**top, "label": "Premier"}),
            Call("alice.martin", "POST", f"{BASE}/groups", {**top, "label": "Second"}),
            Call(
                "bruno.petit",
                "POST",
                f"{BASE}/groups",
                {
                    "code": code,
                    "label": "Sous-groupe",
                    "parent": "CCAS",
                    "manager": {"login": "emma.garnier"},
                },
            ),
        ]
        responses = r.race(calls)
        codes = _codes(responses)
        assert sorted(codes, key=str) == sorted(
            [(201, None), (409, "GROUP_CODE_TAKEN"), (409, "GROUP_CODE_TAKEN")], key=str
        ), codes
        winner = next(
            (c, resp.get_json()["group"])
            for c, resp in zip(calls, responses, strict=True)
            if resp.status_code == 201
        )
        assert winner[1]["label"] == (winner[0].body or {})["label"]
        with Session(r.db) as s:
            rows = list(
                s.execute(
                    select(Group).where(Group.organisation_id == _org_id(s), Group.code == code)
                ).scalars()
            )
            assert len(rows) == 1
            assert rows[0].label == winner[1]["label"]
            managers = s.execute(
                select(func.count())
                .select_from(GroupManager)
                .where(
                    GroupManager.group_id == rows[0].id,
                    not_ended(GroupManager.closes_on, today),
                )
            ).scalar_one()
            assert managers == 1
