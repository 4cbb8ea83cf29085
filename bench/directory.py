"""``python -m bench.directory DATABASE_URL``: the organisation's users and groups by pages, and
searched, on the largest organisation of the national dataset (``bench/generate.py``), through
the administration service as an operator calls it (the engine loaded as a server loads it).

Prints, for the users list (pages of 100, then of 1,000) and the groups list: pages, rows, the
median and the slowest page in milliseconds; and the time of a few searches.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from sqlalchemy import func, select

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import Organisation, User
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.core.masking import Masker
from pdp.engine.policy import PolicyEngine
from pdp.records.audit_trail import AuditChain
from pdp.records.decision_log import MemoryLog
from pdp.services.admin import groups, users
from pdp.services.admin.service import AdminService


def _walk(page: Callable[[str | None], tuple[int, str | None]]) -> tuple[int, int, list[float]]:
    """Follow ``page`` (rows, next cursor) to the end; pages, rows, each page's milliseconds."""
    cursor: str | None = None
    times: list[float] = []
    rows = 0
    while True:
        started = time.perf_counter()
        count, cursor = page(cursor)
        times.append((time.perf_counter() - started) * 1000)
        rows += count
        if cursor is None:
            return len(times), rows, times


def main(argv: list[str] | None = None) -> int:
    """Measure and print (see the module)."""
    parser = argparse.ArgumentParser(prog="python -m bench.directory")
    parser.add_argument("database_url")
    args = parser.parse_args(argv)
    db = make_engine(args.database_url)
    catalogue = load_catalogue()
    engine = PolicyEngine(SqlSnapshotSource(db), catalogue)
    engine.load()
    svc = AdminService(db, engine, catalogue, AuditChain("k" * 40, Masker()), MemoryLog(), None)
    with db.connect() as conn:
        org, size = conn.execute(
            select(Organisation.code, func.count(User.id))
            .join(User, User.organisation_id == Organisation.id)
            .group_by(Organisation.code)
            .order_by(func.count(User.id).desc())
            .limit(1)
        ).one()
        operator = conn.execute(
            select(User.login).where(User.is_operator.is_(True)).order_by(User.login).limit(1)
        ).scalar_one()
    print(f"largest organisation: {org}, {size} users; acting as {operator}")
    for limit in (100, 1000):

        def users_page(cursor: str | None, limit: int = limit) -> tuple[int, str | None]:
            out = users.list_users(svc, operator, org, None, limit=limit, cursor=cursor)
            return len(out.users), out.next_cursor

        pages, rows, times = _walk(users_page)
        print(
            f"users, pages of {limit}: {pages} pages, {rows} rows, "
            f"median {statistics.median(times):.1f} ms, slowest {max(times):.1f} ms"
        )

    def groups_page(cursor: str | None) -> tuple[int, str | None]:
        out = groups.list_groups(svc, operator, org, limit=100, cursor=cursor)
        return len(out.groups), out.next_cursor

    pages, rows, times = _walk(groups_page)
    print(
        f"groups, pages of 100: {pages} pages, {rows} rows, "
        f"median {statistics.median(times):.1f} ms, slowest {max(times):.1f} ms"
    )
    for q in ("a", "user1", "@", "zzz"):
        started = time.perf_counter()
        found = users.list_users(svc, operator, org, None, q=q, limit=100)
        ms = (time.perf_counter() - started) * 1000
        more = "+" if found.next_cursor else ""
        print(f"search q={q!r}: {len(found.users)}{more} users on the first page, {ms:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
