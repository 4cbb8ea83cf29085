"""Check throughput of a ``pdp serve`` while administration writes arrive.

``python -m bench.write_load --database-url sqlite:////abs/copy.sqlite3`` (a copy: it is
written to) starts ``pdp serve`` with ``--workers`` workers on the database, loads it with wrk
(``/v1/check``, ``--connections`` connections, the queries of ``bench.run.make_queries``) for
``--duration`` seconds, alternately without writes and while this process commits
``--rate`` writes a second to the same database, as another instance would: each attaches an
open user of the largest organisation to an open group of it (R-MEM-1) and logs the change as
that user's (``pdp.engine.snapshot.USER``), so that every worker applies it at its next poll
(``PDP_REFRESH_INTERVAL``). Rounds are interleaved; the loss is that of the median rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from bench.http import _pdp_argv, _pdp_env, bench_key, check_body, running, write_script, wrk
from bench.run import make_queries
from pdp.adapters.sql.database import bump_revision, log_changes, make_engine
from pdp.adapters.sql.models import Membership
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.core.clock import FOREVER, CachedToday
from pdp.engine.index import Index
from pdp.engine.snapshot import USER


def _targets(index: Index, day: int) -> tuple[int, list[tuple[int, int]]]:
    """The largest organisation and (user, group) pairs to attach: each open user of it with an
    open group they are not a member of."""
    org = max(index.orgs.values(), key=lambda o: len(o.logins))
    groups = sorted(g.id for g in org.groups.values() if g.start <= day < g.end)
    pairs = []
    for login in org.logins:
        user = index.users[login]
        if user.start <= day and user.end == FOREVER:
            mine = {gid for gid, _s, _e in user.memberships}
            free = [gid for gid in groups if gid not in mine]
            if free:
                pairs.append((user.id, free[0]))
    return org.id, pairs


def _writer(
    database_url: str,
    org_id: int,
    pairs: list[tuple[int, int]],
    rate: float,
    stop: threading.Event,
    spent: list[float],
) -> None:
    """Commit one attachment every 1/``rate`` s until ``stop``; add each write's seconds to
    ``spent``."""
    db = make_engine(database_url)
    today = CachedToday()()
    try:
        while not stop.is_set() and pairs:
            started = time.perf_counter()
            uid, gid = pairs.pop()
            with Session(db) as s, s.begin():
                revision = bump_revision(s)
                row = {"user_id": uid, "group_id": gid, "opens_on": today}
                s.execute(insert(Membership), [row])
                log_changes(s, revision, (), "bench write load", [(org_id, USER, uid)])
            spent.append(time.perf_counter() - started)
            stop.wait(max(0.0, 1 / rate - (time.perf_counter() - started)))
    finally:
        db.dispose()


def measure_write_load(
    database_url: str,
    *,
    workers: int = 4,
    rate: float = 10.0,
    duration_s: int = 10,
    rounds: int = 2,
    connections: int = 16,
) -> dict[str, Any]:
    """Requests per second of ``pdp serve`` without and with ``rate`` writes a second (see the
    module); the database is written to (pass a copy)."""
    catalogue = load_catalogue()
    db = make_engine(database_url)
    index = Index.build(SqlSnapshotSource(db).load())
    db.dispose()
    day = CachedToday()().toordinal()
    org_id, pairs = _targets(index, day)
    queries = make_queries(index, catalogue, random.Random(1), 20_000)
    del index
    needed = int(rate * duration_s * rounds * 1.5)
    if len(pairs) < needed:
        raise ValueError(f"{len(pairs)} users to attach, {needed} needed")
    bodies = [json.dumps(check_body((q.user, q.service, q.role, q.caf))) for q in queries]
    figures: dict[str, Any] = {"workers": workers, "rate": rate, "duration_s": duration_s}
    with tempfile.TemporaryDirectory(prefix="pdp-bench-write-load-") as tmp:
        work = Path(tmp)
        env = dict(os.environ)
        env.update(PDP_DATABASE_URL=database_url, PDP_RATE_LIMIT="1000000/second")
        script = write_script(work / "single.lua", bodies, "/v1/check", bench_key(database_url))
        with running(
            "pdp", _pdp_argv(workers), _pdp_env(env, work, "pdp", "off"), work, 600
        ) as pdp:
            quiet: list[float] = []
            loaded: list[float] = []
            write_s: list[float] = []
            wrk(pdp.url, script, connections, 3, 2)  # warm-up: every worker's first requests
            for _ in range(rounds):
                quiet.append(wrk(pdp.url, script, connections, duration_s, 2)["rps"])
                stop = threading.Event()
                args = (database_url, org_id, pairs, rate, stop, write_s)
                thread = threading.Thread(target=_writer, args=args)
                thread.start()
                loaded.append(wrk(pdp.url, script, connections, duration_s, 2)["rps"])
                stop.set()
                thread.join()
    figures["rps_without_writes"] = quiet
    figures["rps_with_writes"] = loaded
    figures["writes"] = len(write_s)
    figures["writes_per_s"] = len(write_s) / (duration_s * rounds)
    figures["write_median_ms"] = statistics.median(write_s) * 1000 if write_s else None
    base, under = statistics.median(quiet), statistics.median(loaded)
    figures["loss_pct"] = 100 * (1 - under / base)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.write_load", description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    figures = measure_write_load(
        args.database_url,
        workers=args.workers,
        rate=args.rate,
        duration_s=args.duration,
        rounds=args.rounds,
        connections=args.connections,
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
