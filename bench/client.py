"""What the Python client costs over the raw HTTP request.

``python -m bench.client [--database-url URL] [--calls N] [--rounds R]`` starts ``pdp serve``
(decision log and rate limit off, so that only the caller differs) and times, one call after
another over one kept-alive connection, the same single checks asked:

- raw: urllib3's connection pool, a prepared JSON body, the answer's bytes read, nothing parsed;
- client: ``Client.check`` (build the body, send it, parse and check the decision);
- cached: ``Client.check`` with ``cache_ttl`` answered from the local cache.

interleaved call by call; it prints the median time of a call in each way and the client's
overhead (the difference of the medians, and their ratio). Over the network that difference is
within the noise of one run, so it also times, in-process, the client's own work alone: the
same calls answered by a transport that returns the server's recorded answers at once (build
the body, parse the JSON, check and build the decision). Without ``--database-url`` the demo
data is loaded into a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import urllib3
from sqlalchemy.orm import sessionmaker

from bench.http import _pdp_argv, bench_key, running
from pdp.adapters.sql.database import make_engine, upgrade
from pdp.client import CheckQuery, Client, RawResponse
from pdp.core.clock import paris_today
from pdp.services.demo import load_demo

QUERIES = [
    CheckQuery("bruno.petit", "cdap", "T18"),
    CheckQuery("chloe.roux", "cdap", "T18"),
    CheckQuery("nadia.benali", "cdap", caf="751"),
    CheckQuery("lea.fontaine", "afas"),
]


def _timed(call: Callable[[int], Any], calls: int) -> list[float]:
    """Each call's duration in µs."""
    samples = []
    for i in range(calls):
        started = time.perf_counter_ns()
        call(i)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


class Recorded:
    """A transport answering each check body with the answer the server gave it."""

    def __init__(self, answers: dict[bytes, bytes]) -> None:
        self.answers = answers

    def send(self, method: str, path: str, body: bytes | None) -> RawResponse:
        assert body is not None
        return RawResponse(200, "application/json", self.answers[body])

    def close(self) -> None:
        return None


def client_work_us(answers: dict[bytes, bytes], calls: int = 20_000) -> float:
    """Median µs of one ``Client.check`` whose transport answers at once (batches of 1,000)."""
    client = Client("http://unused", "unused", transport=Recorded(answers))
    samples = []
    for _ in range(calls // 1000):
        started = time.perf_counter_ns()
        for i in range(1000):
            q = QUERIES[i % 4]
            client.check(q.user, q.service, q.role, q.caf)
        samples.append((time.perf_counter_ns() - started) / 1000 / 1000)
    return statistics.median(samples)


def measure(url: str, key: str, calls: int, rounds: int) -> dict[str, Any]:
    """Median µs per call of each way, over ``rounds`` interleaved rounds of ``calls``."""
    pool = urllib3.connection_from_url(
        url, maxsize=1, retries=False, timeout=urllib3.Timeout(connect=2.0, read=2.0)
    )
    # The same request as the client's: same headers, same timeouts.
    headers = {
        "X-Api-Key": key,
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": "pdp-client",
    }
    bodies = [json.dumps(q.body()).encode() for q in QUERIES]
    client = Client(url, key, pool_size=1)
    cached = Client(url, key, pool_size=1, cache_ttl=3600)
    for q in QUERIES:  # fill the cache
        assert not cached.check(q.user, q.service, q.role, q.caf).failed

    def raw(i: int) -> None:
        answer = pool.urlopen("POST", "/v1/check", body=bodies[i % 4], headers=headers)
        assert answer.status == 200 and answer.data

    def with_client(i: int) -> None:
        q = QUERIES[i % 4]
        assert not client.check(q.user, q.service, q.role, q.caf).failed

    def from_cache(i: int) -> None:
        q = QUERIES[i % 4]
        assert cached.check(q.user, q.service, q.role, q.caf).cached

    ways = {"raw": raw, "client": with_client, "cached": from_cache}
    for call in ways.values():  # warm up connections and both workers' code paths
        _timed(call, 200)
    # Interleaved call by call (raw, client, cached, then client, cached, raw…), so that drift
    # in the machine's load weighs on every way alike.
    samples: dict[str, list[float]] = {name: [] for name in ways}
    names = list(ways)
    for i in range(calls * rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter_ns()
            ways[name](i)
            samples[name].append((time.perf_counter_ns() - started) / 1000)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    answers = {b: pool.urlopen("POST", "/v1/check", body=b, headers=headers).data for b in bodies}
    pool.close()
    client.close()
    cached.close()
    return {
        "median_us": medians,
        "p90_us": {n: statistics.quantiles(v, n=10)[-1] for n, v in samples.items()},
        "overhead_us": medians["client"] - medians["raw"],
        "ratio": medians["client"] / medians["raw"],
        "calls": calls * rounds,
        "client_work_us": client_work_us(answers),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a database with data (default: the demo)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per way and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pdp-bench-client-") as tmp:
        work = Path(tmp)
        url = args.database_url
        if url is None:
            url = f"sqlite:///{work / 'demo.sqlite3'}"
            db = make_engine(url)
            upgrade(db)
            with sessionmaker(db).begin() as session:
                load_demo(session, paris_today())
            db.dispose()
        key = bench_key(url)
        env = dict(os.environ)
        env.update(PDP_DATABASE_URL=url, PDP_DECISION_LOG="off", PDP_RATE_LIMIT="off")
        with running("client", _pdp_argv(args.workers), env, work, 120) as server:
            figures = measure(server.url, key, args.calls, args.rounds)
    print(f"{figures['calls']:,} sequential single checks per way, one kept-alive connection")
    for name, value in figures["median_us"].items():
        print(f"{name:7} median {value:8.1f} µs   p90 {figures['p90_us'][name]:8.1f} µs")
    print(
        f"client overhead over raw HTTP: {figures['overhead_us']:+.1f} µs a call "
        f"(client/raw = {figures['ratio']:.3f})"
    )
    print(f"the client's own work, in-process: {figures['client_work_us']:.1f} µs a call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
