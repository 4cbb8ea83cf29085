"""End to end: under ``pdp serve`` the decision log is shipped by one process of its own,
started, restarted and stopped by the gunicorn master (``pdp.records.decision_log.process``);
the workers only append to their segments. SQLite and PostgreSQL, a real gunicorn.

That no worker runs a shipper thread is read from the workers themselves: with
``PYTHONFAULTHANDLER=1`` a process killed by SIGSEGV prints the stack of each of its threads
(the shipper process's own dump, killed the same way, shows its shipping loop: the control)."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import DecisionRecord, LastUse

from support.constants import API_KEY
from support.servers import Server, answers_from_every_worker, opener, run_pdp, running, server_env

pytestmark = pytest.mark.e2e

CHECK = {"user": "bruno.petit", "service": "cdap", "role": "T18"}
WAIT = 30.0  # seconds for what the shipper does within a few rounds
ATTEMPTS = 4  # workers killed for one whole dump of their stacks


def wait_until(done: Callable[[], bool], what: str, server: Server) -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}\n{server.log()}"
        time.sleep(0.1)


def shipped(db_url: str) -> set[str]:
    db = make_engine(db_url)
    try:
        with db.connect() as conn:
            return set(conn.execute(select(DecisionRecord.decision_id)).scalars())
    finally:
        db.dispose()


def last_uses(db_url: str) -> set[tuple[str, str, str]]:
    db = make_engine(db_url)
    try:
        with db.connect() as conn:
            rows = conn.execute(select(LastUse.login, LastUse.service, LastUse.role))
            return {(r.login, r.service, r.role) for r in rows}
    finally:
        db.dispose()


def children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def decide(server: Server) -> set[str]:
    """Checks answered by every worker: their decision ids."""
    answers = answers_from_every_worker(server, lambda: server.check(**CHECK))
    assert all(a["allowed"] for a in answers)
    return {a["decision_id"] for a in answers}


def shipper_pid(env: dict[str, str], cwd: Path) -> int | None:
    """The shipper's pid as ``pdp logs status`` shows it (run outside the server's metrics)."""
    alone = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    found = re.search(
        r"^shipper: running \(pid (\d+)\)$", run_pdp(["logs", "status"], alone, cwd), re.M
    )
    return int(found.group(1)) if found else None


def dump_of(server: Server, pid: int, exited: str) -> str:
    """Kill ``pid`` with SIGSEGV; return the stacks its threads printed (faulthandler), up to
    the master's line saying it ``exited`` (``exited`` holds the pid)."""
    start = len(server.log())
    os.kill(pid, signal.SIGSEGV)
    wait_until(lambda: exited in server.log()[start:], f"{pid} killed", server)
    text = server.log()[start:]
    dump = text[: text.index(exited)]
    assert "Segmentation fault" in dump and "most recent call first" in dump, dump
    return dump


def whole_worker_dump(
    server: Server, worker: int, workers: Callable[[], set[int]], seen: set[int]
) -> str:
    """The stacks of a worker killed by SIGSEGV, whole: they reach the worker's own loop.

    faulthandler reads each thread's frames without a lock; a thread caught while it switches
    frames prints ``???`` and the dump may stop there. Such a dump is set aside (after checking
    what it did print) and the worker the master started in its place is killed instead."""
    for _ in range(ATTEMPTS):
        dump = dump_of(server, worker, f"Worker (pid:{worker}) was sent SIGSEGV")
        if "gthread.py" in dump:  # the worker's own loop: the dump is whole
            return dump
        assert "???" in dump, dump  # cut short by a torn frame, nothing else
        assert "decision_log/shipper.py" not in dump, dump
        assert "decision_log/process.py" not in dump, dump
        wait_until(lambda: bool(workers() - seen), "a worker in its place", server)
        worker = min(workers() - seen)
        seen.add(worker)
        answers_from_every_worker(server, lambda: server.check(**CHECK))  # it serves
    raise AssertionError(f"no whole dump in {ATTEMPTS} workers\n{server.log()}")


def metrics(server: Server) -> tuple[dict[str, float], set[int]]:
    """The samples of /metrics, summed by name, and the pids that publish a policy revision."""
    request = urllib.request.Request(server.base_url + "/metrics", headers={"X-Api-Key": API_KEY})
    with opener.open(request, timeout=10) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    revisions = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
            if sample.name == "pdp_policy_revision":
                revisions.add(int(sample.labels["pid"]))
    return sums, revisions


def log_env(tmp_path: Path, db_url: str, **settings: str) -> dict[str, Any]:
    prometheus = tmp_path / "prometheus"
    prometheus.mkdir()
    wanted = {
        "PDP_DATABASE_URL": db_url,
        "PDP_DECISION_LOG": "buffered",
        "PDP_DECISION_LOG_DIR": str(tmp_path / "decision-log"),
        "PDP_DECISION_LOG_SHIP_INTERVAL": "0.2",
        "PROMETHEUS_MULTIPROC_DIR": str(prometheus),
        "PYTHONFAULTHANDLER": "1",
    }
    return server_env(tmp_path, **(wanted | settings))


def test_one_shipper_process_ships_what_the_workers_answer(demo_db: str, tmp_path: Path) -> None:
    env = log_env(tmp_path, demo_db)
    log_dir = tmp_path / "decision-log"
    with running(["serve", "--workers", "2"], env, tmp_path) as server:
        server.api_key = API_KEY
        master = server.process.pid
        first = shipper_pid(env, tmp_path)
        assert first is not None and first in children(master), server.log()
        workers = children(master) - {first}
        assert len(workers) == 2

        # The workers' decisions reach the table, through the shipper process.
        answered = decide(server)
        wait_until(lambda: answered <= shipped(demo_db), "the decisions shipped", server)
        # With them, the day the right was used (R-CNIL-1), upserted by the shipper process.
        assert ("bruno.petit", "cdap", "T18") in last_uses(demo_db)
        segments = [p.name for p in log_dir.glob("*.log")]
        assert segments and all(name.endswith(".served.log") for name in segments), segments
        sums, revisions = metrics(server)
        assert sums["pdp_decision_log_shipped_total"] >= len(answered)  # the shipper's counter
        assert revisions == workers  # the shipper serves no policy: no revision of its own
        assert time.time() - sums["pdp_policy_fresh_timestamp_seconds"] < 60  # nor a stale one
        assert "pdp_decision_log_pending_bytes" in sums
        assert "pdp_decision_log_lag_seconds" in sums

        # No worker runs a shipping thread: their stacks show none.
        seen = set(workers)
        for worker in sorted(workers):
            dump = whole_worker_dump(server, worker, lambda: children(master) - {first}, seen)
            assert "decision_log/shipper.py" not in dump, dump
            assert "decision_log/process.py" not in dump, dump

        # The shipper process's does (the control); killed, it is started again.
        dump = dump_of(server, first, f"shipper process (pid {first}) killed by signal")
        assert "decision_log/process.py" in dump, dump
        wait_until(lambda: shipper_pid(env, tmp_path) not in (None, first), "restarted", server)
        second = shipper_pid(env, tmp_path)
        assert second in children(master)
        answered = decide(server)
        wait_until(lambda: answered <= shipped(demo_db), "shipped by the new one", server)

        # kill -9 too: nothing lost, nothing twice (the decision id is the table's key).
        os.kill(second, signal.SIGKILL)
        answered |= decide(server)  # while no shipper runs, or the next one starts
        wait_until(
            lambda: shipper_pid(env, tmp_path) not in (None, second), "restarted again", server
        )
        wait_until(lambda: answered <= shipped(demo_db), "shipped after kill -9", server)
    assert "Traceback" not in server.log()


def test_stopping_the_server_ships_what_remains(demo_db: str, tmp_path: Path) -> None:
    # One round at start-up, then none for an hour: what the workers answer is shipped by the
    # shipper process's last round, after the workers have stopped.
    env = log_env(tmp_path, demo_db, PDP_DECISION_LOG_SHIP_INTERVAL="3600")
    log_dir = tmp_path / "decision-log"
    with running(["serve", "--workers", "2"], env, tmp_path) as server:
        server.api_key = API_KEY
        wait_until(lambda: shipper_pid(env, tmp_path) is not None, "shipper started", server)
        answered = decide(server) | decide(server)
    assert "decision log shipper process" in server.log()
    assert answered <= shipped(demo_db), f"{len(answered - shipped(demo_db))} not shipped"
    assert list(log_dir.glob("*.log")) == []  # every segment shipped, then deleted
    assert shipper_pid(env, tmp_path) is None  # and the lock let go
