"""Where a check's time goes over HTTP: one ``pdp serve`` worker in production settings (API
key, rate limit, metrics, decision log buffered and shipped) loaded by wrk, sampled by py-spy
(the ``dev`` extra installs it) on the thread holding the interpreter lock only (``--gil``: Python
work, not threads waiting in a system call), each sample put in the first part of the path its
stack is in.

    python -m bench.profile --database-url sqlite:////abs/path/bench-scale0.1-seed1.sqlite3

Parts, in the order a sample is matched (the most specific first): the decision log's shipper
and flusher threads, the decision log's write, the decision, authentication (API key), rate
limiting, validation (body, catalogue), metrics, JSON encoding, the rest of the view, Flask and
Werkzeug's request machinery, gunicorn (HTTP parsing and socket writes), and the worker waiting
for the next request (epoll: idle, not counted in the shares of busy time).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.http import (
    _pdp_argv,
    _pdp_env,
    bench_key,
    check_bodies,
    running,
    servers_env,
    write_script,
    wrk,
)
from pdp.records.decision_log.process import LOCK

# (part, substrings of a frame "function (file)"), matched in this order.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decision log: shipper thread", ("Shipper._ship_forever",)),
    ("decision log: flusher thread", ("WalLog._flush_forever",)),
    ("decision log: write", ("WalLog.record",)),
    ("decision", ("DecisionService._decide", "PolicyEngine.refresh")),
    ("authentication", ("_authenticate", "ClientRegistry.authenticate")),
    ("rate limit", ("_rate_limit", "count (pdp/web/api/guard")),
    (
        "validation",
        ("model_validate_json", "check_service", "read_body", "read_sized", "validate ("),
    ),
    ("metrics", ("pdp/observability/metrics", "prometheus_client")),
    ("JSON encoding", ("jsonify", "orjson", "jsonio")),
    ("view, lean path, other", ("pdp/web/api/decisions", "pdp/web/api/hot_path", "proxy_trust")),
    ("Flask and Werkzeug", ("flask/", "werkzeug/")),
    ("idle (waiting for a request)", ("EpollSelector.select", "Condition.wait")),
    ("gunicorn (parsing, socket writes)", ("gunicorn/",)),
)


def part_of(stack: list[str]) -> str:
    """The first part whose patterns a frame of ``stack`` matches; "other" if none."""
    for name, patterns in PARTS:
        if any(p in frame for frame in stack for p in patterns):
            return name
    return "other"


def breakdown(raw: Path) -> dict[str, int]:
    """Samples per part, from py-spy's raw output (``frame;frame;… count`` lines)."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, n = line.rpartition(" ")
        if stack:
            counts[part_of(stack.split(";"))] += int(n)
    return dict(counts)


def _the_worker(master: int, log_dir: Path, shipping: bool) -> int:
    """The master's child that answers: not the decision log's shipper process when
    ``shipping`` (its pid is in ``shipper.lock``, written once it has started)."""
    deadline = time.monotonic() + 30
    while True:
        children = subprocess.run(
            ["pgrep", "-P", str(master)], capture_output=True, text=True
        ).stdout.split()
        lock = log_dir / LOCK
        shipper = lock.read_text().strip() if lock.exists() else ""
        workers = [pid for pid in children if pid != shipper]
        if (shipper or not shipping) and len(workers) == 1:
            return int(workers[0])
        if time.monotonic() > deadline:
            raise SystemExit(f"no single worker beside the shipper among {children}")
        time.sleep(0.2)


def profile(
    database_url: str, seconds: int, connections: int, decision_log: str = "buffered"
) -> dict[str, object]:
    """Load one worker with wrk for ``seconds`` while py-spy samples it."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: pip install py-spy (in the dev extra)")
    bodies = check_bodies(database_url)
    with tempfile.TemporaryDirectory(prefix="pdp-bench-profile-") as tmp:
        work = Path(tmp)
        env = servers_env(database_url)
        script = write_script(work / "single.lua", bodies, "/v1/check", bench_key(database_url))
        server_env = _pdp_env(env, work, "profile", decision_log)
        with running("pdp", _pdp_argv(1), server_env, work, 600) as server:
            worker = _the_worker(
                server.process.pid, work / "decision-log-profile", decision_log != "off"
            )
            raw = work / "samples.txt"
            argv = [spy, "record", "-p", str(worker), "-d", str(seconds), "-r", "500"]
            argv += ["--gil", "-f", "raw", "-o", str(raw), "--nonblocking"]
            sampler = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            load = wrk(server.url, script, connections, seconds, 2)
            sampler.wait()
        parts = breakdown(raw)
    return {"rps": load["rps"], "parts": parts}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--decision-log", choices=("off", "buffered", "sync"), default="buffered")
    args = parser.parse_args(argv)
    found = profile(args.database_url, args.seconds, args.connections, args.decision_log)
    parts: dict[str, int] = found["parts"]  # type: ignore[assignment]
    busy = sum(n for name, n in parts.items() if not name.startswith("idle"))
    rps = float(found["rps"])  # type: ignore[arg-type]
    print(
        f"one worker, {args.connections} connections, decision log {args.decision_log}:"
        f" {rps:,.0f} checks/s"
    )
    print("| part | share of busy time | ≈ µs per check |\n|---|---|---|")
    for name, _patterns in (*PARTS, ("other", ())):
        n = parts.get(name, 0)
        if not n or name.startswith("idle"):
            continue
        share = n / busy
        print(f"| {name} | {share:.1%} | {share * 1e6 / rps:.0f} |")


if __name__ == "__main__":
    main()
