"""The write-ahead decision log (pdp.records.decision_log) against real files, processes and
databases.

``WalLog`` appends each decision to this process's segment file before ``record`` returns, and
makes it durable in groups (``sync``: before returning). ``Shipper`` copies complete lines into
the ``decision_log`` table, idempotently, deletes the segments it finished, and takes over the
segments of processes that died (nobody holds their ``flock``). An entry it cannot read, or
that the database refuses, is set aside in ``rejected.jsonl`` and everything after it ships; an
unavailable database sets nothing aside. Each test that ships runs on SQLite and, when
``PDP_TEST_POSTGRES_URL`` is set, on PostgreSQL.
"""

from __future__ import annotations

import base64
import datetime as dt
import errno
import fcntl
import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import DecisionRecord
from pdp.cli import cli
from pdp.core.masking import Masker
from pdp.records.decision_log import LogUnavailable, Shipper, WalLog
from pdp.records.decision_log import files as module
from pdp.web.app import create_app
from pdp.web.container import services

SEGMENT_NAME = re.compile(r"^(\d{20})-(\d+)-([0-9a-f]{8})\.log$")
ROOT = Path(__file__).resolve().parents[2]


def entry(n: int = 0, **fields: Any) -> dict[str, Any]:
    """A decision entry as pdp.services.decisions logs one, with a fresh id."""
    return {
        "decision_id": secrets.token_hex(16),
        "ts": time.time(),
        "kind": "check",
        "organisation": "CCAS",
        "user": f"user.{n}",
        "service": "cdap",
        "role": "T1",
        "allowed": n % 2 == 0,
        "reason": "ALLOWED" if n % 2 == 0 else "ROLE_NOT_GRANTED",
        "grants": [],
        "revision": 1,
        **fields,
    }


def segments(directory: Path) -> list[Path]:
    """The segment files of ``directory``, oldest first."""
    return sorted(directory.glob("*.log"))


def lines(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path.name} ends in a partial line"
    return [orjson.loads(line) for line in data.splitlines()]


def shipped_ids(db: Engine) -> list[str]:
    """Every decision id in the decision_log table (a list: duplicates would show)."""
    with db.connect() as conn:
        return list(conn.execute(select(DecisionRecord.decision_id)).scalars())


def rejected(directory: Path) -> list[dict[str, Any]]:
    """The records of ``directory``'s rejected.jsonl (each line must be a JSON object)."""
    path = directory / "rejected.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def rejected_metric(cause: str) -> float:
    return REGISTRY.get_sample_value("pdp_decision_log_rejected_total", {"cause": cause}) or 0.0


def row_count(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(DecisionRecord)).scalar_one())


@pytest.fixture
def wal(tmp_path: Path) -> Iterator[WalLog]:
    """A buffered WalLog on ``tmp_path / "log"``, closed after the test."""
    log = WalLog(tmp_path / "log", "buffered")
    yield log
    log.close()


# -- writing -----------------------------------------------------------------------------------


def test_entries_land_in_order_and_a_batch_is_one_write(
    wal: WalLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[bytes] = []
    real = module._write_all

    def counting(fd: int, data: bytes) -> None:
        writes.append(bytes(data))
        real(fd, data)

    monkeypatch.setattr(module, "_write_all", counting)
    singles = [entry(n) for n in range(3)]
    batch = [entry(n) for n in range(3, 8)]
    for e in singles:
        wal.record(e)
        # On file when record returns (in the page cache: no flush needed to read it back).
        (segment,) = segments(wal.directory)
        assert lines(segment)[-1]["decision_id"] == e["decision_id"]
    wal.record_many(batch)
    wal.record_many([])  # nothing to write: no write at all

    assert len(writes) == 4  # three entries, then the batch of five in a single write
    assert writes[-1].count(b"\n") == 5
    (segment,) = segments(wal.directory)
    m = SEGMENT_NAME.match(segment.name)
    assert m is not None, segment.name
    assert int(m.group(2)) == os.getpid()
    logged = lines(segment)
    assert [e["decision_id"] for e in logged] == [e["decision_id"] for e in singles + batch]
    assert logged[4] == batch[1]


def test_sync_record_returns_only_once_its_entry_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fdatasync is observed (and slowed down): after record() returns, a completed fdatasync
    # must cover every byte of the segment. A "sync" that returned early would fail this.
    real = os.fdatasync
    synced: dict[int, int] = {}  # fd -> the file size the last completed fdatasync covered

    def observed(fd: int) -> None:
        size = os.fstat(fd).st_size
        time.sleep(0.05)
        real(fd)
        synced[fd] = max(synced.get(fd, 0), size)

    monkeypatch.setattr(os, "fdatasync", observed)
    log = WalLog(tmp_path, "sync", flush_interval=10.0)  # the flusher waits for work, not time
    try:
        for n in range(5):
            log.record(entry(n))
            (segment,) = log.segments()
            assert synced.get(segment.fd, 0) >= os.fstat(segment.fd).st_size
            assert log._durable >= log._written
        log.record_many([entry(n) for n in range(5, 10)])
        (segment,) = log.segments()
        assert synced[segment.fd] == os.fstat(segment.fd).st_size
        assert len(lines(segment.path)) == 10
    finally:
        log.close()


def test_buffered_record_does_not_wait_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The counterpart of the test above: with fdatasync stuck, buffered still answers (the entry
    # is in the page cache), and it is made durable once the disk answers again.
    real = os.fdatasync
    disk = threading.Event()

    def stuck(fd: int) -> None:
        assert disk.wait(10)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", stuck)
    log = WalLog(tmp_path, "buffered", flush_interval=0.01)
    try:
        log.record(entry())
        assert log._durable < log._written
        (segment,) = segments(tmp_path)
        assert len(lines(segment)) == 1
        disk.set()
        deadline = time.monotonic() + 10
        while log._durable < log._written and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log._durable == log._written
    finally:
        disk.set()
        log.close()


def test_sync_gives_up_when_the_disk_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.fdatasync
    disk = threading.Event()

    def stuck(fd: int) -> None:
        assert disk.wait(10)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", stuck)
    log = WalLog(tmp_path, "sync", sync_timeout=0.2)
    try:
        with pytest.raises(LogUnavailable) as caught:
            log.record(entry())
        assert caught.value.code == "DECISION_LOG_UNAVAILABLE"
        assert log.failures == 1
    finally:
        disk.set()
        log.close()


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_a_failed_write_leaves_no_partial_line(
    tmp_path: Path, db: Engine, monkeypatch: pytest.MonkeyPatch, batch: bool
) -> None:
    log = WalLog(tmp_path, "buffered")
    real = module._write_all

    def disk_full(fd: int, data: bytes) -> None:
        real(fd, data[: len(data) // 2 + 1])  # past the first line of a batch
        raise OSError(errno.ENOSPC, "No space left on device")

    before, after = entry(1), entry(2)
    failed = [entry(n) for n in range(3, 6)]
    try:
        log.record(before)
        monkeypatch.setattr(module, "_write_all", disk_full)
        with pytest.raises(LogUnavailable) as caught:
            if batch:
                log.record_many(failed)
            else:
                log.record(failed[0])
        monkeypatch.setattr(module, "_write_all", real)
        assert caught.value.code == "DECISION_LOG_UNAVAILABLE"
        assert log.failures == 1
        log.record(after)
        (segment,) = segments(tmp_path)
        logged = lines(segment)  # no partial line: every line is a whole entry
        assert [e["decision_id"] for e in logged] == [before["decision_id"], after["decision_id"]]
        report = Shipper(tmp_path, db, log).ship_once()
        assert (report.shipped, report.rejected) == (2, 0)
    finally:
        log.close()
    assert sorted(shipped_ids(db)) == sorted([before["decision_id"], after["decision_id"]])


# -- shipping ----------------------------------------------------------------------------------


def test_rotation_then_shipping_deletes_the_sealed_segments(tmp_path: Path, db: Engine) -> None:
    log = WalLog(tmp_path, "buffered", segment_bytes=1000)
    shipper = Shipper(tmp_path, db, log)
    written = [entry(n) for n in range(30)]
    try:
        for e in written[:20]:
            log.record(e)
        log.record_many(written[20:25])
        files = segments(tmp_path)
        assert len(files) >= 3
        assert all(f.stat().st_size <= 1000 for f in files[:-1])
        assert [e["decision_id"] for f in files for e in lines(f)] == [
            e["decision_id"] for e in written[:25]
        ]

        report = shipper.ship_once()
        assert (report.shipped, report.segments_done, report.orphans) == (25, len(files) - 1, 0)
        assert segments(tmp_path) == files[-1:]  # the one being written stays
        assert log.pending_bytes == 0
        assert sorted(shipped_ids(db)) == sorted(e["decision_id"] for e in written[:25])

        for e in written[25:]:
            log.record(e)
        assert shipper.ship_once().shipped == 5
        assert shipper.ship_once().shipped == 0
    finally:
        log.close()
    assert sorted(shipped_ids(db)) == sorted(e["decision_id"] for e in written)
    assert segments(tmp_path) == []  # close: shipped to the end, so deleted


def test_shipping_again_after_losing_the_offsets_adds_nothing_twice(
    wal: WalLog, db: Engine
) -> None:
    written = [entry(n) for n in range(10)]
    wal.record_many(written)
    shipper = Shipper(wal.directory, db, wal)
    assert shipper.ship_once().shipped == 10
    # A crash after the insert, before the offset was kept: everything is shipped again.
    (segment,) = wal.segments()
    segment.shipped = 0
    module._offset_path(segment.path).unlink()
    assert shipper.ship_once().shipped == 10  # sent again, inserted once
    ids = shipped_ids(db)
    assert sorted(ids) == sorted(e["decision_id"] for e in written)


def test_an_orphan_shipped_twice_after_a_crash_mid_shipping_is_inserted_once(
    tmp_path: Path, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = [entry(n) for n in range(50)]
    orphan = tmp_path / "00000000000000000001-999999-0000abcd.log"
    orphan.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in written))
    # Two chunks: the first is inserted and its offset kept, the second is inserted and the
    # shipper dies before it keeps its offset.
    shipper = Shipper(tmp_path, db, chunk_bytes=orphan.stat().st_size * 3 // 5)
    real = module._write_offset
    kept: list[int] = []

    def dies_on_the_second(path: Path, offset: int) -> None:
        if kept:
            raise OSError(errno.EIO, "crash before the offset was kept")
        kept.append(offset)
        real(path, offset)

    monkeypatch.setattr(module, "_write_offset", dies_on_the_second)
    with pytest.raises(OSError):
        shipper.ship_once()
    monkeypatch.setattr(module, "_write_offset", real)
    assert row_count(db) == 50  # both chunks made it to the table...
    assert orphan.exists()  # ...but the segment was not finished
    assert int(module._offset_path(orphan).read_text()) == kept[0]

    report = Shipper(tmp_path, db).ship_once()
    assert (report.orphans, report.rejected) == (1, 0)
    assert 0 < report.shipped < 50  # only what followed the kept offset was sent again
    assert not orphan.exists()
    assert not module._offset_path(orphan).exists()
    assert sorted(shipped_ids(db)) == sorted(e["decision_id"] for e in written)


# -- orphans: segments of processes that died --------------------------------------------------

RECORD_THEN = textwrap.dedent(
    """
    import os, secrets, sys, time
    from pdp.records.decision_log import WalLog
    log = WalLog(sys.argv[1], "buffered")
    ids = []
    for n in range(int(sys.argv[2])):
        ids.append(secrets.token_hex(16))
        log.record({"decision_id": ids[-1], "ts": time.time(), "kind": "check",
                    "user": "u", "service": "cdap", "allowed": True, "reason": "ALLOWED",
                    "revision": 1})
    print(" ".join(ids), flush=True)
    if sys.argv[3] == "die":
        os._exit(0)  # no close, no atexit: the segment is left as a crash leaves it
    sys.stdin.read()  # alive, holding the segment's lock, until the test closes stdin
    os._exit(0)
    """
)


def recorder(directory: Path, count: int, then: str) -> subprocess.Popen[str]:
    """A python process that logs ``count`` decisions in ``directory``, prints their ids, then
    dies at once (``die``) or waits (``wait``) until its standard input is closed."""
    return subprocess.Popen(
        [sys.executable, "-c", RECORD_THEN, str(directory), str(count), then],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_the_segment_of_a_dead_process_is_shipped_and_deleted(wal: WalLog, db: Engine) -> None:
    child = recorder(wal.directory, 7, "die")
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    ids = out.split()
    assert len(ids) == 7
    (orphan,) = segments(wal.directory)
    m = SEGMENT_NAME.match(orphan.name)
    assert m is not None and int(m.group(2)) == child.pid

    mine = entry()
    wal.record(mine)  # this process's own segment is not an orphan
    report = Shipper(wal.directory, db, wal).ship_once()
    assert (report.orphans, report.shipped, report.rejected) == (1, 8, 0)
    assert not orphan.exists()
    assert not module._offset_path(orphan).exists()
    assert [s.path for s in wal.segments()] == segments(wal.directory)  # only ours is left
    assert sorted(shipped_ids(db)) == sorted([*ids, mine["decision_id"]])


def test_a_segment_held_by_a_live_process_is_not_touched(tmp_path: Path, db: Engine) -> None:
    child = recorder(tmp_path, 5, "wait")
    try:
        assert child.stdout is not None
        ids = child.stdout.readline().split()
        assert len(ids) == 5
        (segment,) = segments(tmp_path)
        size = segment.stat().st_size
        report = Shipper(tmp_path, db).ship_once()
        assert (report.orphans, report.shipped) == (0, 0)
        assert segment.exists() and segment.stat().st_size == size
        assert not module._offset_path(segment).exists()
        assert row_count(db) == 0
    finally:
        child.kill()  # now it dies, without shipping
        child.communicate(timeout=60)
    report = Shipper(tmp_path, db).ship_once()
    assert (report.orphans, report.shipped) == (1, 5)
    assert sorted(shipped_ids(db)) == sorted(ids)
    assert segments(tmp_path) == []


def test_a_torn_last_line_of_an_orphan_is_dropped_and_counted(tmp_path: Path, db: Engine) -> None:
    whole = [entry(n) for n in range(3)]
    torn = orjson.dumps(entry(3))
    orphan = tmp_path / "00000000000000000001-999999-00000001.log"
    orphan.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in whole) + torn[: len(torn) // 2])
    report = Shipper(tmp_path, db).ship_once()
    assert (report.orphans, report.shipped, report.torn, report.rejected) == (1, 3, 1, 0)
    assert not orphan.exists()
    assert sorted(shipped_ids(db)) == sorted(e["decision_id"] for e in whole)
    assert rejected(tmp_path) == []  # never answered: nothing to keep


def test_an_unreadable_line_is_kept_in_rejected_jsonl(tmp_path: Path, db: Engine) -> None:
    good = [entry(1), entry(2)]
    missing_key = {k: v for k, v in entry(3).items() if k != "allowed"}
    bad = [
        b"{not json at all",
        orjson.dumps(missing_key),
        orjson.dumps(entry(4, ts=1e308)),  # a time no integer holds (inf microseconds)
        b'{"decision_id": "\xff\xfe"}',  # not UTF-8
    ]
    orphan = tmp_path / "00000000000000000001-999999-00000002.log"
    orphan.write_bytes(b"\n".join([orjson.dumps(good[0]), *bad, orjson.dumps(good[1])]) + b"\n")
    before = rejected_metric("unreadable")
    report = Shipper(tmp_path, db).ship_once()
    assert (report.orphans, report.shipped, report.rejected) == (1, 2, 4)
    assert sorted(shipped_ids(db)) == sorted(e["decision_id"] for e in good)
    assert rejected_metric("unreadable") == before + 4
    records = rejected(tmp_path)
    assert [r["cause"] for r in records] == ["unreadable"] * 4
    assert [r["segment"] for r in records] == [orphan.name] * 4
    offsets = [r["offset"] for r in records]
    assert offsets == sorted(offsets) and offsets[0] == len(orjson.dumps(good[0])) + 1
    assert records[0]["line"] == "{not json at all"
    assert records[1]["entry"] == missing_key
    assert records[1]["error"] == {"class": "KeyError", "message": "'allowed'"}
    assert records[2]["entry"]["ts"] == 1e308
    assert records[2]["error"]["class"] == "OverflowError"
    assert base64.b64decode(records[3]["line_base64"]) == bad[3]
    assert not orphan.exists()
    assert segments(tmp_path) == []  # rejected.jsonl is not taken for a segment


def test_a_lock_is_what_makes_a_segment_someone_elses(tmp_path: Path, db: Engine) -> None:
    # The same rule without a child process: a lock on another open file description.
    held = tmp_path / "00000000000000000001-999999-00000003.log"
    held.write_bytes(orjson.dumps(entry()) + b"\n")
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert Shipper(tmp_path, db).ship_once().orphans == 0
        assert held.exists()
    finally:
        os.close(fd)
    assert Shipper(tmp_path, db).ship_once().orphans == 1
    assert not held.exists()
    assert row_count(db) == 1


# -- entries the database refuses -------------------------------------------------------------

# Entries whose JSON is fine but whose row the database refuses: one of them used to stop its
# segment's shipping for good. Written through the log object, as a worker writes.
POISONS = {
    "nul": {"user": "a\u0000b"},  # PostgreSQL text holds no NUL (SQLite stores it)
    "null_kind": {"kind": None},  # NOT NULL constraint
    "wrong_type": {"organisation": {"code": "CCAS"}},  # an object has no SQL type
    "out_of_range": {"revision": 1e23},  # beyond a BIGINT
}


def refuses(backend: str, poison: str) -> bool:
    return not (poison == "nul" and backend == "sqlite")


@pytest.mark.parametrize("poison", POISONS)
def test_an_entry_the_database_refuses_is_set_aside_and_everything_after_it_ships(
    wal: WalLog, db: Engine, backend: str, poison: str
) -> None:
    before = [entry(n) for n in range(40)]
    bad = entry(99, **POISONS[poison])
    after = [entry(n) for n in range(40, 100)]
    wal.record_many(before)
    wal.record(bad)
    for e in after:
        wal.record(e)
    refused = refuses(backend, poison)
    counted = rejected_metric("refused")

    report = Shipper(wal.directory, db, wal).ship_once()

    expected = [e["decision_id"] for e in before + after] + (
        [] if refused else [bad["decision_id"]]
    )
    assert sorted(shipped_ids(db)) == sorted(expected)
    assert (report.shipped, report.rejected) == (len(expected), int(refused))
    assert wal.pending_bytes == 0
    assert rejected_metric("refused") == counted + refused
    records = rejected(wal.directory)
    if not refused:
        assert records == []
        return
    (record,) = records
    assert record["entry"] == orjson.loads(orjson.dumps(bad))  # the entry itself, whole
    assert record["cause"] == "refused"
    assert record["segment"] == wal.segments()[0].path.name
    assert record["offset"] == sum(len(orjson.dumps(e)) + 1 for e in before)
    error = record["error"]
    assert set(error) == {"class", "message"}
    # The driver's class (the builtin OverflowError: sqlite3's for an integer beyond 64 bits).
    assert re.fullmatch(r"(sqlite3|psycopg)(\.\w+)+|OverflowError", error["class"]), error
    assert error["message"] and "Traceback" not in error["message"]
    assert "INSERT" not in error["message"]  # the driver's message, not the statement
    at = dt.datetime.fromisoformat(record["rejected_at"])
    assert abs(at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_poison_anywhere_in_any_chunk_sets_aside_only_the_poison(
    tmp_path: Path, db: Engine, backend: str
) -> None:
    # First, adjacent and last lines of a segment, over several chunks: bisection must find
    # each one, and ship every other entry exactly once.
    kinds = [k for k in POISONS if refuses(backend, k)]
    layout: list[dict[str, Any]] = []
    poisoned: list[dict[str, Any]] = []
    for n in range(120):
        if n in (0, 1, 50, 51, 52, 89, 119):
            poisoned.append(entry(n, **POISONS[kinds[len(poisoned) % len(kinds)]]))
            layout.append(poisoned[-1])
        else:
            layout.append(entry(n))
    orphan = tmp_path / "00000000000000000001-999999-00000004.log"
    orphan.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in layout))
    report = Shipper(tmp_path, db, chunk_bytes=orphan.stat().st_size // 3).ship_once()
    good = [e["decision_id"] for e in layout if e not in poisoned]
    assert (report.orphans, report.shipped, report.rejected) == (1, len(good), len(poisoned))
    assert sorted(shipped_ids(db)) == sorted(good)
    records = rejected(tmp_path)
    assert [r["entry"]["decision_id"] for r in records] == [e["decision_id"] for e in poisoned]
    assert not orphan.exists()


def test_rejected_jsonl_stays_json_lines_after_a_torn_write(tmp_path: Path, db: Engine) -> None:
    # A crash in the middle of an append left half a record: it is cut off before the next one
    # (its entries were not set aside yet: their segment's offset had not moved past them).
    kept = b'{"rejected_at":"2026-11-24T10:00:00.000Z","cause":"refused","entry":{}}\n'
    (tmp_path / "rejected.jsonl").write_bytes(kept + b'{"rejected_at":"2026-11-24T10:00:0')
    bad = entry(2, kind=None)
    orphan = tmp_path / "00000000000000000001-999999-00000006.log"
    orphan.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in [entry(1), bad, entry(3)]))
    report = Shipper(tmp_path, db).ship_once()
    assert (report.shipped, report.rejected) == (2, 1)
    data = (tmp_path / "rejected.jsonl").read_bytes()
    assert data.startswith(kept) and data.endswith(b"\n")
    records = rejected(tmp_path)  # every line is JSON
    assert [r["entry"].get("decision_id") for r in records] == [None, bad["decision_id"]]


def unavailable_store(state: str, db: Engine, tmp_path: Path) -> Engine:
    """An engine on a store that accepts no row at all: ``down`` (nothing answers at its
    address) or ``no_table`` (a database without the schema)."""
    url = db.url
    if url.get_backend_name() == "sqlite":
        path = tmp_path / ("absent/pdp.sqlite3" if state == "down" else "empty.sqlite3")
        return make_engine(f"sqlite:///{path}")
    url = url.set(port=1) if state == "down" else url.set(database="postgres")
    return make_engine(url.render_as_string(hide_password=False))


@pytest.mark.parametrize("state", ["down", "no_table"])
def test_an_unavailable_database_sets_nothing_aside(
    wal: WalLog, db: Engine, tmp_path: Path, state: str
) -> None:
    # Every row fails, poison or not: that is the store's fault, not the rows'. The entries stay
    # in their segment (nothing set aside, the offset unmoved) and ship once the store is back.
    written = [entry(1), entry(2, kind=None), entry(3)]
    wal.record_many(written)
    store = unavailable_store(state, db, tmp_path)
    counted = rejected_metric("refused")
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver says
            Shipper(wal.directory, store, wal).ship_once()
    finally:
        store.dispose()
    assert not (wal.directory / "rejected.jsonl").exists()
    assert rejected_metric("refused") == counted
    (segment,) = wal.segments()
    assert segment.shipped == 0 and wal.pending_bytes == segment.size
    assert row_count(db) == 0

    report = Shipper(wal.directory, db, wal).ship_once()  # the store is back
    assert (report.shipped, report.rejected) == (2, 1)
    assert sorted(shipped_ids(db)) == sorted([written[0]["decision_id"], written[2]["decision_id"]])
    assert [r["entry"]["decision_id"] for r in rejected(wal.directory)] == [
        written[1]["decision_id"]
    ]


def test_pdp_logs_shows_the_rejected_entries_and_where_they_are(
    tmp_path: Path, db_url: str, db: Engine, clean_env: None
) -> None:
    directory = tmp_path / "log"
    directory.mkdir()
    written = [entry(1), entry(2, kind=None), entry(3)]
    orphan = directory / "00000000000000000001-999999-00000005.log"
    orphan.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in written))
    env = {"PDP_DATABASE_URL": db_url, "PDP_DECISION_LOG_DIR": str(directory)}
    path = directory / "rejected.jsonl"

    status = CliRunner().invoke(cli, ["logs", "status"], env=env)
    assert status.exit_code == 0, status.output
    assert status.output == (
        f"segments: 1 waiting, {orphan.stat().st_size} bytes not shipped\nrejected: none ({path})\n"
    )

    shipped = CliRunner().invoke(cli, ["logs", "ship"], env=env)
    assert shipped.exit_code == 0, shipped.output
    first, second = shipped.output.splitlines()
    assert first == "shipped 2 decisions from 1 segments; 1 entries set aside"
    assert second.startswith(f"rejected: 1 entries in {path}, the last at ")
    assert second.endswith("IntegrityError: NOT NULL constraint failed: decision_log.kind") or (
        'NotNullViolation: null value in column "kind"' in second
    )

    status = CliRunner().invoke(cli, ["logs", "status"], env=env)
    assert status.exit_code == 0, status.output
    assert status.output == f"segments: none waiting\n{second}\n"
    assert sorted(shipped_ids(db)) == sorted([written[0]["decision_id"], written[2]["decision_id"]])


# -- personal data -----------------------------------------------------------------------------


def test_an_email_login_never_reaches_the_file_nor_the_table(
    demo_db: str, clean_env: None, tmp_path: Path
) -> None:
    email = "jean.dupont@example.fr"
    log = WalLog(tmp_path / "log", "buffered")
    app: Flask = create_app(
        {"database_url": demo_db, "refresh_interval": 0, "verify_orgs": 0, "log_mask_key": "k"},
        decision_log=log,
    )
    db: Engine = services(app).db
    try:
        client = app.test_client()
        single = client.post("/v1/check", json={"user": email, "service": "cdap"})
        assert single.status_code == 200, single.get_data(as_text=True)
        batch = client.post(
            "/v1/check/batch",
            json={
                "checks": [
                    {"user": email, "service": "afas"},
                    {"user": "bruno.petit", "service": "cdap", "role": "T99"},
                ]
            },
        )
        assert batch.status_code == 200, batch.get_data(as_text=True)
        (segment,) = segments(log.directory)
        text = segment.read_text()
        logged = lines(segment)
        assert len(logged) == 2  # the item with an unknown role is an error, not a decision
        assert email not in text and "@" not in text
        pseudonym = Masker("email", "k").pseudonym(email)
        assert [e["user"] for e in logged] == [pseudonym, pseudonym]
        assert logged[0]["decision_id"] == json.loads(single.get_data())["decision_id"]
        assert Shipper(log.directory, db, log).ship_once().shipped == 2
        with db.connect() as conn:
            rows = conn.execute(select(DecisionRecord.user, DecisionRecord.entry)).all()
        assert [user for user, _ in rows] == [pseudonym, pseudonym]
        assert all(email not in text for _, text in rows)
    finally:
        log.close()
        db.dispose()
