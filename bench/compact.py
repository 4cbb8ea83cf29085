"""Would a compact users table keep the workers' memory flat? ``python -m bench.compact``.

The index (``pdp.engine.index``) keeps each user as Python objects: a ``UserEntry``, its lists,
tuples and dicts. gunicorn forks the workers after the index is built, so they share its pages;
but CPython writes the reference count of every object a check reads, and each page a worker
touches is copied into that worker (copy-on-write). After enough varied queries every worker
holds a private copy of most of the users: 4 workers at national scale grew from 0.9 to 2.6 GiB
of PSS (bench/README.md, "Memory per worker").

This bench measures one alternative on the same data: every user's decision data (window,
organisation, precomputed grants, memberships, profiles) serialised with ``marshal`` into one
``bytes`` object, found through a dict of logins to offsets, decoded on each lookup. Reading a
slice of one big ``bytes`` writes nothing into it, nor does reading an ``array``: only the
dict's integers (each user's position) are touched.

It prints, for the object index and the compact table: the time to find a user and read their
grants for a service (median over the same queries), and the total PSS of ``--workers``
processes forked after the build that each look up every user (the worst case: every page
touched by every worker).
"""

from __future__ import annotations

import argparse
import gc
import marshal
import os
import random
import statistics
import time
from array import array
from collections.abc import Callable
from typing import Any

from bench.http import process_memory
from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.index import Index, UserEntry
from pdp.engine.policy import PolicyEngine

Record = tuple[int, int, int, dict[str, list[tuple[int, int, str, str | None, str]]]]


def _record(user: UserEntry) -> Record:
    """What a check reads of a user, as plain values marshal can write."""
    grants = {
        service: [(s, e, r, g.group, g.source) for s, e, r, g in found]
        for service, found in user.grants.items()
    }
    return (user.start, user.end, user.org.id if user.org is not None else -1, grants)


class CompactUsers:
    """Every user's record in one ``bytes``; ``offsets[login]`` → (start, end) of its slice."""

    def __init__(self, index: Index) -> None:
        chunks: list[bytes] = []
        self.offsets: dict[str, int] = {}
        position = 0
        ends = array("q")  # an array, not a list: reading it creates ints, touches none
        for login, user in index.users.items():
            data = marshal.dumps(_record(user))
            self.offsets[login] = len(ends)
            chunks.append(data)
            position += len(data)
            ends.append(position)
        self.blob = b"".join(chunks)
        self.ends = ends
        self.view = memoryview(self.blob)

        # Open addressing without Python objects: slot → user position + 1 (0: empty), the
        # login's bytes kept beside its record to confirm a hit.
        size = 1 << (len(ends) * 2).bit_length()
        self.mask = size - 1
        self.slots = array("q", bytes(8 * size))
        names: list[bytes] = []
        name_ends = array("q")
        total = 0
        for login, i in self.offsets.items():
            slot = hash(login) & self.mask
            while self.slots[slot]:
                slot = (slot + 1) & self.mask
            self.slots[slot] = i + 1
        for login in self.offsets:
            raw = login.encode()
            names.append(raw)
            total += len(raw)
            name_ends.append(total)
        self.names = b"".join(names)
        self.name_ends = name_ends

    def find(self, login: str) -> Record | None:
        """``get`` without the dict: the slot table, then the record."""
        mask, slots, name_ends, names = self.mask, self.slots, self.name_ends, self.names
        raw = login.encode()
        slot = hash(login) & mask
        while True:
            i = slots[slot] - 1
            if i < 0:
                return None
            a = name_ends[i - 1] if i else 0
            if names[a : name_ends[i]] == raw:
                start = self.ends[i - 1] if i else 0
                found: Record = marshal.loads(self.view[start : self.ends[i]])
                return found
            slot = (slot + 1) & mask

    def get(self, login: str) -> Record | None:
        """The record of ``login``, decoded now."""
        i = self.offsets.get(login)
        if i is None:
            return None
        start = self.ends[i - 1] if i else 0
        found: Record = marshal.loads(self.view[start : self.ends[i]])
        return found


def _objects(index: Index) -> Callable[[str, str], Any]:
    users = index.users

    def read(login: str, service: str) -> Any:
        user = users.get(login)
        return None if user is None else user.grants.get(service)

    return read


def _compact(table: CompactUsers) -> Callable[[str, str], Any]:
    def read(login: str, service: str) -> Any:
        record = table.get(login)
        return None if record is None else record[3].get(service)

    return read


def _slots(table: CompactUsers) -> Callable[[str, str], Any]:
    def read(login: str, service: str) -> Any:
        record = table.find(login)
        return None if record is None else record[3].get(service)

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
    """Build the index, then the compact table, and print both figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.compact", description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200_000)
    args = parser.parse_args(argv)
    engine = PolicyEngine(SqlSnapshotSource(make_engine(args.database_url)), load_catalogue())
    engine.load()
    index = engine.index
    logins = list(index.users)
    rng = random.Random(1)
    queries = [(rng.choice(logins), "cdap") for _ in range(args.queries)]
    started = time.perf_counter()
    table = CompactUsers(index)
    built = time.perf_counter() - started
    objects, compact, slots = _objects(index), _compact(table), _slots(table)
    for login, service in queries[:2000]:  # the same answers
        mine = compact(login, service)
        assert slots(login, service) == mine
        theirs = objects(login, service)
        assert (mine or None) == (
            [(s, e, r, g.group, g.source) for s, e, r, g in theirs] if theirs else None
        ), login
    gc.collect()
    gc.freeze()
    print(
        f"{len(logins):,} users; compact table: {len(table.blob) / 2**20:,.1f} MiB of records,"
        f" built in {built:.1f} s"
    )
    readers = (("objects", objects), ("compact", compact), ("compact, no dict", slots))
    for name, read in readers:
        a = _median_ns(read, queries)
        b = _median_ns(read, queries)
        print(f"{name}: find a user and their grants, median {min(a, b) / 1000:.2f} µs")
    base = process_memory(os.getpid())["pss_mib"]
    print(f"the process before forking: PSS {base:,.0f} MiB")
    for name, read in readers:
        pss = _forked_pss(read, "\n".join(logins).encode(), args.workers)
        print(
            f"{name}: {args.workers} forked workers after reading every user: total PSS"
            f" {pss:,.0f} MiB"
        )


if __name__ == "__main__":
    main()
