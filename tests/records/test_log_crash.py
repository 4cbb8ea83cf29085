"""The crash test of the decision log: kill -9 a loaded server, lose no acknowledged decision.

A real ``pdp serve`` (gunicorn, two workers) answers checks and batches from several client
threads; nothing is shipped to the database while it runs (the ship interval is an hour). In the
middle of the load the whole process group (master and workers) gets SIGKILL: no atexit, no
last shipping. Every decision whose answer a client fully received must then be in a segment
file, and, once recovered (a restarted server, or ``pdp logs ship``), in the ``decision_log``
table exactly once, and readable through ``GET /v1/decisions/<id>``.

Both modes are held to it: ``sync`` (the answer waits for fdatasync) and ``buffered`` (the
entry is in the page cache before the answer; only a machine crash may lose the last
``PDP_DECISION_LOG_FLUSH_MS``, a process crash loses nothing).
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import random
import secrets
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import DecisionRecord
from pdp.core.config import Settings
from pdp.services.tokens import mint

from support.constants import API_HEADERS, API_KEY, OPERATOR
from support.servers import Server, free_port, pdp_command, run_pdp, running, server_env

pytestmark = pytest.mark.e2e

CLIENTS = 6
WORKERS = 2
LOAD_SECONDS = 0.5  # of load before the kill (and at least MIN_ACKNOWLEDGED answers)
MIN_ACKNOWLEDGED = 50  # the kill waits for at least this many answers (bounded by the timeout)
RECOVERY_TIMEOUT = 20.0
JWT_SECRET = secrets.token_urlsafe(32)

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

CHECKS: list[dict[str, Any]] = [
    {"user": "bruno.petit", "service": "cdap", "role": "T18"},
    {"user": "chloe.roux", "service": "cdap", "role": "T18"},
    {"user": "nadia.benali", "service": "cdap", "caf": "751"},
    {"user": "lea.fontaine", "service": "afas"},
    {"user": "emma.garnier", "service": "cdap", "role": "T18"},
]


def post(base_url: str, path: str, body: Any) -> Any:
    """POST JSON; return the decoded answer of a 200 (raises on anything else)."""
    req = urllib.request.Request(
        base_url + path,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", **API_HEADERS},
    )
    with _opener.open(req, timeout=10) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def get(base_url: str, path: str, token: str) -> tuple[int, Any]:
    req = urllib.request.Request(base_url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with _opener.open(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@dataclass
class Load:
    """Client threads asking for decisions until the server dies under them."""

    base_url: str
    acknowledged: list[str] = field(default_factory=list)  # ids of fully received answers
    errors: list[BaseException] = field(default_factory=list)  # each thread's last error
    refused: list[str] = field(default_factory=list)  # answers that were not 200
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            try:
                if rng.random() < 0.2:
                    checks = rng.sample(CHECKS, rng.randint(2, len(CHECKS)))
                    answer = post(self.base_url, "/v1/check/batch", {"checks": checks})
                    ids = [r["decision_id"] for r in answer["results"]]
                    assert len(ids) == len(checks)
                else:
                    ids = [post(self.base_url, "/v1/check", rng.choice(CHECKS))["decision_id"]]
            except urllib.error.HTTPError as exc:  # an answer, but not a decision
                with exc, self.lock:
                    self.refused.append(f"{exc.code}: {exc.read()!r}")
                return
            # The server is dead: connection refused or reset, or an answer cut short.
            except (OSError, ValueError, http.client.HTTPException) as exc:
                with self.lock:
                    self.errors.append(exc)
                return
            with self.lock:
                self.acknowledged.extend(ids)

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)


def start_server(workdir: Path, env: dict[str, str]) -> Server:
    """``pdp serve --workers 2`` in its own process group (so that it can be killed whole)."""
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*pdp_command(), "serve", "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}"],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        server.wait_healthy()
    except BaseException:
        server.stop()
        raise
    return server


def unlocked(path: Path) -> bool:
    """Whether no process holds ``path``'s flock any more (its writer is dead)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing the descriptor drops our lock, if taken
    return True


def logged_ids(log_dir: Path) -> list[str]:
    """The decision ids of the complete lines of every segment in ``log_dir``."""
    ids: list[str] = []
    for path in sorted(log_dir.glob("*.log")):
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        ids.extend(orjson.loads(line)["decision_id"] for line in complete.splitlines())
    return ids


def table_ids(database_url: str) -> list[str]:
    db = make_engine(database_url)
    try:
        with db.connect() as conn:
            return list(conn.execute(select(DecisionRecord.decision_id)).scalars())
    finally:
        db.dispose()


def pid(segment: Path) -> int:
    """The pid of the process that wrote ``segment`` (``<ns>-<pid>-<rand>.log``)."""
    return int(segment.name.split("-")[1])


def wait_for_every_worker(server: Server, log_dir: Path, dead: set[int]) -> None:
    """Ask for decisions, a few at a time, until every worker has logged one."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    with ThreadPoolExecutor(max_workers=4) as pool:
        while len({pid(f) for f in log_dir.glob("*.log")} - dead) < WORKERS:
            assert time.monotonic() < deadline, f"a worker never answered:\n{server.log()}"
            list(pool.map(lambda check: server.check(**check), CHECKS * 2))


@contextlib.contextmanager
def killed_under_load(workdir: Path, env: dict[str, str]) -> Iterator[Load]:
    """Serve, load, SIGKILL the whole process group mid-load; yield the load once all died."""
    server = start_server(workdir, env)
    load = Load(server.base_url)
    threads = [threading.Thread(target=load.client, args=(n,)) for n in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        started = time.monotonic()
        while time.monotonic() - started < LOAD_SECONDS or load.count() < MIN_ACKNOWLEDGED:
            if time.monotonic() - started > 20:
                pytest.fail(f"only {load.count()} answers in 20 s; output:\n{server.log()}")
            time.sleep(0.05)
        os.killpg(server.process.pid, signal.SIGKILL)
        assert server.process.wait(timeout=10) == -signal.SIGKILL
        for t in threads:
            t.join(timeout=30)
        # Every client was still asking when the server died: each ended on a dead connection.
        assert not any(t.is_alive() for t in threads)
        assert load.refused == []
        assert len(load.errors) == CLIENTS, load.errors
        yield load
    finally:
        load.stop.set()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        for t in threads:
            t.join(timeout=30)


MODES = ["sync", "buffered"]
RECOVERIES = ["restart", "cli"]
CASES = [
    *(
        pytest.param(mode, recovery, "sqlite", id=f"{mode}-{recovery}-sqlite")
        for mode in MODES
        for recovery in RECOVERIES
    ),
    # PostgreSQL: each mode once, each recovery once (bounded).
    pytest.param(
        "sync", "restart", "postgres", id="sync-restart-postgres", marks=pytest.mark.postgres
    ),
    pytest.param(
        "buffered", "cli", "postgres", id="buffered-cli-postgres", marks=pytest.mark.postgres
    ),
]


@pytest.mark.parametrize(("mode", "recovery", "backend"), CASES, indirect=["backend"])
def test_no_acknowledged_decision_is_lost_when_the_server_is_killed(
    mode: str, recovery: str, backend: str, demo_db: str, tmp_path: Path
) -> None:
    log_dir = tmp_path / "decision-log"
    settings = {
        "PDP_DATABASE_URL": demo_db,
        "PDP_DECISION_LOG": mode,
        "PDP_DECISION_LOG_DIR": str(log_dir),
        "PDP_DECISION_LOG_SHIP_INTERVAL": "3600",  # nothing ships before the kill
        "PDP_JWT_SECRET": JWT_SECRET,
    }
    env = server_env(tmp_path, **settings)

    with killed_under_load(tmp_path, env) as load:
        acknowledged = list(load.acknowledged)

    # 1. The segments outlived their processes, and hold every acknowledged decision.
    files = sorted(log_dir.glob("*.log"))
    assert files, "no segment file left by the killed server"
    deadline = time.monotonic() + 10  # the kernel drops a dead process's locks as it reaps it
    while not all(unlocked(f) for f in files):
        assert time.monotonic() < deadline, "a segment is still locked after the kill"
        time.sleep(0.05)
    on_file = logged_ids(log_dir)
    assert len(set(on_file)) == len(on_file), "a decision was logged twice"
    missing = set(acknowledged) - set(on_file)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged decisions not on file"
    assert len(set(acknowledged)) == len(acknowledged)
    assert table_ids(demo_db) == []  # nothing was shipped before the kill

    # 2. Recovery: a restarted server ships the orphans, or the operator runs `pdp logs ship`.
    if recovery == "cli":
        out = run_pdp(["logs", "ship"], env, tmp_path)
        assert out == (
            f"shipped {len(on_file)} decisions from {len(files)} segments; 0 entries set aside\n"
            f"rejected: none ({log_dir / 'rejected.jsonl'})\n"
        )
        assert run_pdp(["logs", "ship"], env, tmp_path).startswith("shipped 0 decisions from 0 ")
        assert sorted(table_ids(demo_db)) == sorted(on_file)
    restart_env = {**env, "PDP_DECISION_LOG_SHIP_INTERVAL": "0.2"}
    token = mint(Settings(jwt_secret=JWT_SECRET), OPERATOR)
    with running(["serve", "--workers", str(WORKERS)], restart_env, tmp_path) as server:
        server.api_key = API_KEY
        # A worker's shipper starts with its first decision: ask until both workers have
        # answered (their segments show their pids). Stopping a worker that is still booting
        # would also race gunicorn's signal set-up.
        wait_for_every_worker(server, log_dir, {pid(f) for f in files})
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while not set(on_file) <= set(table_ids(demo_db)):
            assert time.monotonic() < deadline, "the orphans were not shipped after the restart"
            time.sleep(0.1)
        for path in files:  # every orphan finished is deleted, with its offset file
            assert not path.exists()
            assert not path.with_name(path.name + ".shipped").exists()

        # 3. Exactly once in the table, and readable by an auditor.
        in_table = table_ids(demo_db)
        assert len(in_table) == len(set(in_table))
        assert not set(acknowledged) - set(in_table)
        for decision_id in (acknowledged[0], acknowledged[-1]):
            status, answer = get(server.base_url, f"/v1/decisions/{decision_id}", token)
            assert status == 200, answer
            assert answer["decision_id"] == decision_id
    assert not (log_dir / "rejected.jsonl").exists()
