"""The production server's memory under varied load: ``python -m bench.memory``.

Starts ``pdp serve`` as in production (``--workers 4``, decision log buffered and shipped) on a
generated store, then loads it with single checks drawn over the whole users table (200,000
queries: about 160,000 distinct users at national scale) in rounds of ``--duration`` seconds,
and prints the server's PSS (master, workers and the log's shipper, ``bench.http.server_memory``)
once ready and after each round. PSS divides each shared page among the processes sharing it,
so the total is what the server really costs; a worker's share grows with every page of the
index it copies (copy-on-write) while answering.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

from bench.http import (
    _pdp_argv,
    _pdp_env,
    bench_key,
    check_body,
    running,
    server_memory,
    wait_shipped,
    write_script,
    wrk,
)
from bench.run import make_queries
from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.index import Index


def _line(moment: str, rps: float | None, memory: dict[str, Any]) -> str:
    workers = ", ".join(f"{w['pss_mib']:.0f}" for w in memory["workers"])
    rate = f"{rps:,.0f} checks/s; " if rps is not None else ""
    return (
        f"{moment}: {rate}total PSS {memory['total_pss_mib']:,.0f} MiB"
        f" (master {memory['master']['pss_mib']:.0f}, workers {workers})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--database-url", required=True, help="a generated store (bench generate)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=20, help="seconds per round")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    index = Index.build(SqlSnapshotSource(make_engine(args.database_url)).load())
    queries = make_queries(index, load_catalogue(), random.Random(7), args.queries)
    distinct = len({q.user for q in queries})
    del index
    bodies = [json.dumps(check_body((q.user, q.service, q.role, q.caf))) for q in queries]
    print(f"{len(bodies):,} queries over {distinct:,} users, {args.workers} workers")
    with tempfile.TemporaryDirectory(prefix="pdp-bench-memory-") as tmp:
        work = Path(tmp)
        env = dict(os.environ)
        env.update(
            PDP_DATABASE_URL=args.database_url,
            PYTHONPATH=os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")]),
            PDP_RATE_LIMIT="1000000/second",
        )
        script = write_script(
            work / "single.lua", bodies, "/v1/check", bench_key(args.database_url)
        )
        log_dir = work / "decision-log-pdp"
        server_env = _pdp_env(env, work, "pdp", "buffered")
        with running("pdp", _pdp_argv(args.workers), server_env, work, 600.0) as pdp:
            print(
                _line(
                    f"ready in {pdp.ready_s:.1f} s", None, server_memory(pdp.process.pid, log_dir)
                )
            )
            for n in range(1, args.rounds + 1):
                run = wrk(pdp.url, script, args.connections, args.duration, 2)
                memory = server_memory(pdp.process.pid, log_dir)
                print(_line(f"after round {n}", run["rps"], memory), flush=True)
            wait_shipped(log_dir, 300.0)


if __name__ == "__main__":
    main()
