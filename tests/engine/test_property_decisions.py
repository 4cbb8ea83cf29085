"""Property-based differential test: every decision of the service equals R-DEC-1 read plainly.

Design:

- ``worlds()`` (hypothesis) draws a small world of the domain: one or two organisations, their
  conventions with Cafs and the subscriptions under them (R-CON-1, R-CON-2), groups and
  sub-groups several levels deep (R-GRP-1), group roles, users (and sometimes a Caf operator,
  of no organisation), memberships and Afas profiles (R-AFAS-1). Every record has an opening
  day and often a closing day, drawn close to each other so that the boundaries interact;
  a few windows are empty (closing ≤ opening), as a careless write could leave them.
  Organisations themselves are open for ever: R-DEC-1 does not read their dates.
  Worlds are not forced to obey R-GRP-4 (a sub-group may hold a role its parent lacks, or a
  role of a service not subscribed under its convention): that is the administration's rule;
  R-DEC-1 only reads the groups the user is a member of, and their ancestors' dates.
- The days asked are biased towards the boundaries (every opening and closing day, the day
  before and the day after), plus far past and far future (R-TIME-1, R-TIME-2).
- The service is the real thing: the world is written with SQLAlchemy into a migrated database
  (``db_url``: SQLite, and PostgreSQL when PDP_TEST_POSTGRES_URL is set), numbered by
  ``record_change``; a fresh app is built over it per example and asked over HTTP in process:
  ``POST /v1/check/batch`` for every user (plus an unknown login) × service × role (none, each
  role and Afas profile of a small pool) × Caf (none, each Caf, an unknown code) × day, and
  ``GET /v1/users/<login>/permissions?at=`` for every user × day (R-DEC-4).
- The oracle is ``tests/support/reference_rdec1.py``: plain Python over plain dataclasses,
  written from the text of R-DEC-1 (no Casbin, no pdp import). Booleans must be equal; the
  service's reason code (R-DEC-3) must be one the rule text allows (a singleton where the text
  decides).
- One database per test function; each example empties the domain tables and writes its world
  in one transaction (so a failing example is replayed alone by hypothesis when shrinking).
- Not vacuous: the run must see both allows and denials, and a separate, derandomised test
  checks that the generator reaches every outcome of R-DEC-1 (``reference_rdec1.OUTCOMES``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from hypothesis import HealthCheck, event, given, note, settings, target
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from pdp.adapters.sql.database import make_engine, record_change
from pdp.adapters.sql.models import (
    AfasProfile,
    Base,
    Caf,
    Convention,
    Group,
    GroupRole,
    Membership,
    Organisation,
    Subscription,
    User,
)
from pdp.web.app import create_app
from pdp.web.container import services

from support import reference_rdec1 as ref

# -- the catalogue, read as data (R-CAT-1) ---------------------------------------------------

CATALOGUE_FILE = Path(__file__).resolve().parents[2] / "policies" / "catalogue.yaml"
_SERVICES = yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))["services"]
# service → every role and profile a check may ask for (the permissions listing's universe)
CATALOGUE: dict[str, tuple[str, ...]] = {
    name: tuple(spec["roles"]) + tuple(spec.get("user_profiles", ()))
    for name, spec in _SERVICES.items()
}
SERVICES = tuple(sorted(CATALOGUE))

# Small pools, so that what is granted and what is asked often meet; a service added to the
# catalogue later (R-CAT-1) is drawn with its first two roles.
_PREFERRED = {
    "cdap": ("T1", "T18"),
    "afas": ("declarer", "habiliter"),
    "dgfip": ("recouvrement", "enquete"),
    "adonis": ("acces",),
    "espace_bailleur": ("parc_prive",),
}
ROLE_POOL: dict[str, tuple[str, ...]] = {
    name: tuple(r for r in _PREFERRED.get(name, ()) if r in spec["roles"])
    or tuple(spec["roles"][:2])
    for name, spec in _SERVICES.items()
}
PROFILE_POOL = tuple(_SERVICES[ref.AFAS].get("user_profiles", ())[:2])
# What each role opens, read from the file (R-CAT-1); a few features of each service that has
# some: the first one (opened by most roles), and two drawn from the catalogue's order.
OPENS: dict[str, dict[str, set[str]]] = {
    name: {
        feature: {role for role, opened in spec.get("opens", {}).items() if feature in opened}
        for feature in spec.get("features", ())
    }
    for name, spec in _SERVICES.items()
}
FEATURE_POOL: dict[str, tuple[str, ...]] = {
    name: tuple(dict.fromkeys(spec["features"][i] for i in (0, 2, len(spec["features"]) // 2)))
    for name, spec in _SERVICES.items()
    if spec.get("features")
}
CAF_POOL = ("751", "931", "691")  # 691 is sometimes under no convention: CAF_NOT_SUBSCRIBED
UNKNOWN_LOGIN = "personne.inconnue"
OPERATOR = "op.caf"
UNKNOWN_CAF = "999"  # no Caf of the store

BASE = dt.date(2026, 3, 29)  # a Sunday when Paris changes its clocks: days are days (R-TIME-1)
FAR_PAST = BASE - dt.timedelta(days=4000)
FAR_FUTURE = BASE + dt.timedelta(days=4000)
LONG_AGO = BASE - dt.timedelta(days=3000)  # the opening of long-standing records

BATCH = 1000  # PDP_BATCH_MAX

# Hypothesis budget: 100 examples x ~1,000 questions (checks and listings) each take ~15 s on
# SQLite and ~20 s on PostgreSQL on a 2-core machine. A failing example shrinks in minutes.
# The property is the same on both drivers and SQLite explores it with the full budget; on
# PostgreSQL a quarter of it checks that the driver answers alike (PDP_PROPERTY_PG_EXAMPLES
# raises it, e.g. to EXAMPLES before a release).
EXAMPLES = 100
PG_EXAMPLES = int(os.environ.get("PDP_PROPERTY_PG_EXAMPLES", "25"))
REACH_EXAMPLES = 300


# -- the generator ---------------------------------------------------------------------------


@st.composite
def windows(draw: st.DrawFn) -> ref.Window:
    """An opening day near BASE (or long ago) and an optional closing day soon after; now and
    then an empty window (closing ≤ opening)."""
    if draw(st.integers(0, 4)) == 0:
        opens = LONG_AGO
    else:
        opens = BASE + dt.timedelta(days=draw(st.integers(-8, 8)))
    kind = draw(st.integers(0, 19))
    if kind < 8:
        return ref.Window(opens)
    if kind == 19:
        return ref.Window(opens, opens - dt.timedelta(days=draw(st.integers(0, 2))))
    if opens == LONG_AGO:
        return ref.Window(opens, BASE + dt.timedelta(days=draw(st.integers(-8, 8))))
    return ref.Window(opens, opens + dt.timedelta(days=draw(st.integers(1, 10))))


def _mostly_open() -> st.SearchStrategy[ref.Window]:
    """Windows for records whose closing is not the point of most questions: open for ever two
    times in three, otherwise any window."""
    return st.one_of(st.just(ref.Window(LONG_AGO)), st.just(ref.Window(LONG_AGO)), windows())


@st.composite
def worlds(draw: st.DrawFn) -> ref.World:
    """A random world of one or two organisations (see the module docstring)."""
    conventions: list[ref.Convention] = []
    subscriptions: list[ref.Subscription] = []
    users: list[ref.User] = []
    groups: list[ref.Group] = []
    memberships: list[ref.Membership] = []
    group_roles: list[ref.GroupRole] = []
    profiles: list[ref.AfasProfile] = []
    organisations = tuple(f"org{i}" for i in range(draw(st.integers(1, 2))))
    for org in organisations:
        # R-CON-1: conventions with Cafs, subscriptions under them.
        refs = []
        subscribed: set[str] = set()
        for c in range(draw(st.integers(1, 2))):
            reference = f"{org}-conv{c}"
            refs.append(reference)
            caf = draw(st.sampled_from(CAF_POOL[:2]))
            conventions.append(ref.Convention(reference, org, caf, draw(_mostly_open())))
            services = draw(
                st.lists(st.sampled_from(SERVICES), min_size=2, max_size=4, unique=True)
            )
            subscribed.update(services)
            for service in services:
                for _ in range(draw(st.integers(1, 2))):
                    subscriptions.append(ref.Subscription(reference, service, draw(_mostly_open())))
        # R-GRP-1: a tree; a parent is an earlier group (biased to the latest: deep trees).
        codes: list[str] = []
        for g in range(draw(st.integers(0, 5))):
            parent = None
            if codes and draw(st.integers(0, 3)) > 0:
                parent = codes[-1] if draw(st.booleans()) else draw(st.sampled_from(codes))
            code = f"{org}-G{g}"
            convention = draw(st.sampled_from(refs))
            groups.append(ref.Group(code, org, convention, parent, draw(_mostly_open())))
            codes.append(code)
            # Mostly roles of subscribed services (R-GRP-4), not always: R-DEC-1 must cope.
            likely = sorted(subscribed) if draw(st.integers(0, 4)) else list(SERVICES)
            for _ in range(draw(st.integers(1, 3))):
                service = draw(st.sampled_from(likely))
                role = draw(st.sampled_from(ROLE_POOL[service]))
                group_roles.append(ref.GroupRole(code, service, role, draw(_mostly_open())))
        logins = [f"{org}.u{u}" for u in range(draw(st.integers(1, 3)))]
        for login in logins:
            users.append(ref.User(login, org, draw(_mostly_open())))
            if codes:
                for code in draw(st.lists(st.sampled_from(codes), min_size=1, max_size=3)):
                    memberships.append(ref.Membership(login, code, draw(windows())))
            for profile in draw(st.lists(st.sampled_from(PROFILE_POOL), max_size=2)):
                profiles.append(ref.AfasProfile(login, profile, draw(windows())))
    if draw(st.integers(0, 3)) == 3:  # a Caf operator: no organisation (shrinks away)
        users.append(ref.User(OPERATOR, None, ref.Window(LONG_AGO)))
    return ref.World(
        organisations=organisations,
        cafs=CAF_POOL,
        conventions=tuple(conventions),
        subscriptions=tuple(subscriptions),
        users=tuple(users),
        groups=tuple(groups),
        memberships=tuple(memberships),
        group_roles=tuple(group_roles),
        afas_profiles=tuple(profiles),
    )


def boundaries(world: ref.World) -> list[dt.date]:
    """Every opening and closing day of the world's records, the day before and after."""
    found: set[dt.date] = {BASE}
    records: list[Any] = [
        *world.conventions,
        *world.subscriptions,
        *world.users,
        *world.groups,
        *world.memberships,
        *world.group_roles,
        *world.afas_profiles,
    ]
    for record in records:
        for day in (record.window.opens, record.window.closes):
            if day is not None and day != LONG_AGO:  # far past is asked on its own
                found.update(day + dt.timedelta(days=k) for k in (-1, 0, 1))
    return sorted(found)


@dataclass(frozen=True)
class Case:
    """One example: a world and the days to ask about."""

    world: ref.World
    days: tuple[dt.date, ...]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A world, six days on or next to its boundaries, a day near BASE, and now and then far
    past/future."""
    world = draw(worlds())
    days = set(draw(st.lists(st.sampled_from(boundaries(world)), min_size=6, max_size=6)))
    days.add(BASE + dt.timedelta(days=draw(st.integers(-10, 20))))
    if draw(st.booleans()):
        days.add(FAR_PAST)
    if draw(st.booleans()):
        days.add(FAR_FUTURE)
    return Case(world, tuple(sorted(days)))


# (login, service, role or None, Caf or None, day)
Question = tuple[str, str, str | None, str | None, dt.date]


def questions(case: Case) -> list[Question]:
    """Every user × service × role (none, each of the pool) × day, the role-less question also
    per Caf (R-CON-3); the operator and an unknown login, role-less only."""
    asked: list[Question] = []
    for day in case.days:
        for user in case.world.users:
            for service in SERVICES:
                if user.organisation is None:
                    asked.append((user.login, service, None, None, day))
                    continue
                roles = ROLE_POOL[service] + (PROFILE_POOL if service == ref.AFAS else ())
                for role in (None, *roles):
                    asked.append((user.login, service, role, None, day))
                for caf in (*CAF_POOL, UNKNOWN_CAF):
                    asked.append((user.login, service, None, caf, day))
        asked.extend((UNKNOWN_LOGIN, service, None, None, day) for service in SERVICES)
    return asked


# -- writing the world into the store --------------------------------------------------------

# Every table the domain writes, children first, but the revision row and the API keys
# (conftest's test key: decision calls need one); Alembic's table is not in the metadata.
KEPT_TABLES = {"policy_revision", "api_clients"}
WORLD_TABLES = [t for t in reversed(Base.metadata.sorted_tables) if t.name not in KEPT_TABLES]


def store_world(session: Session, world: ref.World) -> None:
    """Replace the store's content by ``world`` and number the write (``record_change``), in
    the caller's transaction."""
    for table in WORLD_TABLES:
        session.execute(delete(table))

    def dates(window: ref.Window) -> dict[str, Any]:
        return {"opens_on": window.opens, "closes_on": window.closes}

    cafs = {code: Caf(code=code, name=f"Caf {code}") for code in world.cafs}
    orgs = {
        code: Organisation(code=code, name=code, kind="other", opens_on=FAR_PAST)
        for code in world.organisations
    }
    session.add_all([*cafs.values(), *orgs.values()])
    session.flush()
    conventions = {
        c.reference: Convention(
            organisation_id=orgs[c.organisation].id,
            caf_id=cafs[c.caf].id,
            reference=c.reference,
            **dates(c.window),
        )
        for c in world.conventions
    }
    session.add_all(conventions.values())
    session.flush()
    session.add_all(
        Subscription(
            convention_id=conventions[s.convention].id, service=s.service, **dates(s.window)
        )
        for s in world.subscriptions
    )
    users = {
        u.login: User(
            login=u.login,
            organisation_id=orgs[u.organisation].id if u.organisation else None,
            is_operator=u.organisation is None,
            **dates(u.window),
        )
        for u in world.users
    }
    session.add_all(users.values())
    session.flush()
    groups: dict[str, Group] = {}
    for g in world.groups:  # parents come first
        groups[g.code] = Group(
            organisation_id=orgs[g.organisation].id,
            convention_id=conventions[g.convention].id,
            parent_id=groups[g.parent].id if g.parent else None,
            code=g.code,
            label=g.code,
            **dates(g.window),
        )
        session.add(groups[g.code])
        session.flush()
    session.add_all(
        Membership(user_id=users[m.login].id, group_id=groups[m.group].id, **dates(m.window))
        for m in world.memberships
    )
    session.add_all(
        GroupRole(group_id=groups[r.group].id, service=r.service, role=r.role, **dates(r.window))
        for r in world.group_roles
    )
    session.add_all(
        AfasProfile(user_id=users[p.login].id, profile=p.profile, **dates(p.window))
        for p in world.afas_profiles
    )
    session.flush()
    record_change(session, [None], "property test world")


def build_app(url: str) -> Flask:
    """A fresh app over ``url``: it loads the world just written. Its test clients carry the
    tests' API key (conftest's ``KeyedClient``)."""
    return create_app(
        {
            "database_url": url,
            "decision_log": "off",
            "refresh_interval": 0,
            "verify_orgs": 0,
            "rate_limit": "off",
        }
    )


def dispose(app: Flask) -> None:
    """Close the app's connections (one app per example)."""
    services(app).db.dispose()


# -- comparing the service with the reference ------------------------------------------------


def ask_batch(app: Flask, asked: list[Question]) -> list[dict[str, Any]]:
    """Every question through ``POST /v1/check/batch``, in batches of at most BATCH."""
    client = app.test_client()
    answers: list[dict[str, Any]] = []
    for start in range(0, len(asked), BATCH):
        checks = []
        for login, service, role, caf, day in asked[start : start + BATCH]:
            item: dict[str, Any] = {"user": login, "service": service, "at": day.isoformat()}
            if role is not None:
                item["role"] = role
            if caf is not None:
                item["caf"] = caf
            checks.append(item)
        response = client.post("/v1/check/batch", json={"checks": checks})
        assert response.status_code == 200, response.get_data(as_text=True)
        answers.extend(response.get_json()["results"])
    return answers


def compare_checks(app: Flask, case: Case, seen: Counter[str]) -> int:
    """R-DEC-1 and R-DEC-3: every answer equals the reference's; return how many were asked."""
    asked = questions(case)
    answers = ask_batch(app, asked)
    assert len(answers) == len(asked)
    for (login, service, role, caf, day), got in zip(asked, answers, strict=True):
        want = ref.decide(case.world, login, service, role, caf, day)
        where = f"check user={login} service={service} role={role} caf={caf} at={day}"
        assert "error" not in got, f"{where}: {got}"
        code = got["reason"]["code"]
        assert got["allowed"] is want.allowed, f"{where}: got {code}, R-DEC-1 says {want}"
        assert code in want.reasons, f"{where}: got {code}, the rule text allows {want.reasons}"
        assert got["at"] == day.isoformat(), where
        if want.allowed:  # R-DEC-3: an allow carries real paths that grant it
            granted = {(g["group"], g["service"], g["role"], g["source"]) for g in got["grants"]}
            real = ref.paths(case.world, login, service, role, day)
            assert granted, f"{where}: allowed without a path"
            assert granted <= real, f"{where}: paths {granted - real} do not grant; real: {real}"
        else:
            assert got["grants"] == [], f"{where}: a denial with grants {got['grants']}"
        seen[code] += 1
    return len(asked)


def compare_features(app: Flask, case: Case, seen: Counter[str]) -> int:
    """R-DEC-1 asked for a feature (R-CAT-1): allowed exactly when R-DEC-1 allows the service
    with one of the roles that open it (the catalogue's table, read from the file); the grants
    are paths of those roles; a denial says FEATURE_NOT_GRANTED when R-DEC-1 allows the service
    with some role, else a reason the rule text gives for the service itself."""
    asked: list[tuple[str, str, str, str | None, dt.date]] = [
        (user.login, service, feature, caf, day)
        for day in case.days
        for user in case.world.users
        for service, features in FEATURE_POOL.items()
        for feature in features
        for caf in (None, CAF_POOL[0])
    ]
    client = app.test_client()
    answers: list[dict[str, Any]] = []
    for start in range(0, len(asked), BATCH):
        checks = [
            {"user": login, "service": service, "feature": feature, "at": day.isoformat()}
            | ({"caf": caf} if caf is not None else {})
            for login, service, feature, caf, day in asked[start : start + BATCH]
        ]
        response = client.post("/v1/check/batch", json={"checks": checks})
        assert response.status_code == 200, response.get_data(as_text=True)
        answers.extend(response.get_json()["results"])
    for (login, service, feature, caf, day), got in zip(asked, answers, strict=True):
        where = f"check user={login} service={service} feature={feature} caf={caf} at={day}"
        opening = OPENS[service][feature]
        allowed = any(ref.allowed(case.world, login, service, r, caf, day) for r in opening)
        code = got["reason"]["code"]
        assert got["allowed"] is allowed, f"{where}: got {code}"
        if allowed:
            granted = {(g["group"], g["service"], g["role"], g["source"]) for g in got["grants"]}
            real = set().union(*(ref.paths(case.world, login, service, r, day) for r in opening))
            assert granted and granted <= real, f"{where}: paths {granted}, real {real}"
        elif ref.allowed(case.world, login, service, None, caf, day):
            assert code == "FEATURE_NOT_GRANTED", f"{where}: got {code}"
        else:
            want = ref.decide(case.world, login, service, None, caf, day)
            assert code in want.reasons, f"{where}: got {code}, the rule text allows {want}"
        seen[f"feature {code}"] += 1
    return len(asked)


def compare_permissions(app: Flask, case: Case) -> int:
    """R-DEC-4: the welcome page lists exactly the services, roles and Cafs R-DEC-1 allows."""
    client = app.test_client()
    asked = 0
    for day in case.days:
        response = client.get(f"/v1/users/{UNKNOWN_LOGIN}/permissions?at={day.isoformat()}")
        assert response.status_code == 404, response.get_data(as_text=True)
        for user in case.world.users:
            response = client.get(f"/v1/users/{user.login}/permissions?at={day.isoformat()}")
            assert response.status_code == 200, response.get_data(as_text=True)
            got = {
                s["service"]: (set(s["roles"]), set(s["cafs"]))
                for s in response.get_json()["services"]
            }
            want = ref.permissions(case.world, user.login, day, CATALOGUE)
            assert got == want, f"permissions of {user.login} at {day}: got {got}, want {want}"
            asked += 2
    return asked


def describe(world: ref.World) -> str:
    """The world, one record a line (for hypothesis' report of a failing example)."""
    lines: list[str] = []
    for name in (
        "conventions",
        "subscriptions",
        "users",
        "groups",
        "memberships",
        "group_roles",
        "afas_profiles",
    ):
        lines.extend(f"{name}: {record}" for record in getattr(world, name))
    return "\n".join(lines)


# -- the tests -------------------------------------------------------------------------------


@pytest.fixture
def store(db_url: str, clean_env: None) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """The test's database URL and a session factory on it: one database for every example
    of the test (each example replaces the world)."""
    engine = make_engine(db_url)
    yield db_url, sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def tally() -> Iterator[Counter[str]]:
    """Counts the service's answers over every example of a test, then checks the run was not
    vacuous: both allows and denials were compared (R-DEC-1, R-DEC-2)."""
    seen: Counter[str] = Counter()
    yield seen
    examples, asked = seen.pop("examples", 0), seen.pop("questions", 0)
    print(f"\n{examples} examples, {asked} questions, answers: {dict(seen.most_common())}")
    if examples:  # not when hypothesis was told to skip generation
        assert seen[ref.ALLOWED] > 0, f"no allow in the whole run: {seen}"
        assert sum(seen.values()) > seen[ref.ALLOWED], f"no denial in the whole run: {seen}"


# One database for all the examples of a test, on purpose (one per example would be slow):
# the function-scoped fixtures are set up once, and each example empties and rewrites it.
def test_service_decides_like_rdec1(
    backend: str, store: tuple[str, sessionmaker[Session]], tally: Counter[str]
) -> None:
    """R-DEC-1, R-DEC-3, R-DEC-4, R-CON-2, R-CON-3, R-GRP-2, R-AFAS-1, R-TIME-1: on random
    worlds and days, checks and permissions listings equal the reference evaluator's
    (EXAMPLES worlds on SQLite, PG_EXAMPLES on PostgreSQL)."""
    url, sessions = store

    @settings(
        max_examples=EXAMPLES if backend == "sqlite" else PG_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=cases())
    def decides_like_rdec1(case: Case) -> None:
        note(describe(case.world))
        note(f"days: {[d.isoformat() for d in case.days]}")
        with sessions.begin() as session:
            store_world(session, case.world)
        app = build_app(url)
        try:
            seen: Counter[str] = Counter()
            asked = (
                compare_checks(app, case, seen)
                + compare_features(app, case, seen)
                + compare_permissions(app, case)
            )
        finally:
            dispose(app)
        for code in seen:
            event(f"answer {code}")
        target(float(len(seen)), label="distinct answers in the example")
        tally.update(seen)
        tally.update(examples=1, questions=asked)

    decides_like_rdec1()


def test_generator_reaches_every_outcome() -> None:
    """The generator can hit every outcome of R-DEC-1 (allowed, and each denial code of
    R-DEC-3 the rules define), so the differential test cannot pass by never meeting one."""
    reached: set[str] = set()

    @settings(max_examples=REACH_EXAMPLES, deadline=None, derandomize=True, database=None)
    @given(case=cases())
    def run(case: Case) -> None:
        for login, service, role, caf, day in questions(case):
            verdict = ref.decide(case.world, login, service, role, caf, day)
            if len(verdict.reasons) == 1:
                reached.update(verdict.reasons)

    run()
    assert set(ref.OUTCOMES) <= reached, f"never reached: {set(ref.OUTCOMES) - reached}"


# -- the reference itself, on a hand-made world ----------------------------------------------

D = BASE


def day(n: int) -> dt.date:
    """BASE + n days."""
    return D + dt.timedelta(days=n)


HAND_MADE = ref.World(
    organisations=("mairie",),
    cafs=("751", "931", "691"),
    conventions=(
        ref.Convention("conv-751", "mairie", "751", ref.Window(day(-100))),
        ref.Convention("conv-931", "mairie", "931", ref.Window(day(-100), day(5))),
    ),
    subscriptions=(
        ref.Subscription("conv-751", "cdap", ref.Window(day(-50))),
        ref.Subscription("conv-931", "cdap", ref.Window(day(-50))),
        ref.Subscription("conv-751", "afas", ref.Window(day(-50))),
        ref.Subscription("conv-751", "adonis", ref.Window(day(-50), day(0))),
    ),
    users=(
        ref.User("bruno", "mairie", ref.Window(day(-100))),
        ref.User("chloe", "mairie", ref.Window(day(-100))),
        ref.User("david", "mairie", ref.Window(day(-100), day(10))),
        ref.User("fabien", "mairie", ref.Window(day(15))),
        ref.User("lea", "mairie", ref.Window(day(-100))),
        ref.User("op", None, ref.Window(day(-100))),
    ),
    groups=(
        ref.Group("CCAS", "mairie", "conv-751", None, ref.Window(day(-100), day(20))),
        ref.Group("INSTR", "mairie", "conv-751", "CCAS", ref.Window(day(-100))),
        ref.Group("ARCH", "mairie", "conv-751", "INSTR", ref.Window(day(-100), day(3))),
        ref.Group("ADONIS", "mairie", "conv-751", None, ref.Window(day(-100))),
    ),
    memberships=(
        ref.Membership("bruno", "INSTR", ref.Window(day(-10))),
        ref.Membership("chloe", "ARCH", ref.Window(day(-10))),
        ref.Membership("david", "INSTR", ref.Window(day(-10))),
        ref.Membership("fabien", "INSTR", ref.Window(day(15))),
        ref.Membership("bruno", "ADONIS", ref.Window(day(-10))),
    ),
    group_roles=(
        ref.GroupRole("CCAS", "cdap", "T1", ref.Window(day(-100))),
        ref.GroupRole("INSTR", "cdap", "T1", ref.Window(day(-100))),
        ref.GroupRole("INSTR", "cdap", "T18", ref.Window(day(-100), day(7))),
        ref.GroupRole("ARCH", "cdap", "T1", ref.Window(day(-100))),
        ref.GroupRole("ADONIS", "adonis", "acces", ref.Window(day(-100))),
    ),
    afas_profiles=(ref.AfasProfile("lea", "declaration", ref.Window(day(-10), day(2))),),
)

HAND_MADE_TABLE = [
    # (user, service, role, caf, day, reason) — allowed iff reason is ALLOWED
    ("bruno", "cdap", "T18", None, 0, ref.ALLOWED),
    ("bruno", "cdap", None, "751", 0, ref.ALLOWED),
    ("bruno", "cdap", None, "931", 4, ref.ALLOWED),  # R-CON-3: both conventions open
    ("bruno", "cdap", None, "931", 5, ref.CAF_NOT_SUBSCRIBED),  # conv-931 closes on day 5
    ("bruno", "cdap", None, "691", 0, ref.CAF_NOT_SUBSCRIBED),
    ("bruno", "cdap", "T18", None, 7, ref.ROLE_NOT_GRANTED),  # the role closes on day 7
    ("bruno", "cdap", "T1", None, 20, ref.GROUP_CLOSED),  # the parent CCAS closes (R-GRP-2)
    ("bruno", "cdap", "T1", None, -11, ref.NO_MEMBERSHIP),  # in no group yet
    ("bruno", "cdap", "T5", None, 0, ref.ROLE_NOT_GRANTED),
    ("bruno", "adonis", None, None, -1, ref.ALLOWED),
    ("bruno", "adonis", None, None, 0, ref.NO_SUBSCRIPTION),  # R-CON-2
    ("bruno", "dgfip", None, None, 0, ref.NO_SUBSCRIPTION),
    ("chloe", "cdap", "T1", None, 2, ref.ALLOWED),  # three levels, all open
    ("chloe", "cdap", "T1", None, 3, ref.GROUP_CLOSED),  # ARCH closes on day 3 (see below)
    ("david", "cdap", None, None, 9, ref.ALLOWED),
    ("david", "cdap", None, None, 10, ref.USER_CLOSED),  # R-USR-4
    ("fabien", "cdap", None, None, 14, ref.USER_NOT_YET_OPEN),
    ("fabien", "cdap", None, None, 15, ref.ALLOWED),
    ("lea", "afas", None, None, 0, ref.ALLOWED),  # R-AFAS-1: a profile, no group
    ("lea", "afas", "declaration", None, 1, ref.ALLOWED),
    ("lea", "afas", None, None, 2, ref.NO_MEMBERSHIP),  # the profile closed on day 2
    ("lea", "cdap", None, None, 0, ref.NO_MEMBERSHIP),
    ("op", "cdap", None, None, 0, ref.NO_ORGANISATION),
    ("nobody", "cdap", None, None, 0, ref.UNKNOWN_USER),
]


@pytest.mark.parametrize(("login", "service", "role", "caf", "n", "reason"), HAND_MADE_TABLE)
def test_reference_on_a_hand_made_world(
    login: str, service: str, role: str | None, caf: str | None, n: int, reason: str
) -> None:
    """The reference evaluator answers the hand-made world as R-DEC-1 reads."""
    verdict = ref.decide(HAND_MADE, login, service, role, caf, day(n))
    assert verdict.allowed is (reason == ref.ALLOWED)
    assert reason in verdict.reasons, verdict
    if (login, n) != ("chloe", 3):  # the one row where the text allows two codes
        assert verdict.reasons == {reason}, verdict


def test_reference_accepts_both_codes_only_where_the_text_is_silent() -> None:
    """An open membership whose group holds the role but is closed, and no open group at all:
    GROUP_CLOSED and NO_MEMBERSHIP are both true statements (R-DEC-3)."""
    verdict = ref.decide(HAND_MADE, "chloe", "cdap", "T1", None, day(3))
    assert verdict == ref.Verdict(False, frozenset({ref.GROUP_CLOSED, ref.NO_MEMBERSHIP}))
    # The same user asking for a role nobody holds: only NO_MEMBERSHIP.
    verdict = ref.decide(HAND_MADE, "chloe", "cdap", "T18", None, day(3))
    assert verdict == ref.Verdict(False, frozenset({ref.NO_MEMBERSHIP}))


def test_reference_permissions_on_a_hand_made_world() -> None:
    """R-DEC-4 from R-DEC-1: bruno's welcome page on day 0, roles and Cafs (R-CON-3)."""
    found = ref.permissions(HAND_MADE, "bruno", day(0), CATALOGUE)
    assert found == {"cdap": ({"T1", "T18"}, {"751", "931"})}
    assert ref.permissions(HAND_MADE, "bruno", day(-1), CATALOGUE) == {
        "cdap": ({"T1", "T18"}, {"751", "931"}),
        "adonis": ({"acces"}, {"751"}),
    }
