"""Differential test of administrative decisions (R-ADM-7): the fast path gives Casbin's answers.

``pdp.engine.rules.authorise`` (over the engine's ``Index``) must allow exactly when plain Casbin
over ``policies/admin.conf``, the table of rights ``policies/admin_policy.csv`` and the day's
links of ``pdp.engine.casbin_lines.admin_lines`` allows (``AdminReferenceEnforcer``):

- on the demo data, for every actor, every action and every target of a kind the action applies
  to, on today, days far before and after, and the opening and closing days of the demo's
  records (and the day before each);
- on random data (the bench generator at a tiny scale, several seeds) changed by a random
  mutator that, besides the decision-side writes, adds, closes and reopens group managers
  (R-ADM-3, R-ADM-4) and partner admins (R-ADM-1, R-USR-5), makes and unmakes operators
  (R-CON-4), moves groups under another parent -- including corrupt trees: a cycle, a parent in
  another organisation -- and hands out ``afas:habiliter`` (R-AFAS-2); on many days, among them
  the exact edges of the manager and admin windows, for a sample biased towards actors holding a
  capacity and targets of their own organisation, so that every reason of the fast path
  (ALLOWED, OUTSIDE_PERIMETER, TARGET_IS_PARTNER_ADMIN, AFAS_HABILITER_REQUIRED, NOT_PERMITTED)
  is met and the comparison cannot pass vacuously;
- on a hand-made case: a manager's perimeter holds neither themselves when they also belong to
  a group outside it, nor the perimeter of another manager who lies in theirs (R-ADM-4,
  R-USR-5).

The Casbin domain is the target's organisation ("*" for the platform); a target user's is their
own organisation. Targets that do not exist, or users with no organisation (operators), have no
domain: the fast path must answer UNKNOWN_TARGET for them (fail closed), which is checked apart.

Snapshots are read from real SQLite files through ``SqlSnapshotSource``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bench.generate import generate
from pdp.adapters.sql.database import make_engine, record_change, upgrade
from pdp.adapters.sql.models import Group, GroupManager, Membership, User
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import Catalogue, load_catalogue
from pdp.core.clock import FOREVER
from pdp.engine.casbin_model import AdminReferenceEnforcer
from pdp.engine.index import Index
from pdp.engine.rules import AdminReason, Rights, authorise, load_rights, parse_target
from pdp.engine.snapshot import Snapshot
from pdp.services.demo import load_demo

from support.admin_differential import TODAY, AdminMutator, AdminWorld, compare, pick_days

SCALE = 0.0005  # 10 organisations, ~200 users, ~50 groups, ~50 managers, ~13 partner admins
SEEDS = (201, 202, 203)
ROUNDS = 2  # snapshots per seed, with mutations before each
STEPS_PER_ROUND = 45
DAYS_PER_SNAPSHOT = 10
QUERIES_PER_DAY = 240

# Reasons the random data must reach (else the comparison proves little).
WANTED = (
    AdminReason.ALLOWED,
    AdminReason.OUTSIDE_PERIMETER,
    AdminReason.TARGET_IS_PARTNER_ADMIN,
    AdminReason.AFAS_HABILITER_REQUIRED,
    AdminReason.NOT_PERMITTED,
)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def rights() -> Rights:
    return load_rights()


def _rules(rights: Rights) -> list[tuple[str, str, str, str]]:
    return [(r.capacity, r.kind, r.action, r.scope) for r in rights.rules]


# -- the demo ------------------------------------------------------------------------------------


def _demo_store(path: Path) -> Engine:
    db = make_engine(f"sqlite:///{path / 'demo.sqlite3'}")
    upgrade(db)
    with Session(db) as session, session.begin():
        load_demo(session, TODAY)
    return db


def _edges(snap: Snapshot) -> set[int]:
    """Every opening and closing day of the snapshot's dated rows."""
    rows: list[tuple[Any, ...]] = [
        *snap.subscriptions,
        *snap.users,
        *snap.groups,
        *snap.group_roles,
        *snap.memberships,
        *snap.afas_profiles,
        *snap.partner_admins,
        *snap.group_managers,
    ]
    return {d for row in rows for d in row[-2:] if d != FOREVER}


def test_demo_every_question_agrees_with_casbin(tmp_path: Path, rights: Rights) -> None:
    snap = SqlSnapshotSource(_demo_store(tmp_path)).load()
    index = Index.build(snap)
    world = AdminWorld(snap, index)
    targets = world.every_target()
    today = TODAY.toordinal()
    days = {today + d for d in (0, -40, 40, -400, 400)}
    edges = _edges(snap)
    assert {today - 30, today - 5, today - 10, today + 30} <= edges  # the demo's closings
    days |= {d + shift for d in edges for shift in (0, -1)}
    questions = [
        (actor, action, target)
        for actor in [*world.logins, "inconnu"]
        for action in sorted(rights.actions)
        for kind in sorted(rights.kinds_for(action))
        for target in targets[kind]
    ]
    reasons: Counter[AdminReason] = Counter()
    mismatches: list[str] = []
    for day in sorted(days):
        reference = AdminReferenceEnforcer.for_day(snap, day, _rules(rights))
        mismatches += compare(index, rights, reference, world, day, questions, reasons)
    assert not mismatches, f"{len(mismatches)} disagreements, e.g. {mismatches[:10]}"
    assert reasons[AdminReason.ALLOWED] > 1000, reasons
    assert all(reasons[r] for r in WANTED), reasons
    print(f"demo: {len(days)} days x {len(questions)} questions: {dict(reasons)}")


def test_demo_unknown_targets_fail_closed(tmp_path: Path, rights: Rights) -> None:
    """A target that does not exist, or a user of no organisation, is UNKNOWN_TARGET for
    everyone, operators included (there is no Casbin domain to ask)."""
    snap = SqlSnapshotSource(_demo_store(tmp_path)).load()
    index = Index.build(snap)
    unknown = {
        "organisation": ["organisation:inconnu"],
        "group": ["group:inconnu/CCAS", "group:mairie-montreuil/INCONNU", "group:sip-lyon/CCAS"],
        "user": ["user:inconnu", "user:op.caf751"],
    }
    for actor in ("op.caf751", "alice.martin", "bruno.petit", "karim.diallo"):
        for action in sorted(rights.actions):
            for kind in sorted(rights.kinds_for(action) - {"platform"}):
                for target in unknown[kind]:
                    got = authorise(
                        index, rights, actor, action, parse_target(target), TODAY.toordinal()
                    )
                    assert got is AdminReason.UNKNOWN_TARGET, (actor, action, target, got)


def test_perimeters_are_neither_reflexive_nor_transitive(tmp_path: Path, rights: Rights) -> None:
    """R-ADM-4, R-USR-5: a manager's perimeter is their groups, their descendants and the users
    all of whose memberships lie there -- not themselves when they belong elsewhere, and not
    the perimeter of another manager who happens to be in theirs.

    In the demo, bruno.petit manages the CCAS tree and chloe.roux is in it (CCAS-ACCUEIL). Here
    chloe also manages a new top-level group AUTRE, zoe.blanc is only in AUTRE, and bruno joins
    AUTRE: AUTRE and zoe are in chloe's perimeter, not bruno's, and bruno himself is no longer
    in his own. (Casbin's role manager links every name to itself and follows links: the
    reference must not name actors like target users.)"""
    db = _demo_store(tmp_path)
    with Session(db) as s, s.begin():
        ccas = s.execute(select(Group).where(Group.code == "CCAS")).scalar_one()
        logins = ("bruno.petit", "chloe.roux")
        users = {
            u.login: u for u in s.execute(select(User).where(User.login.in_(logins))).scalars()
        }
        long_ago = TODAY - dt.timedelta(days=400)
        autre = Group(
            organisation_id=ccas.organisation_id,
            convention_id=ccas.convention_id,
            code="AUTRE",
            label="Hors du CCAS",
            opens_on=long_ago,
        )
        zoe = User(login="zoe.blanc", organisation_id=ccas.organisation_id, opens_on=long_ago)
        s.add_all([autre, zoe])
        s.flush()
        s.add_all(
            [
                GroupManager(group_id=autre.id, user_id=users["chloe.roux"].id, opens_on=long_ago),
                Membership(user_id=zoe.id, group_id=autre.id, opens_on=long_ago),
                Membership(user_id=users["bruno.petit"].id, group_id=autre.id, opens_on=long_ago),
            ]
        )
        record_change(s, [ccas.organisation_id], "test perimeter")
    snap = SqlSnapshotSource(db).load()
    index = Index.build(snap)
    world = AdminWorld(snap, index)
    today = TODAY.toordinal()
    reference = AdminReferenceEnforcer.for_day(snap, today, _rules(rights))
    outside = [
        ("bruno.petit", action, "group:mairie-montreuil/AUTRE")
        for action in ("group.roles.edit", "group.members.edit", "group.create_sub")
    ] + [
        ("bruno.petit", action, f"user:{login}")
        for action in ("user.edit", "user.close")
        for login in ("zoe.blanc", "bruno.petit")
    ]
    inside = [
        ("chloe.roux", "group.roles.edit", "group:mairie-montreuil/AUTRE"),
        ("chloe.roux", "user.edit", "user:zoe.blanc"),
        ("bruno.petit", "user.edit", "user:chloe.roux"),
    ]
    reasons: Counter[AdminReason] = Counter()
    mismatches = compare(index, rights, reference, world, today, [*outside, *inside], reasons)
    assert not mismatches, f"{len(mismatches)} disagreements: {mismatches}"
    assert reasons == {
        AdminReason.OUTSIDE_PERIMETER: len(outside),
        AdminReason.ALLOWED: len(inside),
    }, reasons


# -- random data and the mutator ---------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_random_data_agrees_with_casbin(
    tmp_path: Path, catalogue: Catalogue, rights: Rights, seed: int
) -> None:
    db = make_engine(f"sqlite:///{tmp_path / f'admin-{seed}.sqlite3'}")
    generate(db, SCALE, seed, today=TODAY, catalogue=catalogue)
    rng = random.Random(seed)
    mutator = AdminMutator(db, rng, catalogue)
    reasons: Counter[AdminReason] = Counter()
    mismatches: list[str] = []
    for _ in range(ROUNDS):
        mutator.run(STEPS_PER_ROUND)
        snap = SqlSnapshotSource(db).load()
        index = Index.build(snap)
        world = AdminWorld(snap, index)
        for day in pick_days(snap, rng, DAYS_PER_SNAPSHOT):
            reference = AdminReferenceEnforcer.for_day(snap, day, _rules(rights))
            holders = world.holders(day)
            triples = [world.sample(rng, rights, holders, i) for i in range(QUERIES_PER_DAY)]
            mismatches += compare(index, rights, reference, world, day, triples, reasons)
    assert not mismatches, f"{len(mismatches)} disagreements, e.g. {mismatches[:10]}"
    compared = sum(reasons.values())
    assert reasons[AdminReason.ALLOWED] > 0.1 * compared, reasons
    missing = [r for r in WANTED if not reasons[r]]
    assert not missing, (missing, reasons)
    administration = {"manager", "partner_admin", "operator", "parent", "cycle", "habiliter"}
    assert administration <= set(mutator.done), mutator.done
    print(f"seed {seed}: {compared} compared, {dict(reasons)}, writes {dict(mutator.done)}")
