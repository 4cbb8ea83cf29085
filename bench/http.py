"""Over HTTP: ``pdp serve`` against a bare Flask endpoint under the same gunicorn settings.

Everything runs in other processes, started and stopped here: the servers (``pdp serve`` with
its production settings, ``python -m bench.bare``) and the load generator, ``wrk`` (Debian's
package ``wrk``). wrk replays the benchmark's own queries (written by ``bench run
--queries-out``) through a Lua script, one request after another on each keep-alive connection,
and reports its latency percentiles and counts as JSON from its ``done`` hook.

Memory is read from ``/proc``: RSS of each process, and PSS (each shared page divided among the
processes sharing it) for the server as a whole: the workers fork from a master that built the
index, so most of it is shared until touched.

``pdp serve`` runs as in production: decision log ``buffered`` (``pdp.records.decision_log``), its
segments in the benchmark's temporary directory, shipped into the benchmark's database. The
decision log's cost is measured apart (``measure_log_cost``): three servers, with the log
``off``, ``buffered`` and ``sync``, loaded in interleaved rounds; after each run on a logging
server the benchmark waits until its shipper has copied every entry to the database, so that no
run pays for the shipping of the one before.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.run import make_queries
from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import DecisionRecord
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.policy import PolicyEngine
from pdp.records.decision_log import SEGMENT_SUFFIX
from pdp.web.server import default_workers

QueryRow = tuple[str, str, str | None, str | None]

LOG_MODES = ("off", "buffered", "sync")

_LUA = r"""
local bodies = {%(bodies)s}
local path = "%(path)s"
local headers = {["Content-Type"] = "application/json", ["X-Api-Key"] = "%(key)s"}
local threads, offset, i = {}, 0, 0
function setup(thread)
  thread:set("offset", #threads * 7919)
  table.insert(threads, thread)
end
function init(args)
  i = offset or 0
end
function request()
  i = i + 1
  return wrk.format("POST", path, headers, bodies[(i %% #bodies) + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"p999_us":%%d,"max_us":%%d,"mean_us":%%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""


@dataclass(frozen=True)
class HttpOptions:
    """What to load and for how long."""

    database_url: str
    queries: Sequence[QueryRow]
    connections: tuple[int, ...] = (2, 16, 64)
    batch_connections: tuple[int, ...] = (2, 4)
    duration_s: int = 10
    rounds: int = 3
    workers: int = default_workers()
    memory_workers: int = 2
    wrk_threads: int = 2
    start_timeout_s: float = 600.0
    log_cost: bool = True
    log_connections: int = 16
    log_batch_connections: int = 2
    ship_timeout_s: float = 300.0


def check_body(q: QueryRow) -> dict[str, str]:
    """The JSON body of ``POST /v1/check`` for a query (absent fields left out)."""
    user, service, role, caf = q
    body = {"user": user, "service": service}
    if role is not None:
        body["role"] = role
    if caf is not None:
        body["caf"] = caf
    return body


def check_bodies(database_url: str, seed: int = 1, n: int = 20_000) -> list[str]:
    """The JSON bodies of ``n`` single checks drawn from the store (``bench.run.make_queries``)."""
    catalogue = load_catalogue()
    db = make_engine(database_url)
    try:
        engine = PolicyEngine(SqlSnapshotSource(db), catalogue)
        engine.load()
        queries = make_queries(engine.index, catalogue, random.Random(seed), n)
    finally:
        db.dispose()
    return [json.dumps(check_body((q.user, q.service, q.role, q.caf))) for q in queries]


def servers_env(database_url: str) -> dict[str, str]:
    """The environment of the servers a benchmark starts: this source tree, the store, and the
    limiter on as in production at a limit the load never reaches."""
    env = dict(os.environ)
    env.update(
        PDP_DATABASE_URL=database_url,
        PDP_RATE_LIMIT="1000000/second",
        PYTHONPATH=os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")]),
    )
    return env


def free_port() -> int:
    """A TCP port free on the loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- processes --------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return sorted(out)


def _kib(path: Path, field: str) -> float:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def process_memory(pid: int) -> dict[str, float]:
    """RSS, PSS and private (unshared) memory of one process, in MiB."""
    proc = Path(f"/proc/{pid}")
    rollup = proc / "smaps_rollup"
    private = _kib(rollup, "Private_Clean") + _kib(rollup, "Private_Dirty")
    return {
        "rss_mib": _kib(proc / "status", "VmRSS") / 1024,
        "pss_mib": _kib(rollup, "Pss") / 1024,
        "private_mib": private / 1024,
    }


def server_memory(pid: int, log_dir: Path | None = None) -> dict[str, Any]:
    """The master's, each worker's and the decision log shipper process's memory (the process
    holding ``log_dir``'s shipper.lock), and the whole server's PSS."""
    shipper = 0
    if log_dir is not None:
        with contextlib.suppress(OSError, ValueError):
            shipper = int((log_dir / "shipper.lock").read_text())
    master = process_memory(pid)
    children = _children(pid)
    workers = [process_memory(child) for child in children if child != shipper]
    figures: dict[str, Any] = {"master": master, "workers": workers}
    total = master["pss_mib"] + sum(w["pss_mib"] for w in workers)
    if shipper in children:
        figures["shipper"] = process_memory(shipper)
        total += figures["shipper"]["pss_mib"]
    figures["total_pss_mib"] = total
    return figures


@dataclass
class Server:
    """A server process started by the benchmark."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    ready_s: float


def _wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout:.0f} s")


@contextmanager
def running(
    name: str, argv: list[str], env: dict[str, str], workdir: Path, timeout: float
) -> Iterator[Server]:
    """Start a server, wait for its health probe, yield it, then stop it (SIGTERM)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / f"{name}.log"
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*argv, "--bind", f"127.0.0.1:{port}"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    try:
        _wait_ready(process, url, timeout, log)
        yield Server(name, process, url, time.perf_counter() - started)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- load -------------------------------------------------------------------------------------


def _lua_string(text: str) -> str:
    level = "=" * 3
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


def write_script(path: Path, bodies: Sequence[str], endpoint: str, key: str) -> Path:
    """A wrk Lua script replaying ``bodies`` in turn against ``endpoint`` with API key ``key``."""
    listed = ",\n".join(_lua_string(b) for b in bodies)
    path.write_text(_LUA % {"bodies": listed, "path": endpoint, "key": key}, encoding="utf-8")
    return path


def bench_key(database_url: str) -> str:
    """A fresh API key (client "bench", every service) in the benchmark's database."""
    from pdp.core.catalogue import load_catalogue
    from pdp.records.audit_trail import AuditChain
    from pdp.services.api_keys import ClientStore

    db = make_engine(database_url)
    try:
        store = ClientStore(db, AuditChain(""), load_catalogue().services)
        key, _ = store.add("bench", store.services, "bench")
    finally:
        db.dispose()
    return key


def wrk(url: str, script: Path, connections: int, duration_s: int, threads: int) -> dict[str, Any]:
    """Run wrk once; return its figures (latencies in µs) and requests per second."""
    argv = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration_s}s"]
    argv += ["--timeout", "10s", "-s", str(script), url]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK_JSON "))
    figures: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    figures["errors"] = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    figures["connections"] = connections
    return figures


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median throughput, with every run's throughput alongside."""
    ordered = sorted(runs, key=lambda r: float(r["rps"]))
    chosen = dict(ordered[len(ordered) // 2])
    chosen["rps_runs"] = [r["rps"] for r in runs]
    return chosen


def _pdp_argv(workers: int) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from pdp.cli import main; main()",
        "serve",
        "--workers",
        str(workers),
    ]


def _pdp_env(base: dict[str, str], work: Path, name: str, mode: str) -> dict[str, str]:
    """The environment of one ``pdp serve``: its decision log mode, and its own segment
    directory under the benchmark's temporary one."""
    env = dict(base)
    env.update(PDP_DECISION_LOG=mode, PDP_DECISION_LOG_DIR=str(work / f"decision-log-{name}"))
    return env


def pending_log_bytes(directory: Path) -> int:
    """Bytes written to the segments of ``directory`` and not shipped yet.

    A segment ``<name>.log`` records how far it was shipped in ``<name>.log.shipped`` (written
    by ``pdp.records.decision_log.Shipper``, replaced atomically); a segment fully shipped and
    sealed is
    deleted.
    """
    pending = 0
    for path in directory.glob(f"*{SEGMENT_SUFFIX}"):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue  # shipped and deleted meanwhile
        try:
            shipped = int(path.with_name(path.name + ".shipped").read_text() or 0)
        except (FileNotFoundError, ValueError):
            shipped = 0
        pending += max(0, size - shipped)
    return pending


def wait_shipped(directory: Path, timeout: float) -> float:
    """Wait until every entry in ``directory`` is in the database (at most ``timeout``); return
    the seconds waited (the shipper runs every ``PDP_DECISION_LOG_SHIP_INTERVAL``, 1 s by
    default). What is still pending then shows in the ``shipping`` figures."""
    started = time.perf_counter()
    while pending_log_bytes(directory) and time.perf_counter() - started < timeout:
        time.sleep(0.05)
    return time.perf_counter() - started


def logged_rows(database_url: str) -> int:
    """Rows of the ``decision_log`` table."""
    db = make_engine(database_url)
    try:
        with db.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(DecisionRecord)).scalar_one())
    finally:
        db.dispose()


def _decisions(run: dict[str, Any], per_request: int) -> int:
    return int(run["requests"]) * per_request


def measure_log_cost(
    opts: HttpOptions,
    env: dict[str, str],
    work: Path,
    single: Path,
    batch: Path | None,
    out: Any = print,
) -> dict[str, Any]:
    """``pdp serve`` with the decision log off, buffered and sync, loaded in interleaved rounds
    (single checks at ``log_connections``, batches at ``log_batch_connections``), the median
    round of each kept; after each run on a logging server, the time until its shipper has
    copied everything to the database."""
    figures: dict[str, Any] = {
        "connections": opts.log_connections,
        "batch_connections": opts.log_batch_connections,
        "modes": {},
    }
    answered = 0  # decisions answered by the logging servers: each must reach the table
    with ExitStack() as stack:
        servers = {}
        for mode in LOG_MODES:
            server = stack.enter_context(
                running(
                    f"pdp-log-{mode}",
                    _pdp_argv(opts.workers),
                    _pdp_env(env, work, f"cost-{mode}", mode),
                    work,
                    opts.start_timeout_s,
                )
            )
            servers[mode] = server
        out(f"pdp serve with the decision log {', '.join(LOG_MODES)}: ready; loading them")
        kinds: list[tuple[str, Path, int, int]] = [("single", single, opts.log_connections, 1)]
        if batch is not None:
            kinds.append(("batch", batch, opts.log_batch_connections, 1000))
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        shipping: dict[str, list[float]] = {mode: [] for mode in LOG_MODES}
        for r in range(opts.rounds):
            order = LOG_MODES[r % 3 :] + LOG_MODES[: r % 3]  # each mode in each position
            for kind, script, connections, per_request in kinds:
                for mode in order:
                    result = wrk(
                        servers[mode].url, script, connections, opts.duration_s, opts.wrk_threads
                    )
                    runs.setdefault((mode, kind), []).append(result)
                    if mode != "off":
                        answered += _decisions(result, per_request)
                        directory = work / f"decision-log-cost-{mode}"
                        shipping[mode].append(wait_shipped(directory, opts.ship_timeout_s))
    for mode in LOG_MODES:
        entry: dict[str, Any] = {}
        for kind, _script, _c, _n in kinds:
            entry[kind] = _median_run(runs[(mode, kind)])
        entry["shipped_after_s"] = shipping[mode]
        figures["modes"][mode] = entry
    for mode in LOG_MODES:
        for kind, _script, _c, _n in kinds:
            off = figures["modes"]["off"][kind]["rps"]
            figures["modes"][mode][kind]["loss_vs_off"] = (
                1 - figures["modes"][mode][kind]["rps"] / off
            )
    figures["answered_logged"] = answered
    return figures


def measure_http(opts: HttpOptions, out: Any = print) -> dict[str, Any]:
    """Load both servers in turn, then the decision log's cost; return every figure (see
    ``http_rows`` and ``log_cost_rows``)."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk not found: install Debian's package wrk (apt-get install wrk)")
    singles = [json.dumps(check_body(q)) for q in opts.queries[:20_000]]
    batches = [
        json.dumps({"checks": [check_body(q) for q in opts.queries[i : i + 1000]]})
        for i in range(0, min(len(opts.queries), 20_000) - 999, 1000)
    ]
    figures: dict[str, Any] = {"workers": opts.workers, "duration_s": opts.duration_s}
    rows_before = logged_rows(opts.database_url)
    answered = 0  # decisions answered by servers logging them
    with tempfile.TemporaryDirectory(prefix="pdp-bench-http-") as tmp:
        work = Path(tmp)
        env = dict(os.environ)
        env.update(
            PDP_DATABASE_URL=opts.database_url,
            PYTHONPATH=os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")]),
        )
        # The limiter runs as in production, at a limit the load never reaches.
        env.update(PDP_RATE_LIMIT="1000000/second")
        key = bench_key(opts.database_url)
        single = write_script(work / "single.lua", singles, "/v1/check", key)
        batch = (
            write_script(work / "batch.lua", batches, "/v1/check/batch", key) if batches else None
        )
        bare_argv = [sys.executable, "-m", "bench.bare", "--workers", str(opts.workers)]
        pdp_argv = _pdp_argv(opts.workers)
        pdp_env = _pdp_env(env, work, "pdp", "buffered")  # production: the default mode
        with (
            running("bare", bare_argv, env, work, opts.start_timeout_s) as bare,
            running("pdp", pdp_argv, pdp_env, work, opts.start_timeout_s) as pdp,
        ):
            out(f"pdp serve ({opts.workers} workers) ready in {pdp.ready_s:.1f} s; loading it")
            figures["ready_s"] = pdp.ready_s
            figures["decision_log"] = "buffered"
            figures["bare"], figures["pdp"] = [], []
            # One untimed run each first: a fresh worker's first answers at national scale pay
            # its copy-on-write page faults, and the shipper its first last-use upserts (the
            # 2-connection rounds, measured first, ran at 1,467–3,250 req/s in one run).
            for server in (bare, pdp):
                warm = wrk(server.url, single, 16, opts.duration_s, opts.wrk_threads)
                if server is pdp:  # its decisions are logged and must reach the table
                    answered += _decisions(warm, 1)
            for c in opts.connections:
                # Interleaved rounds, the median run of each kept: the VM's noise hits both.
                runs: dict[str, list[dict[str, Any]]] = {"bare": [], "pdp": []}
                for _ in range(opts.rounds):
                    for name, server in (("bare", bare), ("pdp", pdp)):
                        runs[name].append(
                            wrk(server.url, single, c, opts.duration_s, opts.wrk_threads)
                        )
                for name in ("bare", "pdp"):
                    figures[name].append(_median_run(runs[name]))
                answered += sum(_decisions(r, 1) for r in runs["pdp"])
            figures["batch"] = []
            for c in opts.batch_connections:
                if batch is None:
                    break
                runs_ = [
                    wrk(pdp.url, batch, c, opts.duration_s, opts.wrk_threads)
                    for _ in range(opts.rounds)
                ]
                figures["batch"].append(_median_run(runs_))
                answered += sum(_decisions(r, 1000) for r in runs_)
            figures["memory_production"] = server_memory(pdp.process.pid, work / "decision-log-pdp")
            # Before stopping it: gunicorn gives a worker graceful_timeout (30 s) to exit, and a
            # backlog cut short there waits on disk for the next start, not in the table.
            figures["shipped_after_s"] = wait_shipped(
                work / "decision-log-pdp", opts.ship_timeout_s
            )
        argv = _pdp_argv(opts.memory_workers)
        mem_env = _pdp_env(env, work, "mem", "buffered")
        with running("pdp-mem", argv, mem_env, work, opts.start_timeout_s) as small:
            out(f"pdp serve ({opts.memory_workers} workers) ready in {small.ready_s:.1f} s")
            figures["memory_idle"] = server_memory(small.process.pid, work / "decision-log-mem")
            answered += _decisions(
                wrk(small.url, single, 16, min(5, opts.duration_s), opts.wrk_threads), 1
            )
            figures["memory"] = server_memory(small.process.pid, work / "decision-log-mem")
            figures["memory_ready_s"] = small.ready_s
            wait_shipped(work / "decision-log-mem", opts.ship_timeout_s)
        if opts.log_cost:
            cost = measure_log_cost(opts, env, work, single, batch, out)
            answered += cost["answered_logged"]
            figures["log_cost"] = cost
        # Every server has stopped (its last shipping done): what is left on disk was lost
        # to the table.
        unshipped = sum(pending_log_bytes(d) for d in work.glob("decision-log-*"))
    figures["shipping"] = {
        "answered": answered,
        "rows_added": logged_rows(opts.database_url) - rows_before,
        "unshipped_bytes": unshipped,
        "database": opts.database_url.split(":", 1)[0],
    }
    return figures


def _pct(f: dict[str, Any]) -> str:
    return (
        f"{f['rps']:,.0f} req/s · p50 {f['p50_us'] / 1000:.2f} ms · p99"
        f" {f['p99_us'] / 1000:.2f} ms · p99.9 {f['p999_us'] / 1000:.2f} ms"
        + (f" · {f['errors']} errors" if f["errors"] else "")
    )


def http_rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    """Table rows (figure, value) of ``measure_http``'s figures."""
    out: list[tuple[str, str]] = []
    for ours, bare in zip(f["pdp"], f["bare"], strict=True):
        c = ours["connections"]
        out.append((f"HTTP check, {c} connections: bare Flask", _pct(bare)))
        share = ours["rps"] / bare["rps"]
        out.append((f"HTTP check, {c} connections: pdp serve", f"{_pct(ours)} ({share:.0%})"))
    for b in f["batch"]:
        out.append(
            (
                f"HTTP batch of 1,000, {b['connections']} connections",
                f"{b['rps'] * 1000:,.0f} checks/s ({_pct(b)})",
            )
        )
    mem = f["memory"]
    workers = mem["workers"]
    out.append(
        (
            "pdp serve ready (production settings, decision log buffered)",
            f"{f['ready_s']:.1f} s",
        )
    )
    out.append(
        (
            f"memory, {len(workers)}-worker server after load (PSS total)",
            f"{mem['total_pss_mib']:.0f} MiB (master RSS {mem['master']['rss_mib']:.0f} MiB)",
        )
    )
    out.append(
        (
            "memory, one worker (RSS / private)",
            " · ".join(f"{w['rss_mib']:.0f} / {w['private_mib']:.0f} MiB" for w in workers),
        )
    )
    if "shipper" in mem:
        shipper = mem["shipper"]
        out.append(
            (
                "memory, the decision log's shipper process (RSS / private)",
                f"{shipper['rss_mib']:.0f} / {shipper['private_mib']:.0f} MiB",
            )
        )
    prod = f["memory_production"]
    out.append(
        (
            f"memory, {len(prod['workers'])}-worker production server after load (PSS total)",
            f"{prod['total_pss_mib']:.0f} MiB",
        )
    )
    if "shipping" in f:
        out.append(shipping_row(f))
    return out


def _loss(f: dict[str, Any]) -> str:
    return f"{f['loss_vs_off'] * 100:+.1f} %"


def log_cost_table(f: dict[str, Any]) -> list[str]:
    """The decision log's cost (``measure_log_cost``), one line per mode, as a Markdown table."""
    c, bc = f["connections"], f["batch_connections"]
    lines = [
        f"| decision log | checks/s ({c} conn.) | p50 | p99 | loss vs off |"
        f" batch checks/s ({bc} conn.) | p50 | p99 | loss vs off | shipped after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, m in f["modes"].items():
        s = m["single"]
        cells = [
            mode,
            f"{s['rps']:,.0f}",
            f"{s['p50_us'] / 1000:.2f} ms",
            f"{s['p99_us'] / 1000:.2f} ms",
            "—" if mode == "off" else _loss(s),
        ]
        b = m.get("batch")
        if b is not None:
            cells += [
                f"{b['rps'] * 1000:,.0f}",
                f"{b['p50_us'] / 1000:.1f} ms",
                f"{b['p99_us'] / 1000:.1f} ms",
                "—" if mode == "off" else _loss(b),
            ]
        else:
            cells += ["—"] * 4
        shipped = sorted(m["shipped_after_s"])
        cells.append(f"≤ {shipped[-1]:.1f} s" if shipped else "—")
        errors = s["errors"] + (b["errors"] if b is not None else 0)
        if errors:
            cells[0] += f" ({errors} errors)"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def shipping_row(f: dict[str, Any]) -> tuple[str, str]:
    """The sanity check of the shipping: decisions answered by logging servers against rows
    added to ``decision_log``."""
    s = f["shipping"]
    lost = s["answered"] - s["rows_added"]
    return (
        f"decision log shipped to the table ({s['database']})",
        f"{s['rows_added']:,} rows added for {s['answered']:,} decisions answered"
        + f" (production server's backlog shipped {f.get('shipped_after_s', 0):.1f} s after its"
        + " last run)"
        + (f": {lost:,} MISSING" if lost > 0 else "")
        + (f"; {s['unshipped_bytes']:,} bytes left unshipped" if s["unshipped_bytes"] else ""),
    )
