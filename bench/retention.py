"""``python -m bench.retention``: pruning the decision log, and a person's file, at volume.

Fills ``decision_log`` with ``--rows`` decisions spread evenly over the last 18 months (2,000
users; one of them, ``heavy.user``, holds a tenth of them), then prints:

- **prune**: the seconds one retention round (12 months) takes and what it removed (whole
  partitions on PostgreSQL, batches of 5,000 on SQLite); then, for contrast, the same rows put
  back and removed by one plain ``DELETE``;
- **person file**: for ``heavy.user`` and for a user with a handful of decisions, the bytes of
  the streamed document, the seconds, and the tracemalloc peak while streaming it (constant
  memory means: the same small peak whatever the number of decisions).

The database must be a scratch one: its decision log is emptied first. SQLite: a temporary file
(default); PostgreSQL: ``--database-url``, whose database name must contain ``bench``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import orjson
from sqlalchemy import Engine, insert, text
from sqlalchemy.engine import make_url

from pdp.adapters.sql import partitions
from pdp.adapters.sql.database import make_engine, upgrade
from pdp.adapters.sql.models import DecisionRecord, User
from pdp.adapters.sql.partitions import Month
from pdp.core.clock import paris_today
from pdp.core.masking import Masker
from pdp.records.retention import Retention
from pdp.services.person_file import open_file

HEAVY = "heavy.user"
LIGHT = "light.user"
USERS = 2000
MONTHS = 18
CHUNK = 10_000


def _rows(count: int, start_us: int, end_us: int, seed: int) -> list[dict[str, object]]:
    step = (end_us - start_us) // max(count, 1)
    out = []
    for n in range(count):
        user = HEAVY if n % 10 == 0 else f"user.{(n * 7 + seed) % USERS}"
        ts_us = start_us + n * step
        decision_id = secrets.token_hex(16)
        entry = {"decision_id": decision_id, "ts": ts_us / 1e6, "kind": "check", "user": user}
        out.append(
            {
                "decision_id": decision_id,
                "ts_us": ts_us,
                "kind": "check",
                "organisation": "bench-org",
                "user": user,
                "service": "cdap",
                "allowed": n % 2 == 0,
                "reason": "ALLOWED" if n % 2 == 0 else "ROLE_NOT_GRANTED",
                "revision": 1,
                "entry": orjson.dumps(entry).decode(),
                "allocataire": None,
            }
        )
    return out


def fill(db: Engine, count: int, start_us: int, end_us: int, seed: int = 0) -> None:
    """Insert ``count`` decisions between the two instants, in chunks."""
    statement = insert(DecisionRecord)
    done = 0
    while done < count:
        n = min(CHUNK, count - done)
        chunk_start = start_us + (end_us - start_us) * done // count
        chunk_end = start_us + (end_us - start_us) * (done + n) // count
        with db.begin() as conn:
            conn.execute(statement, _rows(n, chunk_start, chunk_end, seed + done))
        done += n


def _users(db: Engine) -> None:
    with db.begin() as conn:
        for login in (HEAVY, LIGHT):
            conn.execute(insert(User).values(login=login, opens_on=dt.date(2020, 1, 1)))


def _file(db: Engine, login: str) -> tuple[int, float, int]:
    """Bytes, seconds and tracemalloc peak of streaming ``login``'s file."""
    found = open_file(db, Masker(), login, 12)
    started = time.perf_counter()
    size = sum(len(chunk) for chunk in found.chunks())
    seconds = time.perf_counter() - started
    tracemalloc.start()
    for _chunk in found.chunks():
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return size, seconds, peak


def measure(db: Engine, rows: int, out: list[str]) -> dict[str, object]:
    """Fill, then time the pruning and the files; lines printed appended to ``out``."""
    today = paris_today()
    first = Month.of(today).plus(1 - MONTHS)
    start_us, end_us = first.start_us, int(time.time() * 1_000_000)
    with db.begin() as conn:
        conn.execute(text("DELETE FROM decision_log"))
        conn.execute(text("DELETE FROM users WHERE login IN (:h, :l)"), {"h": HEAVY, "l": LIGHT})
        if partitions.is_partitioned(conn):
            partitions.ensure_months(conn, [first.plus(n) for n in range(MONTHS + 3)])
    _users(db)
    fill(db, rows, start_us, end_us)
    fill(db, 5, end_us - 60_000_000, end_us)  # the light user's few (they are not heavy.user)
    with db.begin() as conn:
        conn.execute(
            text('UPDATE decision_log SET "user" = :l WHERE ts_us >= :t AND "user" <> :h'),
            {"l": LIGHT, "t": end_us - 60_000_000, "h": HEAVY},
        )
    figures: dict[str, object] = {"rows": rows, "backend": db.dialect.name}
    for login in (HEAVY, LIGHT):
        size, seconds, peak = _file(db, login)
        figures[f"file_{login}"] = {"bytes": size, "seconds": seconds, "tracemalloc_peak": peak}
        out.append(
            f"person file {login}: {size:,} bytes in {seconds:.2f} s, "
            f"tracemalloc peak {peak / 1024:.0f} KiB"
        )
    cutoff = Month.of(today).plus(-11)
    with db.connect() as conn:
        old = partitions.count_before(conn, cutoff.start_us)
    started = time.perf_counter()
    report = Retention(db, 12).prune()
    seconds = time.perf_counter() - started
    figures["prune"] = {"rows": old, "seconds": seconds, "partitions": len(report.dropped)}
    out.append(
        f"prune (12 months): {old:,} old rows, {len(report.dropped)} partitions dropped, "
        f"{report.deleted:,} rows deleted, {seconds:.3f} s"
    )
    fill(db, old, start_us, cutoff.start_us, seed=1)  # the same amount back, then one DELETE
    started = time.perf_counter()
    with db.begin() as conn:
        if partitions.is_partitioned(conn):
            partitions.ensure_months(conn, [first.plus(n) for n in range(MONTHS)])
        conn.execute(text("DELETE FROM decision_log WHERE ts_us < :t"), {"t": cutoff.start_us})
    seconds = time.perf_counter() - started
    figures["plain_delete"] = {"rows": old, "seconds": seconds}
    out.append(f"for contrast, one plain DELETE of the same {old:,} rows: {seconds:.3f} s")
    return figures


def main(argv: list[str] | None = None) -> int:
    """Parse the options, measure, print."""
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args(argv)
    if args.database_url:
        name = make_url(args.database_url).database or ""
        if "bench" not in name:
            print("the database name must contain 'bench' (its log is emptied)", file=sys.stderr)
            return 2
        url = args.database_url
    else:
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'retention-bench.sqlite3'}"
    db = make_engine(url)
    upgrade(db)
    lines: list[str] = []
    measure(db, args.rows, lines)
    for line in lines:
        print(line)
    db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
