"""The write-ahead decision log (pdp.decision_log) against real files, processes and databases.

``WalLog`` appends each decision to this process's segment file before ``record`` returns, and
makes it durable in groups (``sync``: before returning). ``Shipper`` copies complete lines into
the ``decision_log`` table, idempotently, deletes the segments it finished, and takes over the
segments of processes that died (nobody holds their ``flock``). Each test that ships runs on
SQLite and, when ``PDP_TEST_POSTGRES_URL`` is set, on PostgreSQL.
"""

from __future__ import annotations

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
from flask import Flask
from sqlalchemy import Engine, func, select

from adapters.sql.models import DecisionRecord
from pdp import decision_log as module
from pdp.app import create_app
from pdp.decision_log import LogUnavailable, Shipper, WalLog
from pdp.masking import Masker

SEGMENT_NAME = re.compile(r"^(\d{20})-(\d+)-([0-9a-f]{8})\.log$")
ROOT = Path(__file__).resolve().parent.parent


def entry(n: int = 0, **fields: Any) -> dict[str, Any]:
    """A decision entry as pdp.queries logs one, with a fresh id."""
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
    from pdp.decision_log import WalLog
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
    assert (report.orphans, report.shipped, report.rejected) == (1, 3, 1)
    assert not orphan.exists()
    assert sorted(shipped_ids(db)) == sorted(e["decision_id"] for e in whole)


def test_an_unreadable_line_is_kept_in_rejected_jsonl(tmp_path: Path, db: Engine) -> None:
    good = [entry(1), entry(2)]
    missing_key = {k: v for k, v in entry(3).items() if k != "allowed"}
    bad = [b"{not json at all", orjson.dumps(missing_key)]
    orphan = tmp_path / "00000000000000000001-999999-00000002.log"
    orphan.write_bytes(b"\n".join([orjson.dumps(good[0]), *bad, orjson.dumps(good[1])]) + b"\n")
    report = Shipper(tmp_path, db).ship_once()
    assert (report.orphans, report.shipped, report.rejected) == (1, 2, 2)
    assert sorted(shipped_ids(db)) == sorted(e["decision_id"] for e in good)
    assert (tmp_path / "rejected.jsonl").read_bytes().splitlines() == bad
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
    db: Engine = app.extensions["pdp.db"]
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
