"""The engine follows the store (SQLite and PostgreSQL): writes committed with ``record_change``
show after a refresh, and only the organisations they name are rebuilt (exact invalidation by
Casbin domain); a change naming no organisation reloads everything; the poll is throttled.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from pdp.adapters.sql.database import UnitOfWork, make_engine, record_change
from pdp.adapters.sql.models import (
    Caf,
    Convention,
    Group,
    Membership,
    Organisation,
    PolicyRevision,
    Subscription,
    User,
)
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.decision import Query, Reason
from pdp.engine.index import Index
from pdp.engine.policy import PolicyEngine
from pdp.engine.snapshot import Snapshot

CATALOGUE = load_catalogue()

# Every test here runs with the index's users kept as objects and as flat records.
pytestmark = pytest.mark.usefixtures("users_layout")


class CountingSource:
    """The real SQL source, counting the calls made to it (a fake that records, not a mock).

    ``before_partial_load`` runs once, just before the first per-organisation load: it lets a
    test commit a write exactly between the engine's read of the change log and its read of
    the rows.
    """

    def __init__(self, real: SqlSnapshotSource) -> None:
        self.real = real
        self.polls = 0
        self.loads: list[frozenset[int] | None] = []
        self.before_partial_load: Callable[[], None] | None = None

    def load(self, organisation_ids: Iterable[int] | None = None) -> Snapshot:
        ids = None if organisation_ids is None else frozenset(organisation_ids)
        self.loads.append(ids)
        if ids is not None and self.before_partial_load is not None:
            hook, self.before_partial_load = self.before_partial_load, None
            hook()
        return self.real.load(ids)

    def changes_since(self, revision: int) -> list[Any]:
        self.polls += 1
        return self.real.changes_since(revision)

    def load_delta(self, *args: Any) -> Any:
        return self.real.load_delta(*args)


@pytest.fixture
def db(demo_db: str) -> Iterator[SqlEngine]:
    """A SQLAlchemy engine on a database holding the demo (revision 1)."""
    engine = make_engine(demo_db)
    yield engine
    engine.dispose()


@pytest.fixture
def source(db: SqlEngine) -> CountingSource:
    return CountingSource(SqlSnapshotSource(db))


@pytest.fixture
def engine(source: CountingSource, today: dt.date) -> PolicyEngine:
    """An engine loaded from the demo; polls only when forced (refresh_interval: one hour)."""
    engine = PolicyEngine(source, CATALOGUE, clock=lambda: today, refresh_interval=3600)
    engine.load()
    source.polls = 0
    source.loads.clear()
    return engine


@pytest.fixture
def uow(db: SqlEngine) -> UnitOfWork:
    return UnitOfWork(sessionmaker(db))


def org_id(session: Session, code: str) -> int:
    return int(
        session.execute(select(Organisation.id).where(Organisation.code == code)).scalar_one()
    )


def user(session: Session, login: str) -> User:
    return session.execute(select(User).where(User.login == login)).scalar_one()


def group(session: Session, org: int, code: str) -> Group:
    stmt = select(Group).where(Group.organisation_id == org, Group.code == code)
    return session.execute(stmt).scalar_one()


def decide(
    engine: PolicyEngine,
    login: str,
    service: str,
    role: str | None = None,
    at: dt.date | None = None,
) -> Reason:
    return engine.check(Query(login, service, role, None, at)).reason


def before(index: Index) -> Index:
    """The index's partitions as they are now: a refresh changes the index in place
    (``pdp.engine.index_delta``), replacing the objects of what changed. Its users are the
    same table: the users written since the last full build are ``users.changed()``."""
    copy = Index(index.revision)
    copy.orgs, copy.users = dict(index.orgs), index.users
    return copy


def shared(old: Index, new: Index) -> set[str]:
    """Codes of the organisations whose partition object the two indexes share."""
    return {new.orgs[oid].code for oid in new.orgs if old.orgs.get(oid) is new.orgs[oid]}


OTHERS = {"habitat-93", "sip-lyon", "asso-entraide", "ccas-grand-paris"}


def test_a_new_membership_shows_after_refresh_and_rebuilds_only_its_organisation(
    engine: PolicyEngine, uow: UnitOfWork, source: CountingSource, today: dt.date
) -> None:
    # chloe (CCAS-ACCUEIL: cdap T1) is attached to CCAS-INSTRUCTION (T1, T18) from today.
    assert decide(engine, "chloe.roux", "cdap", "T18") is Reason.ROLE_NOT_GRANTED
    old = before(engine.index)
    logins = set(engine.index.users)
    with uow.begin() as session:
        mairie = org_id(session, "mairie-montreuil")
        instruction = group(session, mairie, "CCAS-INSTRUCTION")
        session.add(
            Membership(
                user_id=user(session, "chloe.roux").id, group_id=instruction.id, opens_on=today
            )
        )
        revision = record_change(session, [mairie], "attach chloe to CCAS-INSTRUCTION")
    assert revision == 2

    engine.refresh()  # within refresh_interval: not even a poll
    assert source.polls == 0
    assert decide(engine, "chloe.roux", "cdap", "T18") is Reason.ROLE_NOT_GRANTED

    engine.refresh(force=True)
    assert (source.polls, source.loads) == (1, [frozenset({mairie})])
    assert engine.revision == 2
    decision = engine.check(Query("chloe.roux", "cdap", "T18"))
    assert decision.allowed and decision.revision == 2
    assert [g.group for g in decision.grants] == ["CCAS-INSTRUCTION"]
    # R-TIME-2: the membership starts today; yesterday's answer is unchanged.
    yesterday = today - dt.timedelta(days=1)
    assert decide(engine, "chloe.roux", "cdap", "T18", yesterday) is Reason.ROLE_NOT_GRANTED

    new = engine.index
    assert new is not old
    assert shared(old, new) == OTHERS
    assert new.orgs[mairie] is not old.orgs[mairie]
    # Only the users of the reloaded organisation were written again; the others are still
    # read from the table built at load time.
    mairie_logins = set(new.orgs[mairie].logins)
    assert "bruno.petit" in mairie_logins
    assert new.users.changed() == mairie_logins
    for login in ("helene.fabre", "ines.moreau", "lea.fontaine", "nadia.benali", "op.caf751"):
        assert login in new.users and login not in mairie_logins, login
    assert set(new.users) == logins and len(new.users) == len(logins)
    assert new.org_by_code["mairie-montreuil"] is new.orgs[mairie]


def test_closing_a_group_shows_after_refresh(
    engine: PolicyEngine, uow: UnitOfWork, today: dt.date
) -> None:
    # R-GRP-2: closing = closing date today; effective at once, history kept.
    assert decide(engine, "chloe.roux", "cdap", "T1") is Reason.ALLOWED
    old = before(engine.index)
    with uow.begin() as session:
        mairie = org_id(session, "mairie-montreuil")
        group(session, mairie, "CCAS-ACCUEIL").closes_on = today
        record_change(session, [mairie], "close CCAS-ACCUEIL")
    engine.refresh(force=True)
    assert decide(engine, "chloe.roux", "cdap", "T1") is Reason.GROUP_CLOSED
    assert (
        decide(engine, "chloe.roux", "cdap", "T1", today - dt.timedelta(days=1)) is Reason.ALLOWED
    )
    assert shared(old, engine.index) == OTHERS


def test_closing_a_parent_group_closes_its_sub_groups(
    engine: PolicyEngine, uow: UnitOfWork, today: dt.date
) -> None:
    # R-GRP-2: bruno keeps nothing from CCAS nor its sub-group CCAS-INSTRUCTION.
    with uow.begin() as session:
        mairie = org_id(session, "mairie-montreuil")
        group(session, mairie, "CCAS").closes_on = today
        record_change(session, [mairie], "close CCAS")
    engine.refresh(force=True)
    assert decide(engine, "bruno.petit", "cdap", "T18") is Reason.GROUP_CLOSED
    assert engine.permissions("bruno.petit", None) == {}


def test_a_user_closed_today_is_denied_after_refresh(
    engine: PolicyEngine, uow: UnitOfWork, today: dt.date
) -> None:
    # R-USR-4, R-TIME-1.
    with uow.begin() as session:
        target = user(session, "jules.lambert")
        target.closes_on = today
        assert target.organisation_id is not None
        record_change(session, [target.organisation_id], "close jules")
    assert decide(engine, "jules.lambert", "dgfip") is Reason.ALLOWED
    engine.refresh(force=True)
    assert decide(engine, "jules.lambert", "dgfip") is Reason.USER_CLOSED


def test_a_new_user_of_an_organisation_is_listed_after_refresh(
    engine: PolicyEngine, uow: UnitOfWork, today: dt.date
) -> None:
    with uow.begin() as session:
        sip = org_id(session, "sip-lyon")
        newcomer = User(login="zoe.nouvelle", organisation_id=sip, opens_on=today)
        session.add(newcomer)
        session.flush()
        enquete = group(session, sip, "DGFIP-ENQUETE")
        session.add(Membership(user_id=newcomer.id, group_id=enquete.id, opens_on=today))
        record_change(session, [sip], "new user")
    assert decide(engine, "zoe.nouvelle", "dgfip") is Reason.UNKNOWN_USER
    engine.refresh(force=True)
    assert decide(engine, "zoe.nouvelle", "dgfip", "enquete") is Reason.ALLOWED
    assert "zoe.nouvelle" in engine.index.orgs[sip].logins


def test_a_new_organisation_gets_its_own_partition(
    engine: PolicyEngine, uow: UnitOfWork, today: dt.date
) -> None:
    # R-CON-4: an operator registers an organisation, convention and subscription; it is one
    # more domain: nothing else is rebuilt.
    old = before(engine.index)
    with uow.begin() as session:
        org = Organisation(code="mairie-bobigny", name="Mairie de Bobigny", opens_on=today)
        session.add(org)
        session.flush()
        caf = session.execute(select(Caf).where(Caf.code == "931")).scalar_one()
        conv = Convention(organisation_id=org.id, caf_id=caf.id, reference="B", opens_on=today)
        session.add(conv)
        session.flush()
        session.add(Subscription(convention_id=conv.id, service="cdap", opens_on=today))
        session.add(User(login="yves.bobigny", organisation_id=org.id, opens_on=today))
        record_change(session, [org.id], "new organisation")
        new_id = org.id
    engine.refresh(force=True)
    assert engine.index.org_by_code["mairie-bobigny"].id == new_id
    assert decide(engine, "yves.bobigny", "cdap") is Reason.NO_MEMBERSHIP  # R-USR-2
    assert shared(old, engine.index) == OTHERS | {"mairie-montreuil"}


def test_a_renamed_login_no_longer_decides_under_its_old_name(
    engine: PolicyEngine, uow: UnitOfWork
) -> None:
    # The old partition's users go with it: nothing stale may answer for the former login.
    with uow.begin() as session:
        jules = user(session, "jules.lambert")
        jules.login = "jules.lambert2"
        assert jules.organisation_id is not None
        record_change(session, [jules.organisation_id], "rename")
    engine.refresh(force=True)
    assert decide(engine, "jules.lambert", "dgfip") is Reason.UNKNOWN_USER
    assert decide(engine, "jules.lambert2", "dgfip", "enquete") is Reason.ALLOWED


def test_a_change_naming_no_organisation_reloads_everything(
    engine: PolicyEngine, uow: UnitOfWork, source: CountingSource, today: dt.date
) -> None:
    # A new operator belongs to no organisation: the change names none.
    old = before(engine.index)
    with uow.begin() as session:
        session.add(User(login="op.caf931", is_operator=True, opens_on=today))
        assert record_change(session, [None], "new operator") == 2
    engine.refresh(force=True)
    assert source.loads == [None]
    assert engine.revision == 2
    assert decide(engine, "op.caf931", "cdap") is Reason.NO_ORGANISATION
    assert shared(old, engine.index) == set()
    # A full build: a new table, nothing written since.
    assert engine.index.users is not old.users and engine.index.users.changed() == set()


def test_more_organisations_than_the_threshold_reload_everything(
    source: CountingSource, uow: UnitOfWork, today: dt.date
) -> None:
    engine = PolicyEngine(source, CATALOGUE, clock=lambda: today, full_reload_threshold=1)
    engine.load()
    source.loads.clear()
    with uow.begin() as session:
        record_change(session, [org_id(session, "sip-lyon")], "one")
    engine.refresh(force=True)
    assert source.loads == [frozenset({org_id_of(engine, "sip-lyon")})]
    with uow.begin() as session:
        record_change(session, [org_id(session, "sip-lyon"), org_id(session, "habitat-93")], "two")
    engine.refresh(force=True)
    assert source.loads[-1] is None


def org_id_of(engine: PolicyEngine, code: str) -> int:
    return engine.index.org_by_code[code].id


def test_revision_increases_and_each_change_rebuilds_its_organisations(
    engine: PolicyEngine, uow: UnitOfWork, db: SqlEngine, source: CountingSource
) -> None:
    revisions = []
    old = before(engine.index)
    for code in ("sip-lyon", "habitat-93", "sip-lyon"):
        with uow.begin() as session:
            revisions.append(record_change(session, [org_id(session, code)], f"touch {code}"))
    assert revisions == [2, 3, 4]
    with db.connect() as conn:
        assert conn.execute(select(PolicyRevision.revision)).scalar_one() == 4
    engine.refresh(force=True)
    assert engine.revision == 4
    assert source.loads == [
        frozenset({org_id_of(engine, "sip-lyon"), org_id_of(engine, "habitat-93")})
    ]
    assert shared(old, engine.index) == {"mairie-montreuil", "asso-entraide", "ccas-grand-paris"}


def test_a_refresh_with_no_change_keeps_the_index(
    engine: PolicyEngine, source: CountingSource
) -> None:
    old = engine.index
    engine.refresh(force=True)
    assert source.polls == 1
    assert source.loads == []
    assert engine.index is old


def test_refresh_polls_at_most_every_refresh_interval(
    source: CountingSource, today: dt.date
) -> None:
    engine = PolicyEngine(source, CATALOGUE, clock=lambda: today, refresh_interval=0.3)
    engine.load()
    engine.refresh()
    engine.refresh()
    assert source.polls == 0  # just loaded: within the interval
    time.sleep(0.35)
    engine.refresh()
    engine.refresh()
    assert source.polls == 1
    engine.refresh(force=True)
    assert source.polls == 2
    eager = PolicyEngine(source, CATALOGUE, clock=lambda: today, refresh_interval=0)
    eager.load()
    eager.refresh()
    eager.refresh()
    assert source.polls == 4


def test_a_change_committed_during_a_partial_reload_is_not_lost(
    engine: PolicyEngine, uow: UnitOfWork, source: CountingSource, db: SqlEngine, today: dt.date
) -> None:
    # Writer 1 touches sip-lyon; the engine reads the change log (revision 2: sip-lyon). Before
    # it reads sip-lyon's rows, writer 2 commits revision 3 for habitat-93 (helene's membership
    # ends today). The engine must apply revision 3 too, at the latest on the next refresh.
    with uow.begin() as session:
        record_change(session, [org_id(session, "sip-lyon")], "writer 1")

    def writer_2() -> None:
        with uow.begin() as session:
            helene = user(session, "helene.fabre")
            session.execute(
                update(Membership).where(Membership.user_id == helene.id).values(closes_on=today)
            )
            assert helene.organisation_id is not None
            record_change(session, [helene.organisation_id], "writer 2")

    source.before_partial_load = writer_2
    engine.refresh(force=True)
    engine.refresh(force=True)  # whatever the first refresh missed, the next one must apply
    with db.connect() as conn:
        assert engine.revision == conn.execute(select(PolicyRevision.revision)).scalar_one()
    assert decide(engine, "helene.fabre", "espace_bailleur") is Reason.NO_MEMBERSHIP
