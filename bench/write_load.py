"""Check throughput while administration writes arrive: ``python -m bench.write_load``.

A production-like server (``pdp serve``, 4 workers by default, decision log buffered, rate
limit on at a level the load never reaches) is loaded by wrk with single checks, in
interleaved rounds: without writes, then with a writer sending ``--rate`` writes a second
through the administration API (a partner admin attaching one of their organisation's users to
one of its groups, each pair once: ``POST /v1/organisations/<org>/users/<login>/memberships``
with a bearer token). Every worker applies each write to its index before its next answer,
so a write costs every worker its refresh. The loss is the throughput the writes cost, median
against median; the writes' own latency is reported too.

Works on a copy: the writes stay in the database. Example::

    cp bench/results/bench-scale1-seed1.sqlite3 /tmp/load.sqlite3
    python -m bench.write_load --database-url sqlite:////tmp/load.sqlite3 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import secrets
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select

from bench.http import _pdp_argv, _pdp_env, bench_key, check_body, running, write_script, wrk
from bench.run import make_queries
from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import Group, Membership, Organisation, PartnerAdmin, User
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.core.config import Settings
from pdp.engine.policy import PolicyEngine
from pdp.services.tokens import mint

Write = tuple[str, str, str, str]  # (admin login, organisation code, user login, group code)


def _open(model: Any, day: dt.date) -> Any:
    return and_(model.opens_on <= day, or_(model.closes_on.is_(None), model.closes_on > day))


def choose_writes(database_url: str, count: int, seed: int) -> list[Write]:
    """``count`` attachments an open partner admin may make: a user of the organisation, open,
    to an open group of it they are not in. Spread over the organisations that have an admin."""
    db = make_engine(database_url)
    day = dt.date.today()
    rng = random.Random(seed)
    try:
        with db.connect() as conn:
            admins = list(
                conn.execute(
                    select(Organisation.id, Organisation.code, User.login)
                    .join(PartnerAdmin, PartnerAdmin.organisation_id == Organisation.id)
                    .join(User, User.id == PartnerAdmin.user_id)
                    .where(_open(PartnerAdmin, day), _open(User, day))
                    .order_by(Organisation.id)
                ).all()
            )
            rng.shuffle(admins)
            found: list[Write] = []
            chosen: set[tuple[str, str, str]] = set()  # (organisation, user, group)
            for org_id, org_code, admin in admins:
                users = conn.execute(
                    select(User.id, User.login).where(
                        User.organisation_id == org_id, _open(User, day)
                    )
                ).all()
                groups = conn.execute(
                    select(Group.id, Group.code).where(
                        Group.organisation_id == org_id, _open(Group, day)
                    )
                ).all()
                taken = set(
                    conn.execute(
                        select(Membership.user_id, Membership.group_id)
                        .join(User, User.id == Membership.user_id)
                        .where(User.organisation_id == org_id)
                    ).all()
                )
                pairs = [(u, g) for u in users for g in groups if (u[0], g[0]) not in taken]
                for (_, login), (_, code) in rng.sample(pairs, min(len(pairs), 3)):
                    if (org_code, login, code) not in chosen:  # drawn again with its other admin
                        chosen.add((org_code, login, code))
                        found.append((admin, org_code, login, code))
                if len(found) >= count:
                    return found
            return found
    finally:
        db.dispose()


class Writer(threading.Thread):
    """Sends the writes at ``rate`` a second until stopped; records each one's latency."""

    def __init__(self, url: str, writes: list[Write], rate: float, secret: str) -> None:
        super().__init__(daemon=True)
        self.url, self.writes, self.rate = url, writes, rate
        self.settings = Settings(jwt_secret=secret)
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        step = 1 / self.rate
        due = time.monotonic()
        while not self.stop.is_set() and self.writes:
            admin, org, login, group = self.writes.pop()
            request = urllib.request.Request(
                f"{self.url}/v1/organisations/{org}/users/{login}/memberships",
                data=json.dumps({"group": group}).encode(),
                method="POST",
                headers={
                    "Authorization": f"Bearer {mint(self.settings, admin)}",
                    "Content-Type": "application/json",
                },
            )
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=30) as reply:
                    reply.read()
                self.latencies.append(time.perf_counter() - started)
            except urllib.error.HTTPError as exc:
                self.failures.append(f"{exc.code} {exc.read()[:200]!r}")
            except OSError as exc:
                self.failures.append(str(exc))
            due += step
            self.stop.wait(max(0.0, due - time.monotonic()))


def measure(
    database_url: str,
    *,
    workers: int = 4,
    connections: int = 16,
    rounds: int = 3,
    duration_s: int = 10,
    rate: float = 10.0,
    seed: int = 1,
    decision_log: str = "buffered",
    out: Any = print,
) -> dict[str, Any]:
    """Interleaved rounds with and without writes; return the figures."""
    catalogue = load_catalogue()
    engine = PolicyEngine(SqlSnapshotSource(make_engine(database_url)), catalogue)
    engine.load()
    queries = [
        (q.user, q.service, q.role, q.caf)
        for q in make_queries(engine.index, catalogue, random.Random(seed), 20_000)
    ]
    del engine
    writes = choose_writes(database_url, int(rate * duration_s * rounds * 1.2) + 10, seed)
    out(f"{len(writes)} attachments chosen")
    secret = secrets.token_urlsafe(48)
    figures: dict[str, Any] = {"workers": workers, "connections": connections, "rate": rate}
    figures["decision_log"] = decision_log
    with tempfile.TemporaryDirectory(prefix="pdp-bench-writes-") as tmp:
        work = Path(tmp)
        env = dict(os.environ)
        env.update(
            PDP_DATABASE_URL=database_url,
            PDP_RATE_LIMIT="1000000/second",
            PDP_JWT_SECRET=secret,
            PYTHONPATH=os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")]),
        )
        key = bench_key(database_url)
        script = write_script(
            work / "single.lua", [json.dumps(check_body(q)) for q in queries], "/v1/check", key
        )
        with running(
            "pdp", _pdp_argv(workers), _pdp_env(env, work, "pdp", decision_log), work, 900
        ) as server:
            out(f"pdp serve ({workers} workers) ready in {server.ready_s:.1f} s")
            quiet: list[float] = []
            loaded: list[float] = []
            latencies: list[float] = []
            failures: list[str] = []
            for _ in range(rounds):
                quiet.append(wrk(server.url, script, connections, duration_s, 2)["rps"])
                writer = Writer(server.url, writes, rate, secret)
                writer.start()
                loaded.append(wrk(server.url, script, connections, duration_s, 2)["rps"])
                writer.stop.set()
                writer.join()
                latencies += writer.latencies
                failures += writer.failures
                out(f"round: {quiet[-1]:,.0f} checks/s quiet, {loaded[-1]:,.0f} with writes")
    figures.update(
        quiet_rps=statistics.median(quiet),
        loaded_rps=statistics.median(loaded),
        quiet_runs=quiet,
        loaded_runs=loaded,
        writes=len(latencies),
        write_failures=failures[:5],
        write_failed=len(failures),
        write_p50_ms=statistics.median(latencies) * 1000 if latencies else None,
        write_max_ms=max(latencies) * 1000 if latencies else None,
    )
    figures["loss"] = 1 - figures["loaded_rps"] / figures["quiet_rps"]
    return figures


def main(argv: list[str] | None = None) -> None:
    """Print the figures (and write them as JSON with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.write_load", description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--decision-log", choices=("off", "buffered", "sync"), default="buffered")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    f = measure(
        args.database_url,
        workers=args.workers,
        connections=args.connections,
        rounds=args.rounds,
        duration_s=args.duration,
        rate=args.rate,
        decision_log=args.decision_log,
    )
    p50 = f["write_p50_ms"]
    print(
        f"{f['workers']} workers, {f['connections']} connections, {f['rate']:g} writes/s: "
        f"{f['quiet_rps']:,.0f} checks/s without writes, {f['loaded_rps']:,.0f} with "
        f"(loss {f['loss']:.1%}); {f['writes']} writes, median "
        f"{'-' if p50 is None else f'{p50:.1f}'} ms, {f['write_failed']} failed"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(f, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
