"""Throughput of the decision log's shipper: entries copied from a segment file into the
``decision_log`` table (and, with them, the ``last_use`` upserts of their allowed checks).

A segment of ``--entries`` check entries is written by a real ``WalLog`` (about half allowed,
each allowed one naming one or two of the two roles each of ``--users`` users works with, the
day being today), then one ``Shipper.ship_once`` copies it to a fresh database at the latest
schema ("first": every right seen for the first time); then a second segment of the same users
is shipped by the same shipper ("again": the steady state of a day's traffic). The time of each
call, best of ``--repeats`` (a new database each time), gives entries per second; the CPU time
of this process (the whole work on SQLite; PostgreSQL's own is not in it) is the figure to
compare on a busy machine.

    python -m bench.shipper                      # SQLite, in a temporary directory
    python -m bench.shipper --database-url postgresql+psycopg://…/bench   # emptied first

``--rounds-of 4000,40000`` measures instead what a round costs on a table that already holds
``--table-rows`` rows (national scale: ``--users 400000 --organisations 20000``): the table is
filled first, through the shipper, then rounds of each size are shipped in turn
(``--repeats`` each), in the order the workers wrote them and, with ``--by-user``, sorted by
user as a bulk move of a staging table into the indexed one would insert them; the CPU time
of the ``ship_once`` per entry, median of the repeats. ``--without-user-indexes`` drops the two
indexes whose keys arrive in random order (by user, by organisation) first.

    python -m bench.shipper --rounds-of 4000,40000,200000 --table-rows 1600000 \
        --users 400000 --organisations 20000 --by-user
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from pdp.adapters.sql.database import make_engine, upgrade
from pdp.core.clock import paris_today
from pdp.records.decision_log import Shipper, WalLog, new_decision_id
from pdp.records.decision_log.entry import Entry

_ROLES = [("cdap", f"T{n}") for n in range(1, 22)] + [("afas", "declarer"), ("dgfip", "enquete")]


def _entries(count: int, users: int, seed: int, organisations: int = 200) -> list[Entry]:
    """``count`` check entries shaped like the service's (see ``DecisionService._decide``)."""
    rng = random.Random(seed)
    today = paris_today().isoformat()
    # Each user works with the same two roles (drawn from their number, whatever the seed).
    held = [random.Random(n).sample(_ROLES, 2) for n in range(users)]
    out: list[Entry] = []
    for _ in range(count):
        login = rng.randrange(users)
        allowed = rng.random() < 0.5
        service, role = rng.choice(held[login]) if allowed else rng.choice(_ROLES)
        grants = []
        if allowed:
            grants.append([f"g{rng.randrange(1000)}", service, role, "group"])
            if rng.random() < 0.2:
                other = held[login][0]
                grants.append([f"g{rng.randrange(1000)}", other[0], other[1], "group"])
        entry: dict[str, Any] = {
            "decision_id": new_decision_id(),
            "ts": time.time(),
            "kind": "check",
            "client": "bench",
            "request_id": None,
            "organisation": f"org{login % organisations}",
            "user": f"user{login}",
            "service": service,
            "role": role,
            "caf": None,
            "at": today,
            "allowed": allowed,
            "reason": "ALLOWED" if allowed else "NO_ROLE",
            "grants": grants,
            "revision": 1,
            "eval_us": 3.2,
        }
        out.append(entry)  # type: ignore[arg-type]  # a dict shaped like an Entry
    return out


def _empty(url: str) -> None:
    db = make_engine(url)
    try:
        upgrade(db)
        with db.begin() as conn:
            for table in ("decision_log", "last_use"):
                exists = db.dialect.has_table(conn, table)
                if exists:
                    conn.execute(text(f"DELETE FROM {table}"))
    finally:
        db.dispose()


def measure_shipping(
    database_url: str | None, entries: int, users: int, repeats: int, seed: int = 1
) -> dict[str, Any]:
    """Best time of one ``ship_once`` of ``entries`` entries, and entries per second."""
    first, second = _entries(entries, users, seed), _entries(entries, users, seed + 1)
    cold: list[tuple[float, float]] = []  # (wall-clock, this process's CPU) seconds
    warm: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="pdp-bench-ship-") as tmp:
        for n in range(repeats):
            url = database_url or f"sqlite:///{Path(tmp) / f'ship-{n}.sqlite3'}"
            _empty(url)
            wal = WalLog(Path(tmp) / f"log-{n}", "buffered")
            db = make_engine(url)
            try:
                shipper = Shipper(wal.directory, db, wal)
                for batch, times in ((first, cold), (second, warm)):
                    for start in range(0, len(batch), 1000):
                        wal.record_many(batch[start : start + 1000])
                    started, cpu = time.perf_counter(), time.process_time()
                    report = shipper.ship_once()
                    times.append((time.perf_counter() - started, time.process_time() - cpu))
                    assert report.shipped == entries, report
            finally:
                wal.close()
                db.dispose()
    return {
        "backend": (database_url or "sqlite").split(":", 1)[0],
        "entries": entries,
        "users": users,
        # A new shipper, every user's rights seen for the first time today.
        "first_best_s": round(min(cold)[0], 3),
        "first_entries_per_s": round(entries / min(cold)[0]),
        "first_cpu_s": round(min(c for _, c in cold), 3),
        # The same shipper, the same users again (the steady state of a day's traffic).
        "again_best_s": round(min(warm)[0], 3),
        "again_entries_per_s": round(entries / min(warm)[0]),
        "again_cpu_s": round(min(c for _, c in warm), 3),
    }


def measure_rounds(
    database_url: str | None,
    sizes: list[int],
    *,
    table_rows: int,
    users: int,
    organisations: int,
    repeats: int = 3,
    by_user: bool = False,
    without_user_indexes: bool = False,
    out: Any = print,
) -> dict[str, Any]:
    """CPU time of one ``ship_once`` per entry, by round size, into a table of ``table_rows``
    rows (see the module)."""
    figures: dict[str, Any] = {"table_rows": table_rows, "users": users}
    figures |= {"organisations": organisations, "by_user": by_user}
    figures["without_user_indexes"] = without_user_indexes
    with tempfile.TemporaryDirectory(prefix="pdp-bench-ship-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'rounds.sqlite3'}"
        _empty(url)
        db = make_engine(url)
        wal = WalLog(Path(tmp) / "log", "buffered")
        try:
            if without_user_indexes:
                with db.begin() as conn:
                    for index in ("ix_decision_log_user_ts", "ix_decision_log_organisation_ts"):
                        conn.execute(text(f"DROP INDEX IF EXISTS {index}"))
            shipper = Shipper(wal.directory, db, wal)
            seed = 1

            def ship(count: int, ordered: bool) -> float:
                """Ship ``count`` new entries in one ``ship_once``; its CPU time."""
                nonlocal seed
                seed += 1
                batch = _entries(count, users, seed, organisations)
                if ordered:
                    batch.sort(key=lambda e: e["user"] or "")
                for start in range(0, count, 1000):
                    wal.record_many(batch[start : start + 1000])
                cpu = time.process_time()
                report = shipper.ship_once()
                spent = time.process_time() - cpu
                assert report.shipped == count, report
                shipper.checkpoint()
                return spent

            started = time.perf_counter()
            for start in range(0, table_rows, 10_000):
                ship(min(10_000, table_rows - start), False)
            figures["fill_s"] = round(time.perf_counter() - started, 1)
            for size in sizes:
                spent = [ship(size, by_user) for _ in range(repeats)]
                per_entry = [round(s / size * 1e6, 1) for s in spent]
                figures[str(size)] = {
                    "cpu_us_per_entry": statistics.median(per_entry),
                    "rounds": per_entry,
                }
                out(f"rounds of {size:,}: {statistics.median(per_entry)} µs of CPU an entry")
        finally:
            wal.close()
            db.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--organisations", type=int, default=200)
    parser.add_argument("--rounds-of", default=None, help="round sizes, comma-separated")
    parser.add_argument("--table-rows", type=int, default=1_600_000)
    parser.add_argument("--by-user", action="store_true")
    parser.add_argument("--without-user-indexes", action="store_true")
    args = parser.parse_args()
    if args.rounds_of:
        figures = measure_rounds(
            args.database_url,
            [int(n) for n in args.rounds_of.split(",")],
            table_rows=args.table_rows,
            users=args.users,
            organisations=args.organisations,
            repeats=args.repeats,
            by_user=args.by_user,
            without_user_indexes=args.without_user_indexes,
        )
        print(json.dumps(figures, indent=2))
        return
    print(
        json.dumps(
            measure_shipping(args.database_url, args.entries, args.users, args.repeats), indent=2
        )
    )


if __name__ == "__main__":
    main()
