"""The decision log delivered to a SIEM over syslog (PDP_DECISION_LOG_SYSLOG), against a real
rsyslogd: RFC 5424 messages over TCP with octet-counted framing, every entry delivered, an entry
leaving its segment only once both the database and syslog have it, nothing lost while the
receiver is down (under load), the database's copy going on meanwhile."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select

from pdp.adapters.sql.models import DecisionRecord
from pdp.core.errors import ConfigurationError
from pdp.records.decision_log import Shipper, WalLog
from pdp.records.decision_log.syslog import SyslogForwarder

from support.rsyslog import Receiver, need_rsyslog


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    need_rsyslog()
    work = tmp_path / "rsyslog"
    work.mkdir()
    r = Receiver(work)
    r.start()
    yield r
    r.stop()


def entry() -> dict[str, Any]:
    return {
        "decision_id": secrets.token_hex(16),
        "ts": 1796202902.120512,  # 2026-12-02T09:15:02.120512Z
        "kind": "check",
        "organisation": "mairie-montreuil",
        "user": "bruno.petit",
        "service": "cdap",
        "role": "T18",
        "allowed": True,
        "reason": "ALLOWED",
        "grants": [],
        "revision": 1,
    }


def delivered(receiver: Receiver) -> list[str]:
    return [json.loads(m[5].strip())["decision_id"] for m in receiver.messages()]


def stored(db: Engine) -> set[str]:
    with db.connect() as conn:
        return set(conn.execute(select(DecisionRecord.decision_id)).scalars())


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_every_entry_reaches_syslog_as_an_rfc_5424_message_and_the_database_too(
    tmp_path: Path, db: Engine, receiver: Receiver
) -> None:
    wal = WalLog(tmp_path / "log", "buffered")
    shipper = Shipper(wal.directory, db, wal, forwarder=SyslogForwarder(receiver.url))
    try:
        entries = [entry() for _ in range(300)]
        wal.record_many(entries)
        report = shipper.ship_once()
        assert (report.shipped, report.forwarded) == (300, 300)
        ids = [e["decision_id"] for e in entries]
        assert wait_until(lambda: len(receiver.messages()) >= 300)
        assert delivered(receiver) == ids  # in order, each once
        pri, app, procid, msgid, when, _msg = receiver.messages()[0]
        assert (pri, app, msgid) == ("134", "pdp", "decision")  # local0.info
        assert procid.isdigit() and when.startswith("2026-12-02T09:15:02.120512")
        assert stored(db) == set(ids)
    finally:
        wal.close()


def test_a_segment_leaves_the_disk_only_once_syslog_has_it_too(
    tmp_path: Path, db: Engine, receiver: Receiver
) -> None:
    wal = WalLog(tmp_path / "log", "buffered", segment_bytes=4096)
    shipper = Shipper(wal.directory, db, wal, forwarder=SyslogForwarder(receiver.url))
    try:
        receiver.stop()
        entries = [entry() for _ in range(100)]
        for e in entries:
            wal.record(e)
        errors = metric("pdp_decision_log_forward_errors_total")
        report = shipper.ship_once()
        # The database has them all; syslog none: every segment stays, its offset kept.
        assert (report.shipped, report.forwarded, report.segments_done) == (100, 0, 0)
        assert metric("pdp_decision_log_forward_errors_total") > errors
        sealed = len(wal.segments()) - 1
        assert sealed > 1 and len(list(wal.directory.glob("*.log"))) == sealed + 1
        assert wal.unforwarded_bytes > 0
        receiver.start()
        report = shipper.ship_once()
        # Sent, confirmed at the next round only (the connection still open then).
        assert (report.forwarded, report.segments_done) == (100, 0)
        time.sleep(0.2)
        report = shipper.ship_once()
        assert (report.forwarded, report.segments_done) == (0, sealed)
        assert wal.unforwarded_bytes == 0
        assert wait_until(lambda: len(receiver.messages()) >= 100)
        assert delivered(receiver) == [e["decision_id"] for e in entries]
    finally:
        wal.close()


def test_nothing_is_lost_while_the_receiver_is_down_under_load(
    tmp_path: Path, db: Engine, receiver: Receiver
) -> None:
    """A writer records all along while the shipper runs on its thread; rsyslogd is stopped for
    a while, then started again on the same port: every entry reaches it (at least once), and
    the database's copy never waited for it."""
    wal = WalLog(tmp_path / "log", "buffered", segment_bytes=16 << 10)
    shipper = Shipper(
        wal.directory, db, wal, interval=0.05, forwarder=SyslogForwarder(receiver.url)
    )
    written: list[str] = []
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            batch = [entry() for _ in range(20)]
            wal.record_many(batch)
            written.extend(e["decision_id"] for e in batch)
            time.sleep(0.01)

    writer = threading.Thread(target=write)
    wal.record(entry())
    shipper.start()  # its own thread, every 50 ms, as in a worker
    writer.start()
    try:
        time.sleep(0.5)
        receiver.stop()
        down_at = len(written)
        time.sleep(1.0)
        # Meanwhile the database kept receiving what was written after the receiver went down.
        assert wait_until(lambda: len(stored(db) & set(written[down_at:])) > 0, 10)
        receiver.start()
        time.sleep(0.5)
        stop.set()
        writer.join()
        assert wait_until(lambda: set(written) <= set(delivered(receiver)), 30), len(
            set(written) - set(delivered(receiver))
        )
        assert wait_until(lambda: set(written) <= stored(db), 30)
    finally:
        stop.set()
        wal.close()


def test_an_orphan_goes_to_syslog_before_it_is_deleted(
    tmp_path: Path, db: Engine, receiver: Receiver
) -> None:
    """A segment left by a dead process: delivered and shipped, then deleted."""
    directory = tmp_path / "log"
    directory.mkdir()
    entries = [entry() for _ in range(10)]
    orphan = directory / "00000000000000000001-999999-deadbeef.log"
    orphan.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in entries))
    shipper = Shipper(directory, db, forwarder=SyslogForwarder(receiver.url))
    report = shipper.ship_once()
    assert (report.shipped, report.forwarded, report.orphans) == (10, 10, 0)
    assert orphan.exists()  # until the next round confirms what syslog was sent
    time.sleep(0.2)
    report = shipper.ship_once()
    assert (report.shipped, report.forwarded, report.orphans) == (0, 0, 1)
    assert not orphan.exists()
    assert wait_until(lambda: len(receiver.messages()) >= 10)
    assert delivered(receiver) == [e["decision_id"] for e in entries]


def test_the_instance_shipper_delivers_the_workers_segments_too(
    tmp_path: Path, db: Engine, receiver: Receiver
) -> None:
    """Under pdp serve (a worker's log handed over, one shipper for the instance): every
    entry of the live and the sealed segments reaches syslog, in order; a sealed segment
    leaves the disk only once syslog has it too."""
    wal = WalLog(tmp_path / "log", "buffered", flush_interval=0.02, segment_bytes=4096)
    wal.hand_over()
    shipper = Shipper(wal.directory, db, forwarder=SyslogForwarder(receiver.url), served=True)
    try:
        receiver.stop()
        entries = [entry() for _ in range(100)]
        for e in entries:
            wal.record(e)
        assert wait_until(lambda: len(wal.segments()) == 1)  # the sealed ones let go
        every = sorted(wal.directory.glob("*.log"))
        assert len(every) > 2
        report = shipper.ship_once()
        assert (report.shipped, report.forwarded, report.orphans) == (100, 0, 0)
        assert sorted(wal.directory.glob("*.log")) == every  # kept until syslog has them
        receiver.start()
        assert shipper.ship_once().forwarded == 100
        time.sleep(0.2)
        report = shipper.ship_once()  # confirmed: the sealed ones go, the live one stays
        assert (report.forwarded, report.orphans) == (0, len(every) - 1)
        assert sorted(wal.directory.glob("*.log")) == every[-1:]
        assert wait_until(lambda: len(receiver.messages()) >= 100)
        assert delivered(receiver) == [e["decision_id"] for e in entries]
        assert stored(db) == {e["decision_id"] for e in entries}
    finally:
        wal.close()


def test_a_bad_address_stops_the_start() -> None:
    for url in ("udp://127.0.0.1:514", "tcp://127.0.0.1", "siem.example:6514"):
        with pytest.raises(ConfigurationError, match="PDP_DECISION_LOG_SYSLOG"):
            SyslogForwarder(url)
