"""Time of the national report of dormant rights (``pdp.services.dormant.report``) on the
national dataset.

The dataset (``bench/generate.py``, scale 1.0 by default: 20,000 organisations, 400,000 users)
is generated into ``--database-url`` (default: the SQLite file of ``bench/results/``) unless it
is there already. The ``last_use`` table is then filled as the shipper would have left it after
months of traffic: for ``--used`` of the users (70% by default), each right they hold today was
last used on a day drawn uniformly from the last 200 days (the rest never used). The report
runs through the real service, as ``GET /v1/dormant-rights`` runs it (an operator, authorised
and logged), ``--repeats`` times; the figures are its median and maximum time, and what it
found. The largest organisation's report is timed too.

    python -m bench.dormant                     # scale 1.0 in bench/results/ (generated once)
    python -m bench.dormant --scale 0.1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select, text

from bench.generate import default_database_url, generate
from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import LastUse, Organisation
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.policy import PolicyEngine
from pdp.records.audit_trail import AuditChain
from pdp.records.decision_log import MemoryLog
from pdp.records.last_use import LastUseWriter
from pdp.services import dormant
from pdp.services.admin.service import AdminService


def _prepare(url: str, scale: float, seed: int) -> float:
    """Generate the dataset unless the database holds one; return the seconds it took."""
    db = make_engine(url)
    try:
        try:
            with db.connect() as conn:
                count = conn.execute(select(func.count()).select_from(Organisation)).scalar_one()
        except Exception:
            count = 0
        if count:
            return 0.0
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        return generate(db, scale, seed).seconds
    finally:
        db.dispose()


def _fill_last_uses(svc: AdminService, share: float, seed: int) -> int:
    """Last uses of ``share`` of the users' rights held today; return how many rows."""
    rng = random.Random(seed)
    index, today = svc.engine.index, svc.today()
    day = today.toordinal()
    uses: dict[tuple[str, str, str], dt.date] = {}
    for login, user in index.users.items():
        if rng.random() >= share:
            continue
        for service, entries in user.grants.items():
            for start, end, role, _ in entries:
                if start <= day < end:
                    uses[(login, service, role)] = today - dt.timedelta(days=rng.randrange(200))
    with svc.db.begin() as conn:
        conn.execute(text(f"DELETE FROM {LastUse.__tablename__}"))
        writer = LastUseWriter(svc.db.dialect.name)
        items = list(uses.items())
        for start in range(0, len(items), 50_000):
            writer.write(conn, dict(items[start : start + 50_000]))
    return len(uses)


def _timed(call: Any, repeats: int) -> tuple[list[float], list[float], Any]:
    """Wall-clock and CPU times of ``repeats`` calls, and the last answer."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        out = call()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return times, cpu, out


def measure(url: str, scale: float, seed: int, used: float, repeats: int) -> dict[str, Any]:
    """Generate (once), fill the last uses, time the reports; return the figures."""
    generated = _prepare(url, scale, seed)
    db = make_engine(url)
    try:
        catalogue = load_catalogue()
        engine = PolicyEngine(SqlSnapshotSource(db), catalogue)
        started = time.perf_counter()
        engine.load()
        load_s = time.perf_counter() - started
        svc = AdminService(db, engine, catalogue, AuditChain(), MemoryLog(), None)
        operator = next(u.login for u in engine.index.users.values() if u.is_operator)
        started = time.perf_counter()
        rows = _fill_last_uses(svc, used, seed)
        fill_s = time.perf_counter() - started
        times, cpu, report = _timed(lambda: dormant.report(svc, operator, None, 90), repeats)
        started = time.perf_counter()
        body = orjson.dumps(report.model_dump(mode="json"))  # what the API sends
        json_s = time.perf_counter() - started
        largest = max(engine.index.orgs.values(), key=lambda o: len(o.logins))
        org_times, _, org_report = _timed(
            lambda: dormant.report(svc, operator, largest.code, 90), repeats
        )
    finally:
        db.dispose()
    return {
        "database": url.split("://", 1)[0],
        "scale": scale,
        "generate_s": round(generated, 1),
        "index_load_s": round(load_s, 1),
        "users": len(engine.index.users),
        "last_use_rows": rows,
        "last_use_fill_s": round(fill_s, 1),
        "national": {
            "median_s": round(statistics.median(times), 2),
            "max_s": round(max(times), 2),
            "median_cpu_s": round(statistics.median(cpu), 2),
            "dormant_users": report.dormant_users,
            "dormant_rights": report.dormant_rights,
            "json_mib": round(len(body) / 2**20, 1),
            "json_s": round(json_s, 2),
        },
        "largest_organisation": {
            "code": largest.code,
            "users": len(largest.logins),
            "median_ms": round(statistics.median(org_times) * 1000, 1),
            "dormant_users": org_report.dormant_users,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dormant", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--used", type=float, default=0.7)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    url = args.database_url or default_database_url(args.scale, args.seed)
    print(json.dumps(measure(url, args.scale, args.seed, args.used, args.repeats), indent=2))


if __name__ == "__main__":
    main()
