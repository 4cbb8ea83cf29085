"""Policy behaviour as data: decision tables in ``tests/cases/*.yaml``, one parametrised test.

Each file holds a ``state`` (the domain store, days relative to ``TODAY``) and ``cases``, each
citing the rules (R-…) it proves. The state is written to a real database (SQLite, and
PostgreSQL when asked) with ``record_change``, once per file and driver since cases only read;
an ``Engine`` is loaded from it through ``SqlSnapshotSource`` with a clock fixed on ``TODAY``.
Each case's check must give the wanted ``allowed`` and ``reason`` and, when allowed, exactly the
wanted grant paths (R-DEC-3). Plain Casbin over the same store (the reference the fast path must
agree with) must give the same ``allowed``.

File format (every key is checked, so that a typo cannot make a case vacuous)::

    state:
      organisations:
        <code>: {opens, closes, conventions: {<caf>: {opens, closes,
                                                      subscriptions: {<service>: {opens, closes}}}}}
      users:         {<login>: {org, opens, closes, operator, admin}}
      groups:        {<org>: {<code>: {parent, convention, opens, closes,
                                       roles: {<service>: [<role> | {role, opens, closes}]}}}}
      memberships:   [{user, group, opens, closes}]  # group: "CODE" (own org) or "org/CODE"
      afas_profiles: [{user, profile, opens, closes}]
    cases:
      - {id, rule: [R-…], query: {user, service, role?, caf?, at?}, allowed, reason,
         grants?: ["<group>: <service> <role>" | "profile: afas <profile>"], xfail?: "<why>"}

Days are integers relative to ``TODAY`` (``-30``, ``0``, ``+10``); ``opens`` defaults to long
ago, ``closes`` to null (never).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from pdp.adapters.sql.database import make_engine, record_change
from pdp.adapters.sql.models import (
    AfasProfile,
    Caf,
    Convention,
    Group,
    GroupRole,
    Membership,
    Organisation,
    PartnerAdmin,
    Subscription,
    User,
)
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import Catalogue, load_catalogue
from pdp.engine.casbin_model import ReferenceEnforcer
from pdp.engine.decision import Grant, Query, Reason
from pdp.engine.policy import PolicyEngine as PdpEngine
from pdp.engine.snapshot import Snapshot

TODAY = dt.date(2026, 3, 16)
LONG_AGO = -800
CASES_DIR = Path(__file__).resolve().parents[1] / "cases"
CATALOGUE = load_catalogue()
RULE_ID = re.compile(r"^R-[A-Z]+-\d+$")


# -- Reading the tables -----------------------------------------------------------------------


def _keys(
    spec: Any, where: str, allowed: Collection[str], required: Collection[str] = ()
) -> dict[str, Any]:
    """Return ``spec`` as a mapping with keys in ``allowed`` and ``required``; else ValueError."""
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: a mapping is expected, got {spec!r}")
    unknown = set(spec) - set(allowed)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    missing = set(required) - set(spec)
    if missing:
        raise ValueError(f"{where}: missing keys {sorted(missing)}")
    return spec


def _day(value: Any, where: str, default: int | None) -> dt.date | None:
    """TODAY + ``value`` days; ``default`` when the key is absent (None: never)."""
    if value is None:
        value = default
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: a relative day (integer) is expected, got {value!r}")
    return TODAY + dt.timedelta(days=value)


def _dates(spec: dict[str, Any], where: str) -> dict[str, dt.date | None]:
    opens = _day(spec.get("opens"), f"{where}.opens", LONG_AGO)
    closes = _day(spec.get("closes"), f"{where}.closes", None)
    assert opens is not None
    return {"opens_on": opens, "closes_on": closes}


def _check_role(service: str, role: str | None, where: str, catalogue: Catalogue) -> None:
    if service not in catalogue.services:
        raise ValueError(f"{where}: unknown service {service!r}")
    if role is not None and not catalogue.services[service].accepts(role):
        raise ValueError(f"{where}: unknown role {service}:{role}")


@dataclass(frozen=True)
class Case:
    """One row of a decision table."""

    file: str
    id: str
    rules: tuple[str, ...]
    user: str
    service: str
    role: str | None
    caf: str | None
    at: int | None
    allowed: bool
    feature: str | None
    reason: Reason
    grants: tuple[str, ...] | None


@dataclass(frozen=True)
class Table:
    """One YAML file: a state and its cases."""

    name: str
    state: dict[str, Any]
    cases: tuple[Case, ...]
    xfails: dict[str, str]


def _case(file: str, raw: Any, n: int) -> tuple[Case, str | None]:
    where = f"{file} case #{n}"
    spec = _keys(
        raw,
        where,
        {"id", "rule", "query", "allowed", "reason", "grants", "xfail"},
        {"id", "rule", "query", "allowed", "reason"},
    )
    where = f"{file}:{spec['id']}"
    rules = spec["rule"]
    if not isinstance(rules, list) or not rules or not all(RULE_ID.match(str(r)) for r in rules):
        raise ValueError(f"{where}: 'rule' must list rule ids like R-DEC-1, got {rules!r}")
    query = _keys(
        spec["query"],
        f"{where}.query",
        {"user", "service", "role", "caf", "at", "feature"},
        {"user", "service"},
    )
    _check_role(query["service"], query.get("role"), where, CATALOGUE)
    feature = query.get("feature")
    if feature is not None and feature not in CATALOGUE.services[query["service"]].features:
        raise ValueError(f"{where}: unknown feature {query['service']}:{feature}")
    reason = Reason(spec["reason"])
    if spec["allowed"] is not (reason is Reason.ALLOWED):
        raise ValueError(f"{where}: allowed={spec['allowed']} contradicts reason {reason}")
    grants = spec.get("grants")
    if grants is not None and (not isinstance(grants, list) or reason is not Reason.ALLOWED):
        raise ValueError(f"{where}: grants must be a list, on allowed cases only")
    if reason is Reason.ALLOWED and not grants:
        raise ValueError(f"{where}: an allowed case must say which grants allow it (R-DEC-3)")
    at = query.get("at")
    if at is not None and (isinstance(at, bool) or not isinstance(at, int)):
        raise ValueError(f"{where}: query.at must be a relative day")
    case = Case(
        file=file,
        id=str(spec["id"]),
        rules=tuple(str(r) for r in rules),
        user=str(query["user"]),
        service=str(query["service"]),
        role=None if query.get("role") is None else str(query["role"]),
        caf=None if query.get("caf") is None else str(query["caf"]),
        at=at,
        allowed=bool(spec["allowed"]),
        feature=None if feature is None else str(feature),
        reason=reason,
        grants=None if grants is None else tuple(sorted(str(g) for g in grants)),
    )
    return case, spec.get("xfail")


def load_tables(directory: Path = CASES_DIR) -> list[Table]:
    """Read and check every decision table; raise ValueError on malformed data."""
    tables = []
    for path in sorted(directory.glob("*.yaml")):
        data = _keys(
            yaml.safe_load(path.read_text(encoding="utf-8")),
            path.name,
            {"description", "state", "cases"},
            {"state", "cases"},
        )
        cases: list[Case] = []
        xfails: dict[str, str] = {}
        for n, raw in enumerate(data["cases"], 1):
            case, xfail = _case(path.stem, raw, n)
            if any(c.id == case.id for c in cases):
                raise ValueError(f"{path.name}: duplicate case id {case.id}")
            cases.append(case)
            if xfail:
                xfails[case.id] = str(xfail)
        tables.append(Table(path.stem, data["state"], tuple(cases), xfails))
    return tables


TABLES = load_tables()


def _params() -> Iterator[Any]:
    for table in TABLES:
        for case in table.cases:
            marks = []
            if case.id in table.xfails:
                marks.append(pytest.mark.xfail(strict=True, reason=table.xfails[case.id]))
            yield pytest.param(table, case, id=f"{table.name}:{case.id}", marks=marks)


# -- Writing the state ------------------------------------------------------------------------


def build_state(
    session: Session, state: Any, catalogue: Catalogue = CATALOGUE
) -> dict[str, str | None]:
    """Write the state in the session (one change of every domain); return each login's org code."""
    state = _keys(
        state, "state", {"organisations", "users", "groups", "memberships", "afas_profiles"}
    )
    cafs: dict[str, Caf] = {}
    orgs: dict[str, Organisation] = {}
    conventions: dict[str, dict[str, Convention]] = {}
    for code, raw in (state.get("organisations") or {}).items():
        where = f"organisations.{code}"
        spec = _keys(raw, where, {"opens", "closes", "conventions"})
        org = Organisation(code=str(code), name=str(code), kind="other", **_dates(spec, where))
        session.add(org)
        session.flush()
        orgs[str(code)] = org
        conventions[str(code)] = {}
        for caf_code, raw_conv in (spec.get("conventions") or {}).items():
            cwhere = f"{where}.conventions.{caf_code}"
            conv_spec = _keys(raw_conv, cwhere, {"opens", "closes", "subscriptions"})
            caf = cafs.get(str(caf_code))
            if caf is None:
                caf = cafs[str(caf_code)] = Caf(code=str(caf_code), name=f"Caf {caf_code}")
                session.add(caf)
                session.flush()
            conv = Convention(
                organisation_id=org.id,
                caf_id=caf.id,
                reference=f"CONV-{code}-{caf_code}",
                **_dates(conv_spec, cwhere),
            )
            session.add(conv)
            session.flush()
            conventions[str(code)][str(caf_code)] = conv
            for service, raw_sub in (conv_spec.get("subscriptions") or {}).items():
                swhere = f"{cwhere}.subscriptions.{service}"
                _check_role(str(service), None, swhere, catalogue)
                sub = _keys(raw_sub, swhere, {"opens", "closes"})
                session.add(
                    Subscription(convention_id=conv.id, service=str(service), **_dates(sub, swhere))
                )

    users: dict[str, User] = {}
    org_of: dict[str, str | None] = {}
    for login, raw in (state.get("users") or {}).items():
        where = f"users.{login}"
        spec = _keys(raw, where, {"org", "opens", "closes", "operator", "admin"})
        org_code = spec.get("org")
        if (org_code is None) != bool(spec.get("operator", False)):
            raise ValueError(f"{where}: an operator has no organisation, anyone else has one")
        user_org = orgs[str(org_code)] if org_code is not None else None
        user = User(
            login=str(login),
            organisation_id=user_org.id if user_org else None,
            first_name=str(login),
            last_name="Test",
            email=f"{login}@example.fr",
            is_operator=bool(spec.get("operator", False)),
            **_dates(spec, where),
        )
        session.add(user)
        session.flush()
        users[str(login)] = user
        org_of[str(login)] = None if org_code is None else str(org_code)
        if spec.get("admin"):
            assert user_org is not None
            session.add(
                PartnerAdmin(organisation_id=user_org.id, user_id=user.id, opens_on=user.opens_on)
            )

    groups: dict[tuple[str, str], Group] = {}
    for org_code, by_code in (state.get("groups") or {}).items():
        group_org = orgs[str(org_code)]
        for code, raw in (by_code or {}).items():
            where = f"groups.{org_code}.{code}"
            spec = _keys(raw, where, {"parent", "convention", "opens", "closes", "roles"})
            convs = conventions[str(org_code)]
            caf_code = spec.get("convention", next(iter(convs)))
            parent = spec.get("parent")
            if parent is not None and (str(org_code), str(parent)) not in groups:
                raise ValueError(f"{where}: parent {parent} must be declared before its children")
            group = Group(
                organisation_id=group_org.id,
                convention_id=convs[str(caf_code)].id,
                parent_id=groups[(str(org_code), str(parent))].id if parent is not None else None,
                code=str(code),
                label=str(code),
                **_dates(spec, where),
            )
            session.add(group)
            session.flush()
            groups[(str(org_code), str(code))] = group
            for service, roles in (spec.get("roles") or {}).items():
                for role in roles:
                    rspec = role if isinstance(role, dict) else {"role": role}
                    rwhere = f"{where}.roles.{service}"
                    rspec = _keys(rspec, rwhere, {"role", "opens", "closes"}, {"role"})
                    _check_role(str(service), str(rspec["role"]), rwhere, catalogue)
                    session.add(
                        GroupRole(
                            group_id=group.id,
                            service=str(service),
                            role=str(rspec["role"]),
                            **_dates(rspec, rwhere),
                        )
                    )

    for n, raw in enumerate(state.get("memberships") or [], 1):
        where = f"memberships #{n}"
        spec = _keys(raw, where, {"user", "group", "opens", "closes"}, {"user", "group"})
        user = users[str(spec["user"])]
        org_code, _, code = str(spec["group"]).rpartition("/")
        key = (org_code or str(org_of[str(spec["user"])]), code)
        if key not in groups:
            raise ValueError(f"{where}: unknown group {spec['group']}")
        session.add(Membership(user_id=user.id, group_id=groups[key].id, **_dates(spec, where)))

    for n, raw in enumerate(state.get("afas_profiles") or [], 1):
        where = f"afas_profiles #{n}"
        spec = _keys(raw, where, {"user", "profile", "opens", "closes"}, {"user", "profile"})
        _check_role("afas", str(spec["profile"]), where, catalogue)
        session.add(
            AfasProfile(
                user_id=users[str(spec["user"])].id,
                profile=str(spec["profile"]),
                **_dates(spec, where),
            )
        )
    session.flush()
    record_change(session, [None], "decision table state")
    return org_of


def grant_label(grant: Grant) -> str:
    """The tables' spelling of a grant path."""
    if grant.source == "afas_profile":
        return f"profile: {grant.service} {grant.role}"
    return f"{grant.group}: {grant.service} {grant.role}"


# -- The test ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """A table's state as the engine (and the Casbin reference) see it."""

    engine: PdpEngine
    snapshot: Snapshot
    org_of: dict[str, str | None]


# The cases of a table only read: its state is written and loaded once per (table, backend),
# then the database is released for the next test.
_LOADED: dict[tuple[str, str], Loaded] = {}


@pytest.fixture
def loaded(
    make_database: Callable[[str, Path], str],
    table: Table,
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Loaded:
    """The engine loaded from ``table``'s state written to a fresh database of ``backend``."""
    key = (table.name, backend)
    if key not in _LOADED:
        url = make_database(backend, tmp_path_factory.mktemp(table.name))
        db = make_engine(url)
        try:
            with sessionmaker(db).begin() as session:
                org_of = build_state(session, table.state)
            source = SqlSnapshotSource(db)
            engine = PdpEngine(source, CATALOGUE, clock=lambda: TODAY)
            engine.load()
            _LOADED[key] = Loaded(engine, source.load(), org_of)
        finally:
            db.dispose()
    return _LOADED[key]


@pytest.mark.parametrize(("table", "case"), list(_params()))
def test_decision_table(table: Table, case: Case, loaded: Loaded) -> None:
    day = TODAY + dt.timedelta(days=case.at) if case.at is not None else None

    decision = loaded.engine.check(
        Query(case.user, case.service, case.role, case.caf, day, case.feature)
    )

    assert (decision.allowed, decision.reason) == (case.allowed, case.reason), case.rules
    assert decision.day == (day or TODAY)
    labels = tuple(sorted(grant_label(g) for g in decision.grants))
    assert labels == (case.grants or ()), "grant paths (R-DEC-3)"

    # Plain Casbin over the same store must agree (only users of an organisation are domains).
    org_code = loaded.org_of.get(case.user)
    if org_code is not None:
        reference = ReferenceEnforcer.for_day(
            loaded.snapshot, (day or TODAY).toordinal(), CATALOGUE
        )
        casbin_says = reference.allowed(
            case.user, org_code, case.service, case.role, case.caf, case.feature
        )
        assert casbin_says == case.allowed, "Casbin reference disagrees"


def test_tables_cover_every_reason_and_cite_rules() -> None:
    """The tables are the specification: every deciding reason code is exercised."""
    cases = [c for t in TABLES for c in t.cases]
    assert len(cases) >= 40
    deciding = set(Reason) - {Reason.ENGINE_ERROR, Reason.POLICY_UNAVAILABLE}
    assert {c.reason for c in cases} == deciding
    assert all(c.rules for c in cases)
    for rule in (
        "R-DEC-1",
        "R-DEC-3",
        "R-TIME-1",
        "R-TIME-2",
        "R-CON-2",
        "R-CON-3",
        "R-GRP-2",
        "R-GRP-4",
        "R-AFAS-1",
        "R-ADM-2",
    ):
        assert any(rule in c.rules for c in cases), f"no case proves {rule}"


def test_table_reader_refuses_typos(tmp_path: Path) -> None:
    """A misspelt key must fail loudly rather than silently default (cases would be vacuous)."""
    (tmp_path / "bad.yaml").write_text(
        "state: {}\ncases:\n"
        "  - {id: x, rule: [R-DEC-1], query: {user: a, service: cdap, rol: T1},"
        " allowed: false, reason: UNKNOWN_USER}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="unknown keys"):
        load_tables(tmp_path)
