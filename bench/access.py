"""``python -m bench.access``: time and memory of "who may use what" (``pdp.services.access``).

On the national dataset (``bench/generate.py``: the scale's SQLite file under ``bench/results``,
generated first if missing, or ``--database-url``), with the engine loaded as a server loads it,
exports the largest organisation and the whole nation in each format, and prints for each: rows,
bytes, seconds, and the memory the export adds on top of the loaded index:

- ``tracemalloc peak``: the most Python memory the export held at once (its own allocations,
  traced from its first row to its last; a separate run from the timed one, tracemalloc slows
  Python down);
- ``peak RSS delta``: the process's peak resident size during the (timed) export minus its
  resident size before it; the peak is reset just before (``/proc/self/clear_refs``), so the
  load's own peak does not hide it (``ru_maxrss``, which never goes down, would). 0 where the
  kernel does not allow the reset.

``--http`` also streams the largest organisation's document through the app
(``GET /v1/organisations/<org>/access``, the WSGI answer read chunk by chunk, as a server
sends it). ``--materialise`` measures, for contrast, what a list of the same rows holds.
Constant memory means: the same small peak for 1,601 users and for 400,000.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.generate import default_database_url, generate, remove_sqlite_file
from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.policy import PolicyEngine
from pdp.services.access import AccessDocument, document


class Sink:
    """Where the document goes: counts its bytes and throws them away."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, chunk: bytes) -> int:
        """Count ``chunk``."""
        self.bytes += len(chunk)
        return len(chunk)


def _status_kib(field: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in KiB (0 where unreadable)."""
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def _reset_peak() -> bool:
    """Reset the process's peak RSS (Linux ≥ 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(run: Callable[[], tuple[int, int]]) -> dict[str, Any]:
    """Time ``run`` (→ rows, bytes) and measure the memory it adds: one timed run with the
    RSS peak reset before it, one under tracemalloc."""
    gc.collect()
    before = _status_kib("VmRSS")
    reset = _reset_peak()
    started = time.perf_counter()
    rows, size = run()
    seconds = time.perf_counter() - started
    peak_rss = _status_kib("VmHWM")
    gc.collect()
    tracemalloc.start()
    run()
    _current, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "rows": rows,
        "bytes": size,
        "seconds": round(seconds, 3),
        "tracemalloc_peak_kib": round(traced_peak / 1024, 1),
        "peak_rss_delta_kib": max(0, peak_rss - before) if reset else None,
    }


def exported(doc: AccessDocument, fmt: str) -> Callable[[], tuple[int, int]]:
    """The export as the command line does it (``AccessDocument.write``)."""

    def run() -> tuple[int, int]:
        sink = Sink()
        rows = doc.write(sink, fmt)
        return rows, sink.bytes

    return run


def materialised(doc: AccessDocument) -> Callable[[], tuple[int, int]]:
    """For contrast: the same rows gathered in a list (what streaming avoids)."""

    def run() -> tuple[int, int]:
        rows = list(doc.rows())
        return len(rows), 0

    return run


def over_http(engine: PolicyEngine, url: str, org: str) -> Callable[[], tuple[int, int]]:
    """The organisation's document through the app, read chunk by chunk as a server sends it."""
    from pdp.core.config import Settings
    from pdp.records.decision_log import MemoryLog
    from pdp.services.tokens import mint
    from pdp.web.app import create_app

    secret = "b" * 40
    config = {
        "database_url": url,
        "jwt_secret": secret,
        "decision_log": "off",
        "rate_limit": "off",
        "verify_orgs": 0,
        "max_staleness": 86_400.0,
    }
    app = create_app(config, engine=engine, decision_log=MemoryLog())
    operator = next(u.login for u in engine.index.users.values() if u.is_operator)
    headers = {"Authorization": f"Bearer {mint(Settings(jwt_secret=secret), operator)}"}
    client = app.test_client()

    def run() -> tuple[int, int]:
        response = client.get(f"/v1/organisations/{org}/access", headers=headers, buffered=False)
        assert response.status_code == 200, response.status_code
        size = lines = 0
        for chunk in response.iter_encoded():
            size += len(chunk)
            lines += chunk.count(b"\n")
        response.close()
        return lines, size

    return run


def table(results: Iterable[dict[str, Any]]) -> list[str]:
    """The figures as a Markdown table."""
    out = [
        "| export | format | rows | bytes | seconds | tracemalloc peak | peak RSS delta |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rss = r["peak_rss_delta_kib"]
        out.append(
            f"| {r['what']} | {r['format']} | {r['rows']:,} | {r['bytes']:,} | "
            f"{r['seconds']:.2f} | {r['tracemalloc_peak_kib']:,.0f} KiB | "
            f"{'n/a' if rss is None else f'{rss:,} KiB'} |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, measure, print the table; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench.access", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None, help="default: the scale's SQLite file")
    parser.add_argument("--formats", default="csv,jsonl")
    parser.add_argument("--http", action="store_true", help="also through the app (largest org)")
    parser.add_argument("--materialise", action="store_true", help="also a list of the rows")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    url = args.database_url or os.environ.get("PDP_DATABASE_URL")
    if url is None:
        url = default_database_url(args.scale, args.seed)
        if not Path(url.removeprefix("sqlite:///")).exists():
            remove_sqlite_file(url)
            db = make_engine(url)
            print(json.dumps(generate(db, args.scale, args.seed).as_dict()), file=sys.stderr)
            db.dispose()
    engine = PolicyEngine(
        SqlSnapshotSource(make_engine(url)), load_catalogue(), max_staleness=86_400.0
    )
    started = time.perf_counter()
    engine.load()
    index = engine.index
    largest = max(index.orgs.values(), key=lambda o: (len(o.logins), o.code))
    print(
        f"loaded {len(index.users):,} users, {len(index.orgs):,} organisations in "
        f"{time.perf_counter() - started:.1f} s; RSS {_status_kib('VmRSS') / 1024:,.0f} MiB; "
        f"largest organisation {largest.code} ({len(largest.logins):,} users)",
        file=sys.stderr,
    )
    targets: list[tuple[str, str | None]] = [
        (f"{largest.code} ({len(largest.logins):,} users)", largest.code)
    ]
    targets.append((f"nation ({len(index.users):,} users)", None))
    results: list[dict[str, Any]] = []
    for what, code in targets:
        doc = document(engine, code, None)
        for fmt in args.formats.split(","):
            results.append({"what": what, "format": fmt, **measure(exported(doc, fmt))})
            print(table(results[-1:])[-1], file=sys.stderr)
        if args.materialise:
            results.append({"what": what, "format": "list", **measure(materialised(doc))})
            print(table(results[-1:])[-1], file=sys.stderr)
    if args.http:
        what = f"HTTP GET …/{largest.code}/access"
        results.append(
            {"what": what, "format": "json", **measure(over_http(engine, url, largest.code))}
        )
    print("\n".join(table(results)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
