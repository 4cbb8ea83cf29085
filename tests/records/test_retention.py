"""Retention of the decision log (R-CNIL-10..13): the months before the kept ones go, whole
partitions on PostgreSQL, batches on SQLite; the audit trail stays; migration 0008 keeps rows."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from pdp.adapters.sql import partitions
from pdp.adapters.sql.database import make_engine, upgrade
from pdp.adapters.sql.models import AuditRecord, DecisionRecord
from pdp.adapters.sql.partitions import Month
from pdp.cli import cli
from pdp.core.config import Settings, refuse_defaults, retention_problem
from pdp.core.errors import ConfigurationError
from pdp.records.decision_log import Shipper
from pdp.records.retention import Retention, cutoff_month

TODAY = dt.date(2026, 12, 2)


def logged_at(db: Engine, *moments: dt.datetime) -> list[str]:
    """Insert one decision per moment, as the shipper does; return their ids."""
    ids = []
    with db.begin() as conn:
        for moment in moments:
            decision_id = secrets.token_hex(16)
            ts_us = int(moment.timestamp() * 1_000_000)
            entry = {"decision_id": decision_id, "ts": ts_us / 1e6, "kind": "check"}
            conn.execute(
                DecisionRecord.__table__.insert().values(
                    decision_id=decision_id,
                    ts_us=ts_us,
                    kind="check",
                    user="bruno.petit",
                    allowed=True,
                    reason="ALLOWED",
                    revision=1,
                    entry=orjson.dumps(entry).decode(),
                )
            )
            ids.append(decision_id)
    return ids


def months_made(db: Engine, *months: Month) -> None:
    """On PostgreSQL, the partitions a server running in those months would have made."""
    with db.begin() as conn:
        if partitions.is_partitioned(conn):
            partitions.ensure_months(conn, list(months))


def kept(db: Engine) -> set[str]:
    with db.connect() as conn:
        return set(conn.execute(select(DecisionRecord.decision_id)).scalars())


def paris(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=partitions._PARIS)  # type: ignore[misc]


def test_the_log_holds_this_month_and_the_months_before_it() -> None:
    # R-CNIL-10: with 12 months, on 2 December 2026 the first month kept is January 2026.
    assert cutoff_month(TODAY, 12) == Month(2026, 1)
    assert cutoff_month(TODAY, 1) == Month(2026, 12)
    assert cutoff_month(dt.date(2026, 1, 31), 6) == Month(2025, 8)
    with pytest.raises(ValueError):
        cutoff_month(TODAY, 0)


def test_retention_settings_are_checked() -> None:
    # R-CNIL-10: 12 months by default, 1 to 120 anywhere, at most 12 in production.
    assert Settings.from_env({}).decision_log_retention_months == 12
    for bad in ("0", "121", "twelve"):
        with pytest.raises(ConfigurationError, match="PDP_DECISION_LOG_RETENTION_MONTHS"):
            Settings.from_env({"PDP_DECISION_LOG_RETENTION_MONTHS": bad})
    with pytest.raises(ConfigurationError, match="PDP_DECISION_LOG_PRUNE_INTERVAL"):
        Settings.from_env({"PDP_DECISION_LOG_PRUNE_INTERVAL": "-1"})
    long = Settings.from_env({"PDP_DECISION_LOG_RETENTION_MONTHS": "24"})
    assert retention_problem(long) is None  # development: allowed
    production = Settings.from_env({"PDP_ENV": "production"}, decision_log_retention_months=13)
    assert "above the 12 months" in (retention_problem(production) or "")
    with pytest.raises(ConfigurationError, match="PDP_DECISION_LOG_RETENTION_MONTHS"):
        refuse_defaults(production)
    assert retention_problem(Settings.from_env({"PDP_ENV": "production"})) is None


def test_prune_removes_the_months_before_the_cutoff_and_nothing_else(db: Engine) -> None:
    # R-CNIL-11, on both backends: the same cutoff, whole months in Europe/Paris.
    months_made(db, Month(2025, 3), Month(2025, 12), Month(2026, 1), Month(2026, 6))
    old = logged_at(db, paris(2025, 3, 4, 12), paris(2025, 12, 31, 23, 59, 59))
    young = logged_at(db, paris(2026, 1, 1), paris(2026, 6, 15), paris(2026, 12, 2))
    retention = Retention(db, 12, today=lambda: TODAY)

    dry = retention.prune(dry_run=True)
    assert dry.deleted == 2 and dry.dry_run and dry.cutoff == dt.date(2026, 1, 1)
    assert kept(db) == set(old) | set(young)  # a dry run changes nothing

    report = retention.prune()
    assert kept(db) == set(young)
    if report.partitioned:
        assert report.dropped == ["decision_log_p202503", "decision_log_p202512"]
        assert report.deleted == 0
    else:
        assert report.deleted == 2
    again = retention.prune()  # idempotent
    assert again.deleted == 0 and again.dropped == []
    assert kept(db) == set(young)


def test_prune_deletes_in_batches(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # R-CNIL-11: SQLite (and the default partition) delete in short batches.
    monkeypatch.setattr(partitions, "DELETE_BATCH", 3)
    logged_at(db, *(paris(2024, 1, d) for d in range(1, 11)))
    young = logged_at(db, paris(2026, 11, 30))
    retention = Retention(db, 6, today=lambda: TODAY)
    report = retention.prune()
    assert kept(db) == set(young)
    assert report.deleted == 10  # no partition for 2024 here: on PostgreSQL, the default one


def test_the_audit_trail_is_never_pruned(app_db: tuple[object, Engine]) -> None:
    # R-CNIL-12 (R-TIME-2): a pruning round leaves every audit record where it was.
    _app, db = app_db
    with db.connect() as conn:
        before = conn.execute(select(func.count()).select_from(AuditRecord)).scalar_one()
    assert before > 0
    logged_at(db, paris(2020, 1, 1))
    Retention(db, 1, today=lambda: TODAY).prune()
    with db.connect() as conn:
        after = conn.execute(select(func.count()).select_from(AuditRecord)).scalar_one()
    assert after == before
    assert kept(db) == set()


def test_each_server_prunes_in_the_background(db: Engine) -> None:
    # R-CNIL-11: started in each worker (pdp.web.server), a round at once then every interval;
    # an interval of 0 starts nothing.
    logged_at(db, paris(2019, 5, 1))
    young = logged_at(db, dt.datetime.now(dt.UTC))
    idle = Retention(db, 12, interval=0)
    idle.start()
    assert len(kept(db)) == 2
    retention = Retention(db, 12, interval=0.05)
    retention.start()
    try:
        deadline = time.monotonic() + 10
        while kept(db) != set(young) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        retention.stop()
    assert kept(db) == set(young)
    ok = REGISTRY.get_sample_value("pdp_decision_log_prune_ok_timestamp_seconds")
    assert ok is not None and ok > time.time() - 60


def test_a_failed_round_is_counted_and_retried(tmp_path: Path) -> None:
    # R-CNIL-11: a round that fails (no table here) is counted, logged, never raised.
    broken = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    before = REGISTRY.get_sample_value("pdp_decision_log_prune_errors_total") or 0.0
    assert Retention(broken, 12).prune_logged() is None
    after = REGISTRY.get_sample_value("pdp_decision_log_prune_errors_total") or 0.0
    assert after == before + 1
    broken.dispose()


@pytest.fixture
def app_db(db_url: str) -> Iterator[tuple[object, Engine]]:
    """A database with the demo loaded through the audited path (audit records exist)."""
    from sqlalchemy.orm import sessionmaker

    from pdp.records.audit_trail import AuditChain
    from pdp.services.demo import load_demo

    engine = make_engine(db_url)
    with sessionmaker(engine).begin() as session:
        load_demo(session, TODAY, AuditChain(""))
    yield None, engine
    engine.dispose()


# -- PostgreSQL: partitions ----------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_log_is_partitioned_by_month_and_made_ahead(db: Engine) -> None:
    # R-CNIL-11: partitions for this month and the two next are there before they start; an
    # entry of a month with no partition lands in the default one, then moves into its own.
    with db.connect() as conn:
        assert partitions.is_partitioned(conn)
    stray = logged_at(db, paris(2027, 6, 10))
    retention = Retention(db, 12, today=lambda: TODAY)
    report = retention.prune()
    with db.connect() as conn:
        have = partitions.months(conn)
    assert {Month(2026, 12), Month(2027, 1), Month(2027, 2)} <= set(have)
    with db.begin() as conn:
        assert partitions.ensure_months(conn, [Month(2027, 6)]) == [Month(2027, 6)]
        where = conn.execute(
            text("SELECT tableoid::regclass::text FROM decision_log WHERE decision_id = :d"),
            {"d": stray[0]},
        ).scalar_one()
    assert where == "decision_log_p202706"
    assert not report.skipped


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_prune_drops_partitions_and_cleans_the_default_one(db: Engine) -> None:
    # R-CNIL-11: old months go as whole partitions; old rows in the default partition go too.
    with db.begin() as conn:
        partitions.ensure_months(conn, [Month(2025, 2)])
    in_partition = logged_at(db, paris(2025, 2, 14))
    with db.begin() as conn:  # a month with no partition: the row waits in the default one
        conn.exec_driver_sql("DROP TABLE IF EXISTS decision_log_p202411")
    in_default = logged_at(db, paris(2024, 11, 5))
    young = logged_at(db, paris(2026, 12, 1, 8))
    report = Retention(db, 12, today=lambda: TODAY).prune()
    assert "decision_log_p202502" in report.dropped
    assert report.deleted == 1
    assert kept(db) == set(young)
    assert not set(in_partition + in_default) & kept(db)
    with db.connect() as conn:
        assert all(m >= Month(2026, 1) for m in partitions.months(conn))


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_two_rounds_at_once_one_skips(db: Engine) -> None:
    # R-CNIL-11: servers prune one at a time (the round's advisory lock).
    with db.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x70647072756E65})
        report = Retention(db, 12, today=lambda: TODAY).prune()
    assert report.skipped
    assert "another server" in report.describe()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_shipping_twice_into_partitions_adds_nothing_twice(db: Engine, tmp_path: Path) -> None:
    # The shipper's ON CONFLICT on (decision_id, ts_us): a segment shipped again after a crash.
    entry = {
        "decision_id": secrets.token_hex(16),
        "ts": paris(2026, 12, 2, 10).timestamp(),
        "kind": "check",
        "organisation": "CCAS",
        "user": "bruno.petit",
        "allowed": True,
        "reason": "ALLOWED",
        "revision": 1,
    }
    directory = tmp_path / "log"
    directory.mkdir()
    segment = directory / "00000000000000000001-1-00000000.log"
    for _ in range(2):
        segment.write_bytes(orjson.dumps(entry) + b"\n")
        Shipper(directory, db).ship_once()
    assert kept(db) == {entry["decision_id"]}


# -- the migration -------------------------------------------------------------------------------


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database with no schema at all (the migrations' own test)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    server = make_url(os.environ["PDP_TEST_POSTGRES_URL"])
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"pdp_test_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migration_0008_keeps_every_row(fresh_url: str) -> None:
    # R-CNIL-11: converting the log (partitioned on PostgreSQL) keeps what it held.
    from alembic import command

    from pdp.adapters.sql.database import alembic_config

    db = make_engine(fresh_url)
    try:
        upgrade(db, "0006")
        ids = logged_at(db, paris(2026, 12, 1), paris(2025, 7, 7), paris(1970, 1, 2))
        upgrade(db)
        assert kept(db) == set(ids)
        with db.connect() as conn:
            partitioned = partitions.is_partitioned(conn)
            have = partitions.months(conn)
        assert partitioned == (db.dialect.name == "postgresql")
        if partitioned:
            assert {Month(2025, 7), Month(2026, 12), Month(1970, 1)} <= set(have)
        cfg = alembic_config(db)
        with db.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")
        assert kept(db) == set(ids)
    finally:
        db.dispose()


# -- the command line ----------------------------------------------------------------------------


def test_cli_prune_dry_run_then_prune(db_url: str, db: Engine) -> None:
    # R-CNIL-11: `pdp logs prune` applies PDP_DECISION_LOG_RETENTION_MONTHS (or --months).
    logged_at(db, paris(2001, 5, 5))
    young = logged_at(db, dt.datetime.now(dt.UTC))
    env = {"PDP_DATABASE_URL": db_url, "PDP_ENV": "development"}
    runner = CliRunner()
    dry = runner.invoke(cli, ["logs", "prune", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "1 decisions would go in all" in dry.output
    assert len(kept(db)) == 2
    done = runner.invoke(cli, ["logs", "prune", "--months", "3"], env=env)
    assert done.exit_code == 0, done.output
    assert kept(db) == set(young)
    refused = runner.invoke(
        cli, ["logs", "prune", "--months", "13"], env={**env, "PDP_ENV": "production"}
    )
    assert refused.exit_code != 0
    assert "above the 12 months" in str(refused.exception or refused.output)


def test_the_retention_bench_prints_its_figures(db: Engine) -> None:
    # bench/retention.py runs on both backends (figures printed, none asserted).
    from bench.retention import measure

    printed: list[str] = []
    figures = measure(db, 400, printed)
    assert len(printed) == 4 and figures["rows"] == 400
    assert kept(db)  # the young decisions stay
