"""Last use (R-CNIL-1, R-CNIL-2): the ``last_use`` table, its writer and its reader, on SQLite
and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import DecisionRecord, LastUse
from pdp.core.clock import paris_day, paris_today
from pdp.core.masking import Masker
from pdp.records import last_use
from pdp.records.decision_log import Shipper, WalLog
from pdp.records.last_use import LastUseWriter, last_uses, uses_of
from pdp.records.retention import Retention
from pdp.web.app import create_app
from pdp.web.container import services


def _check(
    user: str = "alice",
    grants: list[Any] | None = None,
    *,
    allowed: bool = True,
    ts: float | None = None,
    at: str | None = None,
    kind: str = "check",
) -> dict[str, Any]:
    ts = time.time() if ts is None else ts
    return {
        "decision_id": "x",
        "ts": ts,
        "kind": kind,
        "user": user,
        "allowed": allowed,
        "reason": "ALLOWED" if allowed else "NO_ROLE",
        "at": at if at is not None else paris_day(ts).isoformat(),
        "grants": [["g1", "cdap", "T18", "group"]] if grants is None else grants,
        "revision": 1,
    }


def test_uses_of_an_allowed_check_are_the_roles_its_grants_name() -> None:
    # R-CNIL-1: every (service, role) the grants name, for the day the check was made.
    ts = time.time()
    today = paris_day(ts)
    entry = _check(grants=[["g1", "cdap", "T18", "group"], ["g2", "cdap", "T2", "group"]], ts=ts)
    assert uses_of(entry) == {("alice", "cdap", "T18"): today, ("alice", "cdap", "T2"): today}


def test_denials_listings_and_other_days_are_not_uses() -> None:
    # R-CNIL-1: only allowed checks about the day they were made.
    ts = time.time()
    yesterday = (paris_day(ts) - dt.timedelta(days=1)).isoformat()
    assert uses_of(_check(allowed=False, grants=[])) == {}
    assert uses_of(_check(kind="permissions")) == {}
    assert uses_of(_check(ts=ts, at=yesterday)) == {}
    assert uses_of(_check(user="")) == {}


def test_writer_keeps_the_latest_day_and_reader_finds_it(db: Engine) -> None:
    # R-CNIL-1: an upsert per (login, service, role), whose day only moves forward.
    writer = LastUseWriter(db.dialect.name)
    d1, d2, d3 = dt.date(2026, 11, 1), dt.date(2026, 11, 20), dt.date(2026, 11, 10)
    with db.begin() as conn:
        writer.write(conn, {("alice", "cdap", "T18"): d1, ("bob", "afas", "declarer"): d1})
    with db.begin() as conn:
        writer.write(conn, {("alice", "cdap", "T18"): d2})
    with db.begin() as conn:
        writer.write(conn, {("alice", "cdap", "T18"): d3})  # older: ignored
    with Session(db) as session:
        assert last_uses(session, ["alice", "bob", "carol"]) == {
            ("alice", "cdap", "T18"): d2,
            ("bob", "afas", "declarer"): d1,
        }
        assert last_uses(session, ["carol"]) == {}
        assert last_uses(session, []) == {}


def test_reader_finds_logins_the_log_holds_as_pseudonyms(db: Engine) -> None:
    # R-CNIL-1: a login masked in the decision log is found through the masker.
    masker = Masker("email", "key")
    login = "jean.dupont@mairie.fr"
    pseudonym = masker.mask_field("user", login)
    assert pseudonym != login
    with db.begin() as conn:
        LastUseWriter(db.dialect.name).write(
            conn, {(pseudonym, "cdap", "T1"): dt.date(2026, 12, 1)}
        )
    with Session(db) as session:
        assert last_uses(session, [login], masker=masker) == {
            (login, "cdap", "T1"): dt.date(2026, 12, 1)
        }
        assert last_uses(session, [login]) == {}


def test_the_writer_skips_malformed_entries(db: Engine) -> None:
    # A last use never stops a decision from being logged.
    entries = [_check(), {"kind": "check", "allowed": True, "user": "x", "at": "garbage"}]
    with db.begin() as conn:
        LastUseWriter(db.dialect.name).write_entries(conn, entries)
    with Session(db) as session:
        rows = session.execute(select(LastUse.login, LastUse.service, LastUse.role)).all()
    assert [tuple(r) for r in rows] == [("alice", "cdap", "T18")]


# -- kept by the shipper -------------------------------------------------------------------------


def _rows(db: Engine) -> dict[tuple[str, str, str], dt.date]:
    with Session(db) as session:
        rows = session.execute(select(LastUse.login, LastUse.service, LastUse.role, LastUse.day))
        return {(login, service, role): day for login, service, role, day in rows}


def test_the_shipper_upserts_last_uses_with_the_decisions(tmp_path: Path, db: Engine) -> None:
    # R-CNIL-1: shipping a batch upserts its uses, latest day kept; shipping it again (after a
    # crash) changes nothing.
    wal = WalLog(tmp_path / "log", "buffered")
    try:
        ts = time.time()
        wal.record_many(
            [
                _check("alice", ts=ts),  # type: ignore[list-item]
                _check("alice", ts=ts, allowed=False, grants=[]),  # type: ignore[list-item]
                _check("bob", [["g", "afas", "declarer", "group"]], ts=ts),  # type: ignore[list-item]
            ]
        )
        shipper = Shipper(wal.directory, db, wal)
        assert shipper.ship_once().shipped == 3
        today = paris_day(ts)
        assert _rows(db) == {("alice", "cdap", "T18"): today, ("bob", "afas", "declarer"): today}
        (segment,) = wal.segments()
        segment.shipped = 0  # the offset lost: everything shipped again
        assert shipper.ship_once().shipped == 3
        assert _rows(db) == {("alice", "cdap", "T18"): today, ("bob", "afas", "declarer"): today}
    finally:
        wal.close()


def test_pruning_the_decision_log_keeps_last_uses(tmp_path: Path, db: Engine) -> None:
    # R-CNIL-2: the last uses are their own table; the log's retention does not touch them.
    wal = WalLog(tmp_path / "log", "buffered")
    try:
        ts = time.time()
        wal.record(_check("alice", ts=ts))  # type: ignore[arg-type]
        Shipper(wal.directory, db, wal).ship_once()
    finally:
        wal.close()
    # A retention of one month, two months from now: this month's decisions go.
    later = paris_today() + dt.timedelta(days=62)
    report = Retention(db, 1, today=lambda: later).prune()
    assert report.deleted + len(report.dropped) >= 1
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(DecisionRecord)).scalar_one() == 0
    assert _rows(db) == {("alice", "cdap", "T18"): paris_day(ts)}


def test_a_last_use_that_cannot_be_read_never_stops_its_decision(
    tmp_path: Path, db: Engine
) -> None:
    # An allowed check whose grants are garbage still ships; only its use is skipped.
    wal = WalLog(tmp_path / "log", "buffered")
    try:
        wal.record_many(
            [
                _check("alice", grants=[["only-one"]]),  # type: ignore[list-item]
                _check("bob", grants="nonsense"),  # type: ignore[list-item, arg-type]
            ]
        )
        report = Shipper(wal.directory, db, wal).ship_once()
    finally:
        wal.close()
    assert (report.shipped, report.rejected) == (2, 0)
    assert _rows(db) == {}


def test_served_checks_become_last_uses_found_by_login(
    demo_db: str, clean_env: None, tmp_path: Path
) -> None:
    # R-CNIL-1, end to end: an allowed check answered by the service, shipped, read back by
    # login (the log holds it as a pseudonym: users are masked); a denial adds nothing.
    login = "bruno.petit"
    log = WalLog(tmp_path / "log", "buffered")
    app: Flask = create_app(
        {
            "database_url": demo_db,
            "refresh_interval": 0,
            "verify_orgs": 0,
            "log_mask": "email,user",
            "log_mask_key": "k",
        },
        decision_log=log,
    )
    db: Engine = services(app).db
    try:
        client = app.test_client()
        allowed = client.post("/v1/check", json={"user": login, "service": "cdap"}).get_json()
        assert allowed["allowed"] is True, allowed
        denied = client.post("/v1/check", json={"user": login, "service": "dgfip"}).get_json()
        assert denied["allowed"] is False, denied
        Shipper(log.directory, db, log).ship_once()
        roles = {(g["service"], g["role"]) for g in allowed["grants"]}
        assert roles
        with Session(db) as session:
            found = last_uses(session, [login], masker=Masker("email,user", "k"))
        assert found == {(login, s, r): paris_today() for s, r in roles}
        assert all(key[0] != login for key in _rows(db))  # the table holds the pseudonym
    finally:
        log.close()
        db.dispose()


def test_many_logins_are_read_in_one_pass(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # R-CNIL-1: a national report asks for more logins than an IN list holds: the reader scans
    # the table once, and answers exactly what the lists would.
    day = dt.date(2026, 11, 30)
    uses = {(f"user{n}", "cdap", "T1"): day for n in range(30)}
    with db.begin() as conn:
        LastUseWriter(db.dialect.name).write(conn, uses)
    asked = [f"user{n}" for n in range(0, 40, 2)]
    with Session(db) as session:
        by_lists = last_uses(session, asked)
        monkeypatch.setattr(last_use, "_SCAN", 3)
        monkeypatch.setattr(last_use, "_CHUNK", 4)
        assert last_uses(session, asked) == by_lists
        monkeypatch.setattr(last_use, "_SCAN", 1000)
        assert last_uses(session, asked) == by_lists
    assert by_lists == {(f"user{n}", "cdap", "T1"): day for n in range(0, 30, 2)}


def test_the_shipper_upserts_a_use_once_a_day(tmp_path: Path, db: Engine) -> None:
    # R-CNIL-1: a (login, service, role) this shipper stored today is not upserted again (one
    # upsert a day per process in steady traffic); a new shipper, or a new day, upserts it.
    wal = WalLog(tmp_path / "log", "buffered")
    try:
        shipper = Shipper(wal.directory, db, wal)
        wal.record(_check("alice"))  # type: ignore[arg-type]
        shipper.ship_once()
        with db.begin() as conn:
            conn.execute(LastUse.__table__.delete())
        wal.record(_check("alice"))  # type: ignore[arg-type]
        shipper.ship_once()
        assert _rows(db) == {}  # remembered: not written again
        wal.record(_check("alice"))  # type: ignore[arg-type]
        Shipper(wal.directory, db, wal).ship_once()
        assert _rows(db) == {("alice", "cdap", "T18"): paris_today()}
    finally:
        wal.close()
    writer = LastUseWriter(db.dialect.name)
    yesterday = time.time() - 86400
    entries = [_check("bob", ts=yesterday)]
    assert writer.uses(entries) == {("bob", "cdap", "T18"): paris_day(yesterday)}
    writer.committed(writer.uses(entries))
    assert writer.uses(entries) == {}
    assert writer.uses([_check("bob")]) == {("bob", "cdap", "T18"): paris_day(time.time())}
