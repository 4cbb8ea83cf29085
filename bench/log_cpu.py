"""Where the decision log's cost goes: the CPU time of each process of ``pdp serve`` per
decision answered, with the log ``off`` and ``buffered``, in interleaved rounds.

Each round starts one server per mode (production settings: API key, rate limit, metrics),
warms it with wrk, waits until its shipper has caught up, then loads it with single checks
for ``--duration`` seconds. The CPU time (user + system, from ``/proc``) of its workers and of
its shipper process, and the machine's busy time (``/proc/stat``: wrk and the kernel's own
threads included), are read before and after the load, and again once the shipper has copied
every entry of the run into the database ("with the tail"). Divided by the decisions answered,
they say what a decision costs each part, whatever the machine's noise did to the rate.
``--batch`` loads it with batches of 1,000 checks instead (``POST /v1/check/batch``).

    python -m bench.log_cpu --database-url sqlite:////abs/path/bench-scale1-seed1.sqlite3
    python -m bench.log_cpu --database-url sqlite:////abs/path/… --batch --connections 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.http import (
    _children,
    _pdp_argv,
    _pdp_env,
    bench_key,
    check_bodies,
    running,
    servers_env,
    wait_shipped,
    write_script,
    wrk,
)
from pdp.records.decision_log.process import LOCK

MODES = ("off", "buffered")
BATCH = 1000  # checks per request with --batch, as the suite's batches
TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> tuple[float, float]:
    """Seconds of CPU the process ``pid`` has used: in all (user + system), in the kernel."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS, int(fields[12]) / TICKS


def machine_busy() -> float:
    """Seconds of CPU the whole machine has been busy (every core, idle and iowait left out)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICKS


def measure(
    database_url: str,
    *,
    workers: int = 4,
    connections: int = 16,
    rounds: int = 2,
    duration_s: int = 10,
    batch: bool = False,
    seed: int = 1,
    out: Any = print,
) -> dict[str, Any]:
    """Interleaved rounds, ``off`` then ``buffered`` (the order alternates); every run's figures.
    ``batch``: requests of ``BATCH`` checks to ``/v1/check/batch`` instead of single checks."""
    bodies = check_bodies(database_url, seed)
    endpoint, per_request = "/v1/check", 1
    if batch:
        endpoint, per_request = "/v1/check/batch", BATCH
        bodies = [
            '{"checks": [' + ", ".join(bodies[i : i + BATCH]) + "]}"
            for i in range(0, len(bodies) - BATCH + 1, BATCH)
        ]
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="pdp-bench-log-cpu-") as tmp:
        work = Path(tmp)
        env = servers_env(database_url)
        script = write_script(work / "load.lua", bodies, endpoint, bench_key(database_url))
        for r in range(rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                name = f"{mode}-{r}"
                log_dir = work / f"decision-log-{name}"
                server_env = _pdp_env(env, work, name, mode)
                with running(name, _pdp_argv(workers), server_env, work, 600) as server:
                    wrk(server.url, script, connections, min(5, duration_s), 2)  # warm: caches
                    shipping = mode != "off"
                    figures = _load(
                        server, script, log_dir, shipping, connections, duration_s, per_request
                    )
                runs[mode].append(figures)
                out(
                    f"round {r + 1}, log {mode}: "
                    + ", ".join(f"{k} {v:,.0f}" for k, v in figures.items())
                )
    return {
        "workers": workers,
        "connections": connections,
        "duration_s": duration_s,
        "checks_per_request": per_request,
        "runs": runs,
    }


def _load(
    server: Any,
    script: Path,
    log_dir: Path,
    shipping: bool,
    connections: int,
    duration_s: int,
    per_request: int,
) -> dict[str, float]:
    """One timed load of a warmed server: its rate and CPU per decision (µs) by part."""
    if shipping:
        wait_shipped(log_dir, 300)  # the warm-up's entries are not this run's
    time.sleep(1)
    children = _children(server.process.pid)
    shipper = int((log_dir / LOCK).read_text()) if shipping else 0
    workers = [pid for pid in children if pid != shipper]

    def sample() -> tuple[dict[int, tuple[float, float]], float]:
        return {pid: process_cpu(pid) for pid in children}, machine_busy()

    before, busy_before = sample()
    load = wrk(server.url, script, connections, duration_s, 2)
    during, busy_during = sample()
    if shipping:
        wait_shipped(log_dir, 300)
        time.sleep(1.5)  # the round that found nothing left has ended
    after, busy_after = sample()
    decisions = load["rps"] * per_request * duration_s
    per = 1e6 / decisions
    return {
        "checks_per_s": load["rps"] * per_request,
        "workers_us": sum(during[p][0] - before[p][0] for p in workers) * per,
        "workers_kernel_us": sum(during[p][1] - before[p][1] for p in workers) * per,
        "shipper_us": (during[shipper][0] - before[shipper][0]) * per if shipping else 0.0,
        "machine_us": (busy_during - busy_before) * per,
        "shipper_with_tail_us": (
            (after[shipper][0] - before[shipper][0]) * per if shipping else 0.0
        ),
        "machine_with_tail_us": (busy_after - busy_before) * per,
    }


COLUMNS = (
    ("checks_per_s", "checks/s"),
    ("workers_us", "workers"),
    ("workers_kernel_us", "of which in the kernel"),
    ("shipper_us", "shipper"),
    ("machine_us", "machine"),
    ("shipper_with_tail_us", "shipper, with the tail"),
    ("machine_with_tail_us", "machine, with the tail"),
)


def table(figures: dict[str, Any]) -> list[str]:
    """Medians over the rounds of each mode, CPU in µs per decision, as a Markdown table."""
    lines = [
        "| decision log | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for mode, runs in figures["runs"].items():
        cells = [f"{statistics.median(r[key] for r in runs):,.0f}" for key, _ in COLUMNS]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.log_cpu", description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each timed load")
    parser.add_argument("--batch", action="store_true", help="batches of 1,000 checks")
    parser.add_argument("--json", default=None, help="write every run's figures to this file")
    args = parser.parse_args(argv)
    figures = measure(
        args.database_url,
        workers=args.workers,
        connections=args.connections,
        rounds=args.rounds,
        duration_s=args.duration,
        batch=args.batch,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    print("\n".join(table(figures)))


if __name__ == "__main__":
    main()
