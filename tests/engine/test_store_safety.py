"""The engine never decides on a state the store never held, nor keeps a state it lost:
a store restored behind the engine's revision triggers a full reload, a SQLite snapshot is one
transaction, a parent group in another organisation grants nothing (R-DEC-2, fail closed), and
request bodies over the limit are refused even when chunked."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import event, select, update
from sqlalchemy.orm import sessionmaker

from pdp.adapters.sql.database import UnitOfWork, make_engine, record_change
from pdp.adapters.sql.models import Group, Membership, PolicyRevision, User
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.casbin_lines import policy_lines
from pdp.engine.casbin_model import ReferenceEnforcer
from pdp.engine.decision import Query, Reason
from pdp.engine.index import Index
from pdp.engine.index_delta import replace_partitions
from pdp.engine.policy import PolicyEngine


@pytest.fixture
def db(demo_db: str) -> Iterator[SqlEngine]:
    engine = make_engine(demo_db)
    yield engine
    engine.dispose()


def _engine(db: SqlEngine, today: dt.date) -> PolicyEngine:
    engine = PolicyEngine(SqlSnapshotSource(db), load_catalogue(), clock=lambda: today)
    engine.load()
    return engine


def test_a_store_restored_behind_the_engine_is_reloaded_in_full(
    db: SqlEngine, today: dt.date
) -> None:
    """R-DEC-2: after a restore the revision goes backwards; the engine must not keep rules
    the store no longer has."""
    engine = _engine(db, today)
    uow = UnitOfWork(sessionmaker(db))
    with uow.begin() as s:
        s.execute(update(User).where(User.login == "bruno.petit").values(closes_on=today))
        org = s.execute(select(User.organisation_id).where(User.login == "bruno.petit"))
        record_change(s, [org.scalar_one()], "close bruno")
    engine.refresh(force=True)
    assert engine.check(Query("bruno.petit", "cdap")).reason is Reason.USER_CLOSED
    assert engine.revision == 2
    # The "restore": the user reopened and the revision back to 1.
    with uow.begin() as s:
        s.execute(update(User).where(User.login == "bruno.petit").values(closes_on=None))
        s.execute(update(PolicyRevision).values(revision=1))
    engine.refresh(force=True)
    assert engine.revision == 1
    assert engine.check(Query("bruno.petit", "cdap")).allowed


def test_a_sqlite_snapshot_is_read_in_one_transaction(
    db: SqlEngine, backend: str, today: dt.date
) -> None:
    """Every SELECT of a snapshot runs inside one BEGIN (pysqlite would not send it)."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL snapshots use REPEATABLE READ")
    statements: list[str] = []

    @event.listens_for(db, "before_cursor_execute")
    def _record(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0].upper())

    SqlSnapshotSource(db).load()
    event.remove(db, "before_cursor_execute", _record)
    assert statements[0] == "BEGIN"
    assert statements.count("BEGIN") == 1
    assert statements.count("SELECT") >= 8


def test_a_parent_group_in_another_organisation_grants_nothing(
    db: SqlEngine, today: dt.date
) -> None:
    """Corrupt data fails closed, identically in the index and in Casbin's lines."""
    uow = UnitOfWork(sessionmaker(db))
    with uow.begin() as s:
        foreign = s.execute(select(Group.id).where(Group.code == "EB-PARC-PRIVE")).scalar_one()
        s.execute(update(Group).where(Group.code == "CCAS-ACCUEIL").values(parent_id=foreign))
        record_change(s, [None], "corrupt")
    snap = SqlSnapshotSource(db).load()
    index = Index.build(snap)
    day = today.toordinal()
    outcome = index.decide("chloe.roux", "cdap", "T1", None, day)
    assert outcome.reason is Reason.GROUP_CLOSED
    reference = ReferenceEnforcer(policy_lines(snap, day))
    assert not reference.allowed("chloe.roux", "mairie-montreuil", "cdap", "T1", None)
    # A partial rebuild of either organisation agrees with the full build.
    org_ids = {org for _, org, *_ in snap.groups}
    partial = Index.build(snap)
    replace_partitions(partial, SqlSnapshotSource(db).load(org_ids))
    assert partial.decide("chloe.roux", "cdap", "T1", None, day).reason is Reason.GROUP_CLOSED
    with uow.begin() as s:
        assert s.execute(select(Membership.id)).first() is not None


def test_a_chunked_body_over_the_limit_is_refused(client: FlaskClient) -> None:
    """A body without Content-Length is not cut at the limit and decided: it is a 413."""
    body = b'{"user": "bruno.petit", "service": "cdap"}' + b" " * 1_100_000

    response = client.post(
        "/v1/check",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        # What gunicorn says of a chunked body it has de-chunked: read it to its end.
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
