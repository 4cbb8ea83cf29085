"""Does the users table keep the workers' memory flat? ``python -m bench.compact``.

The index held each user as Python objects: a ``UserEntry``, its lists, tuples and dicts.
gunicorn forks the workers after the index is built, so they share its pages; but CPython
writes the reference count of every object a check reads, and each page a worker touches is
copied into that worker (copy-on-write). After enough varied queries every worker held a
private copy of most of the users: 4 workers at national scale grew from 0.9 to 2.6 GiB of PSS.

The index now holds them in ``pdp.engine.users_table``: one ``marshal`` record per user in a
single ``bytes``, found through an open-addressing ``array`` of positions, decoded on each
lookup. Reading a slice of a ``bytes`` or an element of an ``array`` writes nothing into them.

This bench measures both layouts on the same data: the objects (every user decoded once into a
dict, as the index held them before) and the table. It prints the time to find a user and read
their grants for a service (median over the same queries), and the total PSS of ``--workers``
processes forked after the build that each look up every user (the worst case: every page
touched by every worker).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from bench.http import process_memory
from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.entries import UserEntry
from pdp.engine.policy import PolicyEngine


def _reader(users: Mapping[str, UserEntry]) -> Callable[[str, str], Any]:
    def read(login: str, service: str) -> Any:
        user = users.get(login)
        return None if user is None else user.grants.get(service)

    return read


def _median_ns(read: Callable[[str, str], Any], queries: list[tuple[str, str]]) -> float:
    times = []
    clock = time.perf_counter_ns
    for login, service in queries:
        started = clock()
        read(login, service)
        times.append(clock() - started)
    return float(statistics.median(times))


def _forked_pss(read: Callable[[str, str], Any], logins: bytes, workers: int) -> float:
    """Fork ``workers`` children that each read every user (``logins``: one per line, so that
    the children ask with strings of their own, as a request does, instead of touching the
    index's); return the parent's and children's PSS (MiB) once all have read."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the child: read everyone, say so, wait to be measured
            os.close(ready_r)
            for login in logins.split(b"\n"):
                read(login.decode(), "cdap")
            gc.collect()
            os.write(ready_w, b"x")
            os.read(go_r, 1)
            os._exit(0)
        children.append(pid)
    for _ in children:
        os.read(ready_r, 1)
    total = process_memory(os.getpid())["pss_mib"]
    total += sum(process_memory(pid)["pss_mib"] for pid in children)
    os.write(go_w, b"x" * workers)
    for pid in children:
        os.waitpid(pid, 0)
    for fd in (ready_r, ready_w, go_r, go_w):
        os.close(fd)
    return float(total)


def main(argv: list[str] | None = None) -> None:
    """Build the index, then a dict of its users as objects, and print both figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.compact", description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200_000)
    args = parser.parse_args(argv)
    engine = PolicyEngine(SqlSnapshotSource(make_engine(args.database_url)), load_catalogue())
    engine.load()
    table = engine.index.users
    logins = list(table)
    rng = random.Random(1)
    queries = [(rng.choice(logins), "cdap") for _ in range(args.queries)]
    objects = dict(table.items())  # every user decoded once: the former layout
    readers = (("objects", _reader(objects)), ("table", _reader(table)))
    for login, service in queries[:2000]:  # the same answers
        assert readers[0][1](login, service) == readers[1][1](login, service), login
    gc.collect()
    gc.freeze()
    print(f"{len(logins):,} users; table: {table.size_bytes() / 2**20:,.1f} MiB")
    for name, read in readers:
        a = _median_ns(read, queries)
        b = _median_ns(read, queries)
        print(f"{name}: find a user and their grants, median {min(a, b) / 1000:.2f} µs")
    base = process_memory(os.getpid())["pss_mib"]
    print(f"the process before forking (both layouts in it): PSS {base:,.0f} MiB")
    for name, read in readers:
        pss = _forked_pss(read, "\n".join(logins).encode(), args.workers)
        print(
            f"{name}: {args.workers} forked workers after reading every user: total PSS"
            f" {pss:,.0f} MiB"
        )


if __name__ == "__main__":
    main()
