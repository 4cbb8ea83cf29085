"""Who may use what, as a document (R-ADM-8, ``pdp.services.access``), on SQLite and PostgreSQL.

A table of users, groups, roles, subscriptions and dates is written to a real database and the
engine loaded from it (clock fixed on ``TODAY``); the document of each day must hold exactly the
wanted rows (closed users and groups, memberships and roles that open later, expired and future
subscriptions, per-Caf rows from the subscriptions' Cafs, Afas profiles), and must say exactly
what checks answer: for every user, service, role (or none) and Caf (or none), on every day of
the table, ``check`` allows if and only if a row says so, with the very grant paths of those
rows. The same cross-check runs on a generated store (``bench/generate.py``). The rows are
produced lazily, a user at a time, and serialised in bounded chunks.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.orm import Session, sessionmaker

from bench.generate import generate
from pdp.adapters.sql.database import make_engine, record_change
from pdp.adapters.sql.models import (
    AfasProfile,
    Caf,
    Convention,
    Group,
    GroupRole,
    Membership,
    Organisation,
    Subscription,
    User,
)
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.core.errors import BadRequest, NotFound
from pdp.engine.decision import Query
from pdp.engine.policy import PolicyEngine
from pdp.services import access
from pdp.services.access import COLUMNS, AccessRow, document

TODAY = dt.date(2026, 3, 16)
CATALOGUE = load_catalogue()
DAYS = (-400, -10, -2, -1, 0, 3, 5, 7, 10, 400)


def day(offset: int | None) -> dt.date | None:
    return None if offset is None else TODAY + dt.timedelta(days=offset)


# -- The table ---------------------------------------------------------------------------------
# Days relative to TODAY; an absent opening is long ago, an absent closing never. Logins and
# codes name the rule they exercise.

ORGANISATIONS: dict[str, dict[str, dict[str, tuple[int | None, int | None]]]] = {
    # organisation -> Caf -> service -> (subscription opens, closes)
    "org-a": {
        "751": {"cdap": (None, None), "afas": (None, None)},
        "931": {"cdap": (None, None), "dgfip": (None, -1), "adonis": (10, None)},
    },
    "org-b": {"691": {"dgfip": (None, None)}},
    "org-empty": {"131": {"cdap": (None, None)}},
}
# (organisation, code, parent, Caf of its convention, opens, closes,
#  [(service, role[, opens, closes])])
GROUPS: list[tuple[str, str, str | None, str, int | None, int | None, list[Any]]] = [
    (
        "org-a",
        "TOP",
        None,
        "751",
        None,
        None,
        [("cdap", "T1"), ("cdap", "T18"), ("afas", "declarer")],
    ),
    ("org-a", "SUB", "TOP", "751", None, None, [("cdap", "T18")]),
    ("org-a", "R-GRP-2-CLOSED", None, "751", None, -1, [("cdap", "T2")]),
    ("org-a", "R-GRP-2-CHILD", "R-GRP-2-CLOSED", "751", None, None, [("cdap", "T2")]),
    ("org-a", "OPENS-LATER", None, "751", 5, None, [("cdap", "T3")]),
    ("org-a", "ROLE-LATER", None, "751", None, None, [("cdap", "T4", 3, None)]),
    ("org-a", "R-CON-2-DGFIP", None, "931", None, None, [("dgfip", "enquete")]),
    ("org-a", "ADONIS", None, "931", None, None, [("adonis", "acces")]),
    ("org-b", "RECOUVREMENT", None, "691", None, None, [("dgfip", "recouvrement")]),
]
# login -> (organisation, opens, closes)
USERS: dict[str, tuple[str | None, int | None, int | None]] = {
    "ana": ("org-a", None, None),
    "ben": ("org-a", None, None),
    "closed.R-USR-4": ("org-a", None, 0),
    "future.R-MEM-1": ("org-a", None, None),
    "cara": ("org-a", None, None),
    "dan.R-AFAS-1": ("org-a", None, None),
    "eve.R-CON-2": ("org-a", None, None),
    "fay": ("org-a", None, None),
    "gus.R-USR-2": ("org-a", None, None),
    "opens-later.R-TIME-1": ("org-a", 2, None),
    "hugo": ("org-b", None, None),
    "op.caf": (None, None, None),
}
# (login, group, opens, closes)
MEMBERSHIPS: list[tuple[str, str, int | None, int | None]] = [
    ("ana", "TOP", None, None),
    ("ben", "SUB", None, None),
    ("ben", "SUB", -30, None),  # held twice: one row per right, not per membership
    ("closed.R-USR-4", "TOP", None, None),
    ("future.R-MEM-1", "TOP", 7, None),
    ("cara", "R-GRP-2-CLOSED", None, None),
    ("cara", "R-GRP-2-CHILD", None, None),
    ("cara", "OPENS-LATER", None, None),
    ("cara", "ROLE-LATER", None, None),
    ("eve.R-CON-2", "R-CON-2-DGFIP", None, None),
    ("fay", "ADONIS", None, None),
    ("fay", "TOP", -5, -1),  # detached yesterday (R-MEM-2)
    ("opens-later.R-TIME-1", "SUB", 2, None),
    ("hugo", "RECOUVREMENT", None, None),
]
# (login, profile, opens, closes)
PROFILES: list[tuple[str, str, int | None, int | None]] = [
    ("dan.R-AFAS-1", "consultation", None, None),
    ("dan.R-AFAS-1", "declaration", None, -2),
    ("dan.R-AFAS-1", "suivi_dossiers", 3, None),
]


def write_table(session: Session) -> None:
    """Write the table above, in one change of every domain."""
    long_ago = TODAY - dt.timedelta(days=800)

    def dates(opens: int | None, closes: int | None) -> dict[str, dt.date | None]:
        return {"opens_on": day(opens) or long_ago, "closes_on": day(closes)}

    orgs: dict[str, Organisation] = {}
    conventions: dict[tuple[str, str], Convention] = {}
    cafs: dict[str, Caf] = {}
    for code, by_caf in ORGANISATIONS.items():
        org = orgs[code] = Organisation(code=code, name=code, kind="other", **dates(None, None))
        session.add(org)
        session.flush()
        for caf_code, services in by_caf.items():
            if caf_code not in cafs:
                cafs[caf_code] = Caf(code=caf_code, name=f"Caf {caf_code}")
                session.add(cafs[caf_code])
                session.flush()
            conv = Convention(
                organisation_id=org.id,
                caf_id=cafs[caf_code].id,
                reference=f"CONV-{code}-{caf_code}",
                **dates(None, None),
            )
            session.add(conv)
            session.flush()
            conventions[(code, caf_code)] = conv
            for service, (opens, closes) in services.items():
                session.add(
                    Subscription(convention_id=conv.id, service=service, **dates(opens, closes))
                )
    users: dict[str, User] = {}
    for login, (org_code, opens, closes) in USERS.items():
        users[login] = User(
            login=login,
            organisation_id=orgs[org_code].id if org_code else None,
            first_name=login,
            last_name="Test",
            email=f"{login}@example.fr",
            is_operator=org_code is None,
            **dates(opens, closes),
        )
        session.add(users[login])
    session.flush()
    groups: dict[str, Group] = {}
    for org_code, code, parent, caf_code, opens, closes, roles in GROUPS:
        group = groups[code] = Group(
            organisation_id=orgs[org_code].id,
            convention_id=conventions[(org_code, caf_code)].id,
            parent_id=groups[parent].id if parent else None,
            code=code,
            label=code,
            **dates(opens, closes),
        )
        session.add(group)
        session.flush()
        for service, role, *window in roles:
            role_opens, role_closes = window or (None, None)
            session.add(
                GroupRole(
                    group_id=group.id, service=service, role=role, **dates(role_opens, role_closes)
                )
            )
    for login, code, opens, closes in MEMBERSHIPS:
        session.add(
            Membership(user_id=users[login].id, group_id=groups[code].id, **dates(opens, closes))
        )
    for login, profile, opens, closes in PROFILES:
        session.add(AfasProfile(user_id=users[login].id, profile=profile, **dates(opens, closes)))
    session.flush()
    record_change(session, [None], "access document table")


_ENGINES: dict[str, PolicyEngine] = {}


@pytest.fixture
def engine(
    make_database: Callable[[str, Path], str],
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> PolicyEngine:
    """The engine loaded from the table written to a fresh database of ``backend`` (once per
    backend: the tests only read)."""
    if backend not in _ENGINES:
        db = make_engine(make_database(backend, tmp_path_factory.mktemp("access")))
        try:
            with sessionmaker(db).begin() as session:
                write_table(session)
            # Never refreshed (the shared PostgreSQL database is emptied for the next tests),
            # never stale: the table's index is what every test here reads.
            engine = PolicyEngine(
                SqlSnapshotSource(db),
                CATALOGUE,
                clock=lambda: TODAY,
                refresh_interval=1e9,
                max_staleness=1e9,
            )
            engine.load()
        finally:
            db.dispose()
        _ENGINES[backend] = engine
    return _ENGINES[backend]


def rows(engine: PolicyEngine, organisation: str | None, offset: int | None) -> list[AccessRow]:
    return list(document(engine, organisation, day(offset)).rows())


def short(found: list[AccessRow]) -> list[tuple[str, str, str, str, str, str | None]]:
    """(login, service, role, caf, source, group): what the tables below spell out."""
    return [(r.login, r.service, r.role, r.caf, r.source, r.group) for r in found]


# -- The rows of each day ----------------------------------------------------------------------


def test_today_rows_are_exactly_the_rights_of_the_day(engine: PolicyEngine) -> None:
    found = rows(engine, "org-a", None)
    assert {r.organisation for r in found} == {"org-a"}
    assert {r.at for r in found} == {TODAY.isoformat()}
    assert short(found) == [
        # R-DEC-1: through TOP, for each Caf under which the service is subscribed (R-CON-3)
        ("ana", "afas", "declarer", "751", "group", "TOP"),
        ("ana", "cdap", "T1", "751", "group", "TOP"),
        ("ana", "cdap", "T1", "931", "group", "TOP"),
        ("ana", "cdap", "T18", "751", "group", "TOP"),
        ("ana", "cdap", "T18", "931", "group", "TOP"),
        # two memberships of SUB: one row per right
        ("ben", "cdap", "T18", "751", "group", "SUB"),
        ("ben", "cdap", "T18", "931", "group", "SUB"),
        # cara: R-GRP-2-CLOSED and its child grant nothing (R-GRP-2), OPENS-LATER and the role
        # of ROLE-LATER not yet; closed.R-USR-4 is closed today (R-USR-4): no row.
        # dan: the open Afas profile only (R-AFAS-1), not the closed or future ones
        ("dan.R-AFAS-1", "afas", "consultation", "751", "afas_profile", None),
        # eve: dgfip expired (R-CON-2); fay: adonis not yet subscribed, TOP detached yesterday;
        # future.R-MEM-1, opens-later.R-TIME-1: later; gus: no membership (R-USR-2).
    ]


def both(service: str, role: str) -> list[tuple[str, str, str]]:
    """A right of org-a's cdap, for each of its two Cafs (R-CON-3)."""
    return [(service, role, "751"), (service, role, "931")]


TOP_RIGHTS = [("afas", "declarer", "751"), *both("cdap", "T1"), *both("cdap", "T18")]


@pytest.mark.parametrize(
    ("offset", "login", "wanted"),
    [
        pytest.param(-1, "closed.R-USR-4", TOP_RIGHTS, id="R-USR-4-open-until-today"),
        pytest.param(0, "closed.R-USR-4", [], id="R-USR-4-closed-today"),
        pytest.param(6, "future.R-MEM-1", [], id="R-MEM-1-not-yet"),
        pytest.param(7, "future.R-MEM-1", TOP_RIGHTS, id="R-MEM-1-from-its-first-day"),
        pytest.param(-1, "cara", [], id="R-GRP-2-closed-group-and-child-nothing"),
        pytest.param(3, "cara", both("cdap", "T4"), id="R-TIME-1-role-opens"),
        pytest.param(
            5, "cara", [*both("cdap", "T3"), *both("cdap", "T4")], id="R-TIME-1-group-opens"
        ),
        pytest.param(
            -10, "eve.R-CON-2", [("dgfip", "enquete", "931")], id="R-CON-2-subscription-open"
        ),
        pytest.param(-1, "eve.R-CON-2", [], id="R-CON-2-subscription-closed"),
        pytest.param(9, "fay", [], id="R-CON-2-subscription-not-yet"),
        pytest.param(10, "fay", [("adonis", "acces", "931")], id="R-CON-2-subscription-opens"),
        pytest.param(-2, "fay", TOP_RIGHTS, id="R-MEM-2-until-detached"),
        pytest.param(
            -3,
            "dan.R-AFAS-1",
            [("afas", "consultation", "751"), ("afas", "declaration", "751")],
            id="R-AFAS-1-profiles-of-the-day",
        ),
        pytest.param(
            3,
            "dan.R-AFAS-1",
            [("afas", "consultation", "751"), ("afas", "suivi_dossiers", "751")],
            id="R-AFAS-1-profile-opens",
        ),
        pytest.param(1, "opens-later.R-TIME-1", [], id="R-TIME-1-user-not-yet-open"),
        pytest.param(2, "opens-later.R-TIME-1", both("cdap", "T18"), id="R-TIME-1-user-opens"),
    ],
)
def test_rows_of_a_user_on_a_day(
    engine: PolicyEngine, offset: int, login: str, wanted: list[tuple[str, str, str]]
) -> None:
    found = [(r.service, r.role, r.caf) for r in rows(engine, "org-a", offset) if r.login == login]
    assert sorted(found) == sorted(wanted)


def test_the_nation_is_every_organisation_by_code_then_login(engine: PolicyEngine) -> None:
    found = rows(engine, None, None)
    assert found == rows(engine, "org-a", None) + rows(engine, "org-b", None)
    assert short(rows(engine, "org-b", None)) == [
        ("hugo", "dgfip", "recouvrement", "691", "group", "RECOUVREMENT")
    ]
    assert rows(engine, "org-empty", None) == []
    keys = [(r.organisation, r.login) for r in found]
    assert keys == sorted(keys)
    assert "op.caf" not in {r.login for r in found}  # an operator has no business role


def test_an_unknown_organisation_is_not_found(engine: PolicyEngine) -> None:
    with pytest.raises(NotFound) as raised:
        document(engine, "nope", None)
    assert raised.value.code == "UNKNOWN_ORGANISATION"


# -- The document says what checks answer ------------------------------------------------------


def cross_check(engine: PolicyEngine, found: list[AccessRow], at: dt.date) -> int:
    """For every user of the rows' organisations, every service, role (or none) and Caf (or
    none) of the store: ``check`` allows iff a row says so, with exactly those rows' grant paths
    (R-DEC-3). Returns the number of checks compared."""
    by_user: dict[str, list[AccessRow]] = {}
    for row in found:
        by_user.setdefault(row.login, []).append(row)
    index = engine.index
    cafs = sorted(
        {c for org in index.orgs.values() for s in org.subscriptions.values() for c, *_ in s}
    )
    logins = [login for org in index.sorted_orgs() for login in org.logins]
    checked = 0
    for login in logins:
        mine = by_user.get(login, [])
        for service, spec in CATALOGUE.services.items():
            for role in [None, *spec.roles, *spec.user_profiles]:
                for caf in [None, *cafs]:
                    wanted = {
                        (r.group, r.source)
                        for r in mine
                        if r.service == service and role in (None, r.role) and caf in (None, r.caf)
                    }
                    decision = engine.check(Query(login, service, role, caf, at))
                    assert decision.allowed is bool(wanted), (login, service, role, caf, at)
                    assert {(g.group, g.source) for g in decision.grants} == wanted
                    checked += 1
    return checked


@pytest.mark.parametrize("offset", DAYS)
def test_every_row_and_every_denial_is_what_check_answers(
    engine: PolicyEngine, offset: int
) -> None:
    at = day(offset)
    assert at is not None
    found = rows(engine, None, offset)
    assert cross_check(engine, found, at) > 2_000
    for row in found:  # each row, as its own check: allowed, and through that very grant
        decision = engine.check(Query(row.login, row.service, row.role, row.caf, at))
        assert decision.allowed
        assert (row.group, row.source) in {(g.group, g.source) for g in decision.grants}


def test_a_generated_store_agrees_with_check_too(
    make_database: Callable[[str, Path], str], backend: str, tmp_path: Path
) -> None:
    db = make_engine(make_database(backend, tmp_path))
    try:
        generate(db, 0.0005, seed=7, today=TODAY, catalogue=CATALOGUE)
        engine = PolicyEngine(SqlSnapshotSource(db), CATALOGUE, clock=lambda: TODAY)
        engine.load()
    finally:
        db.dispose()
    for offset in (-30, 0, 30):
        at = day(offset)
        assert at is not None
        found = rows(engine, None, offset)
        assert len(found) > 20
        assert len(set(found)) == len(found)
        cross_check(engine, found, at)


# -- Formats, and constant memory ----------------------------------------------------------------


def test_csv_has_a_header_and_the_rows_in_the_column_order(engine: PolicyEngine) -> None:
    doc = document(engine, "org-a", None)
    text = b"".join(doc.chunks("csv")).decode()
    assert text.startswith("organisation,login,service,role,caf,source,group,at\r\n")
    parsed = list(csv.reader(io.StringIO(text)))
    assert tuple(parsed[0]) == COLUMNS
    assert parsed[1:] == [[v if v is not None else "" for v in r] for r in doc.rows()]
    assert "org-a,dan.R-AFAS-1,afas,consultation,751,afas_profile,,2026-03-16" in text


def test_json_lines_hold_one_object_a_row_keys_in_the_column_order(engine: PolicyEngine) -> None:
    doc = document(engine, "org-a", None)
    for fmt in ("json", "jsonl"):
        lines = b"".join(doc.chunks(fmt)).splitlines()
        objects = [orjson.loads(line) for line in lines]
        assert [tuple(o) for o in objects] == [COLUMNS] * len(objects)
        assert [AccessRow(**o) for o in objects] == list(doc.rows())
    assert {"group": None, "source": "afas_profile"}.items() <= orjson.loads(
        next(line for line in lines if b"afas_profile" in line)
    ).items()


def test_an_unknown_format_is_refused_before_any_row(engine: PolicyEngine) -> None:
    with pytest.raises(BadRequest) as raised:
        document(engine, "org-a", None).chunks("xml")
    assert raised.value.code == "UNKNOWN_FORMAT"


class _Written:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, chunk: bytes) -> int:
        self.chunks.append(chunk)
        return len(chunk)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_rows_are_made_a_user_at_a_time_and_sent_in_bounded_chunks(
    engine: PolicyEngine, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    real = access.user_rows

    def counted(*args: Any) -> list[AccessRow]:
        asked.append(args[2])
        return real(*args)

    monkeypatch.setattr(access, "user_rows", counted)
    monkeypatch.setattr(access, "CHUNK_BYTES", 200)
    doc = document(engine, None, None)
    chunks: Iterator[bytes] = doc.chunks(fmt)
    assert asked == []  # nothing computed before the first chunk is asked for
    first = next(chunks)
    assert 0 < len(asked) < len(engine.index.users) - 1
    longest_line = 200
    assert len(first) < 200 + longest_line
    rest = list(chunks)
    assert all(len(c) < 200 + longest_line for c in rest)
    assert asked == [login for org in engine.index.sorted_orgs() for login in org.logins]
    written = _Written()
    count = doc.write(written, fmt)
    assert b"".join(written.chunks) == first + b"".join(rest)
    assert count == len(list(doc.rows())) == 9


def test_a_document_keeps_the_revision_it_was_opened_at(engine: PolicyEngine) -> None:
    doc = document(engine, "org-a", None)
    assert doc.revision == engine.revision == 1
    assert doc.day == TODAY
