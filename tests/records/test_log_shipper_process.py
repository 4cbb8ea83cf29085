"""The instance's shipper (pdp.records.decision_log.process) against real files, processes and
databases: the segments of ``pdp serve``'s workers (``WalLog.hand_over``: ``*.served.log``)
shipped while they are live, up to their last complete line, by the one shipper that holds
``shipper.lock``, and by no other; a sealed one let go, then shipped to its end and deleted;
``pdp logs ship --follow`` as that shipper. Each test that ships runs on SQLite and, when
``PDP_TEST_POSTGRES_URL`` is set, on PostgreSQL. (The whole server: tests/e2e/test_log_shipper.py.)
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from pdp.adapters.sql.database import leave_checkpoints, make_engine, upgrade
from pdp.adapters.sql.models import DecisionRecord
from pdp.records.decision_log import Shipper, ShipperLock, WalLog
from pdp.records.decision_log import files as module
from pdp.records.decision_log.process import follow

ROOT = Path(__file__).resolve().parents[2]


def entry(n: int = 0) -> dict[str, Any]:
    """A decision entry as pdp.services.decisions logs one, with a fresh id."""
    return {
        "decision_id": secrets.token_hex(16),
        "ts": time.time(),
        "kind": "check",
        "organisation": "CCAS",
        "user": f"user.{n}",
        "service": "cdap",
        "role": "T1",
        "allowed": False,
        "reason": "ROLE_NOT_GRANTED",
        "grants": [],
        "revision": 1,
    }


def shipped_ids(db: Engine) -> list[str]:
    with db.connect() as conn:
        return list(conn.execute(select(DecisionRecord.decision_id)).scalars())


def wait_until(done: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[WalLog]:
    """A worker's log under ``pdp serve``: handed over to the instance's shipper."""
    log = WalLog(tmp_path / "log", "buffered", flush_interval=0.02)
    log.hand_over()
    yield log
    log.close()


def test_a_live_workers_segment_ships_up_to_its_last_complete_line(
    served: WalLog, db: Engine
) -> None:
    first = [entry(n) for n in range(5)]
    served.record_many(first)
    (segment,) = served.directory.glob("*.log")
    assert segment.name.endswith(".served.log")
    # A line being written: another process sees the file grow a part at a time.
    rest = orjson.dumps(entry(9)) + b"\n"
    with open(segment, "ab") as f:
        f.write(rest[:20])
    shipper = Shipper(served.directory, db, served=True)
    report = shipper.ship_once()
    assert (report.shipped, report.orphans, report.torn, report.rejected) == (5, 0, 0, 0)
    assert sorted(shipped_ids(db)) == sorted(e["decision_id"] for e in first)
    assert module._read_offset(segment) == segment.stat().st_size - 20
    assert segment.exists()  # live: its worker still writes it

    with open(segment, "ab") as f:
        f.write(rest[20:])
    report = shipper.ship_once()
    assert (report.shipped, report.orphans) == (1, 0)
    assert len(shipped_ids(db)) == 6  # nothing twice

    served.close()  # the worker stops: its segment is no one's, shipped already, then deleted
    report = shipper.ship_once()
    assert (report.shipped, report.orphans) == (0, 1)
    assert list(served.directory.glob("*.log")) == []


def test_no_other_shipper_touches_a_served_segment(served: WalLog, db: Engine) -> None:
    served.record(entry())
    (segment,) = served.directory.glob("*.log")
    assert Shipper(served.directory, db).ship_once().shipped == 0  # live
    served.close()
    assert segment.exists()
    # Dead too: only the instance's shipper ships a worker's segment, so that two never ship
    # the same bytes at once (one reading it live while the other takes it over).
    assert Shipper(served.directory, db).ship_once().shipped == 0
    assert shipped_ids(db) == []
    assert Shipper(served.directory, db, served=True).ship_once().orphans == 1


def test_a_sealed_segment_is_let_go_then_shipped_to_its_end_and_deleted(
    tmp_path: Path, db: Engine
) -> None:
    log = WalLog(tmp_path / "log", "buffered", flush_interval=0.02, segment_bytes=4096)
    log.hand_over()
    try:
        written = [entry(n) for n in range(40)]  # about 300 bytes each: several segments
        for e in written:
            log.record(e)
        wait_until(lambda: len(log.segments()) == 1, "the sealed segments let go")
        everything = sorted(tmp_path.joinpath("log").glob("*.log"))
        assert len(everything) > 1
        report = Shipper(log.directory, db, served=True).ship_once()
        assert report.shipped == 40 and report.orphans == len(everything) - 1
        assert sorted(tmp_path.joinpath("log").glob("*.log")) == everything[-1:]
        assert sorted(shipped_ids(db)) == sorted(e["decision_id"] for e in written)
    finally:
        log.close()


def test_the_workers_leave_the_wal_checkpoints_to_the_shipping_process(tmp_path: Path) -> None:
    # SQLite: under pdp serve no connection checkpoints on commit (leave_checkpoints, set by the
    # master before it forks); the shipping process copies the WAL into the database after
    # each round. Without it a worker's commit paid for the shipper's pages.
    path = tmp_path / "pdp.sqlite3"
    db = make_engine(f"sqlite:///{path}")
    try:
        upgrade(db)
        leave_checkpoints(db)
        with db.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").close()
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
        before = path.stat().st_size
        log = WalLog(tmp_path / "log", "buffered")
        log.hand_over()
        try:
            # Well past SQLite's default threshold of 1,000 pages.
            log.record_many([entry(n) for n in range(12_000)])
            assert Shipper(log.directory, db, served=True).ship_once().shipped == 12_000
            wal = Path(f"{path}-wal").stat().st_size
            assert wal > 1_000 * 4096 and path.stat().st_size == before  # all in the WAL still
            log.record_many([entry(n) for n in range(10)])
            follow(Shipper(log.directory, db), lambda _timeout: True)  # a round, the last one
        finally:
            log.close()
        assert path.stat().st_size > before + 1_000 * 4096  # copied into the database
        assert len(shipped_ids(db)) == 12_010
    finally:
        db.dispose()


def pdp(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from pdp.cli import main; main()", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run(*args: str, env: dict[str, str]) -> str:
    out, _ = pdp(*args, env=env).communicate(timeout=120)
    return out


def test_pdp_logs_ship_follow_is_the_directorys_shipper_until_stopped(
    served: WalLog, db_url: str, db: Engine
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDP_")}
    env.update(
        PDP_DATABASE_URL=db_url,
        PDP_DECISION_LOG_DIR=str(served.directory),
        PDP_DECISION_LOG_SHIP_INTERVAL="0.1",
    )
    first = [entry(n) for n in range(3)]
    served.record_many(first)
    follower = pdp("logs", "ship", "--follow", env=env)
    try:
        wait_until(lambda: len(shipped_ids(db)) == 3, "the live segment shipped")
        assert f"shipper: running (pid {follower.pid})" in run("logs", "status", env=env)
        # Beside it, a one-off pdp logs ship leaves the workers' segments to it.
        once = run("logs", "ship", env=env)
        assert f"left to the running shipper (pid {follower.pid})" in once, once
        later = entry(7)
        served.record(later)
        wait_until(lambda: later["decision_id"] in shipped_ids(db), "a later entry shipped")
    finally:
        follower.send_signal(signal.SIGTERM)
        out, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0, out
    assert "rejected: none" in out
    assert ShipperLock(served.directory).holder() is None
    assert sorted(shipped_ids(db)) == sorted(e["decision_id"] for e in [*first, later])
    served.close()
    # No shipper runs: a one-off pdp logs ship takes the worker's segment over.
    assert run("logs", "ship", env=env).startswith("shipped 0 decisions from 1 segments")
    assert list(served.directory.glob("*.log")) == []
