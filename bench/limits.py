"""What callers' authentication and the rate limit cost.

``python -m bench.limits [--database-url URL] [--redis-url URL]`` prints:

- in-process, the median time of ``ClientRegistry.authenticate`` (parse the key, hash it,
  compare in constant time) over many calls;
- over HTTP, single checks per second from ``pdp serve`` (decision log off, so that only the
  limiter differs) with the rate limit off, counted in memory, and counted in Redis (when
  reachable), in interleaved rounds of ``wrk``; the medians and the loss against "off".

Without ``--database-url`` the demo data is loaded into a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker

from bench.http import _pdp_argv, bench_key, running, write_script, wrk
from pdp.adapters.sql.database import make_engine, upgrade
from pdp.core.clock import paris_today
from pdp.services.api_keys import ClientRegistry
from pdp.services.demo import load_demo

CHECKS = [
    {"user": "bruno.petit", "service": "cdap", "role": "T18"},
    {"user": "chloe.roux", "service": "cdap", "role": "T18"},
    {"user": "nadia.benali", "service": "cdap", "caf": "751"},
    {"user": "lea.fontaine", "service": "afas"},
]


def authenticate_us(database_url: str, key: str, calls: int = 20_000) -> float:
    """Median µs of one ``authenticate`` (batches of 1,000 calls, the copy already loaded)."""
    db = make_engine(database_url)
    registry = ClientRegistry(db, refresh_interval=3600)
    registry.load()
    samples = []
    for _ in range(calls // 1000):
        started = time.perf_counter_ns()
        for _ in range(1000):
            registry.authenticate(key)
        samples.append((time.perf_counter_ns() - started) / 1000 / 1000)
    db.dispose()
    return statistics.median(samples)


def _redis_ok(url: str) -> bool:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError:
        return False
    return True


def measure(
    database_url: str, redis_url: str, rounds: int, duration_s: int, workers: int
) -> dict[str, Any]:
    """Every figure of this benchmark."""
    key = bench_key(database_url)
    figures: dict[str, Any] = {"authenticate_us": authenticate_us(database_url, key)}
    modes = {"off": {"PDP_RATE_LIMIT": "off"}, "memory": {"PDP_RATE_LIMIT": "1000000/second"}}
    if _redis_ok(redis_url):
        modes["redis"] = {
            "PDP_RATE_LIMIT": "1000000/second",
            "PDP_RATE_LIMIT_STORAGE": redis_url,
        }
    with tempfile.TemporaryDirectory(prefix="pdp-bench-limits-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        script = write_script(
            work / "single.lua", [json.dumps(c) for c in CHECKS], "/v1/check", key
        )
        servers = {}
        for name, settings in modes.items():
            env = dict(os.environ)
            env.update(PDP_DATABASE_URL=database_url, PDP_DECISION_LOG="off", **settings)
            servers[name] = stack.enter_context(
                running(f"limits-{name}", _pdp_argv(workers), env, work, 120)
            )
        names = list(modes)
        rps: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                result = wrk(servers[name].url, script, 16, duration_s, 2)
                rps[name].append(result["rps"])
    figures["rps"] = {name: statistics.median(values) for name, values in rps.items()}
    figures["loss_vs_off"] = {
        name: 1 - value / figures["rps"]["off"] for name, value in figures["rps"].items()
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a database with data (default: the demo)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds of each wrk run")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pdp-bench-limits-db-") as tmp:
        url = args.database_url
        if url is None:
            url = f"sqlite:///{Path(tmp) / 'demo.sqlite3'}"
            db = make_engine(url)
            upgrade(db)
            with sessionmaker(db).begin() as session:
                load_demo(session, paris_today())
            db.dispose()
        figures = measure(url, args.redis_url, args.rounds, args.duration, args.workers)
    print(
        f"authenticate (parse, SHA-256, constant-time compare): {figures['authenticate_us']:.2f} µs"
    )
    for name, value in figures["rps"].items():
        loss = figures["loss_vs_off"][name]
        print(f"single checks/s, rate limit {name:6}: {value:8,.0f}   loss vs off {loss:6.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
