"""Before and after a change: ``pdp serve`` from another source tree against this one, and the
bare Flask endpoint, in the same interleaved rounds of single checks (``bench.http``).

The three servers run side by side with production settings (decision log ``buffered``, the
rate limit on at a limit the load never reaches); each round loads one, then the next, so that
a shared machine's noise hits all three. The figures are the medians of the rounds; after the
rounds, each pdp server is given the time to ship its backlog before it stops. ::

    git archive main | tar -x -C /tmp/pdp-before
    python -m bench.versus --before /tmp/pdp-before \\
        --database-url sqlite:///$PWD/s01.sqlite3 --queries q.json --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.http import (
    QueryRow,
    _children,
    _pdp_argv,
    _pdp_env,
    bench_key,
    check_body,
    running,
    wait_shipped,
    write_script,
    wrk,
)
from pdp.web.server import default_workers


def measure(
    before: Path,
    database_url: str,
    queries: list[QueryRow],
    *,
    connections: int = 16,
    duration_s: int = 8,
    rounds: int = 5,
    workers: int = default_workers(),
) -> dict[str, list[dict[str, Any]]]:
    """Every round's wrk figures of each server: ``bare``, ``before`` and ``after``."""
    singles = [json.dumps(check_body(q)) for q in queries[:20_000]]
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="pdp-bench-versus-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        env = dict(os.environ)
        here = str(Path(__file__).resolve().parent.parent)
        env.update(PDP_DATABASE_URL=database_url, PDP_RATE_LIMIT="1000000/second")
        key = bench_key(database_url)
        script = write_script(work / "single.lua", singles, "/v1/check", key)
        argv = {
            "bare": [sys.executable, "-m", "bench.bare", "--workers", str(workers)],
            "before": _pdp_argv(workers),
            "after": _pdp_argv(workers),
        }
        tree = {"bare": here, "before": str(before.resolve()), "after": here}
        servers = {}
        for name in runs:
            server_env = _pdp_env(env, work, name, "buffered")
            server_env["PYTHONPATH"] = tree[name]  # ahead of the installed (editable) package
            servers[name] = stack.enter_context(running(name, argv[name], server_env, work, 600))
        for _ in range(rounds):
            for name, server in servers.items():
                before_cpu = _cpu(server.process.pid)
                figures = wrk(server.url, script, connections, duration_s, 2)
                after_cpu = _cpu(server.process.pid)
                # CPU seconds of each child process during the run, largest first.
                figures["cpu_s"] = sorted(
                    (after_cpu[p] - before_cpu.get(p, 0.0) for p in after_cpu), reverse=True
                )
                if name != "bare":
                    shipper = _shipper_pid(work / f"decision-log-{name}")
                    figures["shipper_cpu_s"] = (
                        after_cpu.get(shipper, 0.0) - before_cpu.get(shipper, 0.0)
                        if shipper
                        else 0.0
                    )
                runs[name].append(figures)
        for name in ("before", "after"):
            wait_shipped(work / f"decision-log-{name}", 300)
    return runs


def _cpu(master: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each child of ``master``."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in _children(master):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def _shipper_pid(directory: Path) -> int:
    """The shipper process's pid, if one holds the directory's shipper.lock (0 otherwise)."""
    try:
        text = (directory / "shipper.lock").read_text().strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def summary(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One line per server: the medians of throughput, latencies and CPU time per request (the
    shipper process's apart), and each round's throughput."""
    lines = []
    for name, figures in runs.items():
        rps = [f["rps"] for f in figures]
        cpu = statistics.median(sum(f["cpu_s"]) / f["requests"] * 1e6 for f in figures)
        line = (
            f"{name:6}: median {statistics.median(rps):,.0f} req/s, "
            f"p50 {statistics.median(f['p50_us'] for f in figures) / 1000:.2f} ms, "
            f"p99 {statistics.median(f['p99_us'] for f in figures) / 1000:.2f} ms, "
            f"CPU {cpu:,.0f} µs per request"
        )
        if "shipper_cpu_s" in figures[0]:
            ship = statistics.median(f["shipper_cpu_s"] / f["requests"] * 1e6 for f in figures)
            line += f" (shipper process {ship:,.0f})"
        lines.append(f"{line}; rounds {', '.join(f'{r:,.0f}' for r in rps)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.versus", description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="the other source tree")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--queries", type=Path, required=True, help="bench run --queries-out")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=int, default=8, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()
    runs = measure(
        args.before,
        args.database_url,
        [tuple(q) for q in json.loads(args.queries.read_text())],
        connections=args.connections,
        duration_s=args.duration,
        rounds=args.rounds,
        workers=args.workers,
    )
    print(*summary(runs), sep="\n")
    for name, figures in runs.items():  # how the load spread over the processes
        print(name, [[round(c, 1) for c in f["cpu_s"]] for f in figures])


if __name__ == "__main__":
    main()
