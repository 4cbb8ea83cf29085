"""``python -m bench all|generate|run|writes|history``: the whole performance suite, one part, or
the kept results of earlier runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.generate import RESULTS_DIR, default_database_url, generate, remove_sqlite_file
from bench.history import HISTORY_DIR, load, table, write_readme
from bench.run import RunOptions, run, write_json
from bench.suite import SuiteOptions, run_suite
from pdp.adapters.sql.database import make_engine


def _url(args: argparse.Namespace) -> str:
    """--database-url, else PDP_DATABASE_URL, else the scale's SQLite file under results/."""
    url: str | None = args.database_url or os.environ.get("PDP_DATABASE_URL")
    return url or default_database_url(args.scale, args.seed)


def _generate(args: argparse.Namespace) -> str:
    url = _url(args)
    if url == default_database_url(args.scale, args.seed):
        remove_sqlite_file(url)  # our own file: start afresh
    engine = make_engine(url)
    stats = generate(engine, args.scale, args.seed)
    engine.dispose()
    print(json.dumps(stats.as_dict()))
    return url


def _run(args: argparse.Namespace, url: str) -> None:
    opts = RunOptions(
        database_url=url,
        queries=args.queries,
        seed=args.seed,
        casbin_queries=args.casbin_queries,
        casbin_budget_s=args.casbin_budget,
        casbin=not args.no_casbin,
        fast_casbin=not args.no_fast_casbin,
        cedar=args.cedar,
        label=f"scale {args.scale:g}" if args.scale is not None else "",
        queries_out=args.queries_out,
        load_only=args.load_only,
    )
    figures = run(opts)
    if args.json:
        write_json(figures, args.json)


def _writes(args: argparse.Namespace) -> None:
    from bench.writes import measure_writes, write_rows

    figures = measure_writes(args.database_url, repeats=args.repeats, seed=args.seed)
    print("| figure | value |\n|---|---|")
    for name, value in write_rows(figures):
        print(f"| {name} | {value} |")
    if args.json:
        write_json(figures, args.json)


def _suite(args: argparse.Namespace) -> None:
    run_suite(
        SuiteOptions(
            scale=args.scale,
            seed=args.seed,
            queries=args.queries,
            casbin_budget_s=args.casbin_budget,
            http=not args.no_http,
            http_duration_s=args.http_duration,
            http_rounds=args.http_rounds,
            writes=not args.no_writes,
            write_load=not args.no_write_load,
            write_repeats=args.write_repeats,
            postgres_url=args.postgres_url or os.environ.get("PDP_BENCH_POSTGRES_URL"),
            json_path=args.json or str(RESULTS_DIR / f"suite-scale{args.scale:g}.json"),
            data_dir=Path(args.data_dir) if args.data_dir else RESULTS_DIR,
            history_dir=None if args.no_history else Path(args.history_dir or HISTORY_DIR),
        )
    )


def _history(args: argparse.Namespace) -> None:
    directory = Path(args.history_dir or HISTORY_DIR)
    if args.write_readme:
        write_readme(directory)
        print(f"bench/README.md: history table regenerated from {directory}")
    else:
        print("\n".join(table(load(directory))))


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run it; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    suite = sub.add_parser("all", help="the whole suite: every figure side by side")
    suite.add_argument("--scale", type=float, default=1.0)
    suite.add_argument("--seed", type=int, default=1)
    suite.add_argument("--queries", type=int, default=100_000)
    suite.add_argument("--casbin-budget", type=float, default=60.0, help="seconds per scale")
    suite.add_argument("--http-duration", type=int, default=5, help="seconds per wrk run")
    suite.add_argument("--http-rounds", type=int, default=3, help="interleaved wrk runs")
    suite.add_argument("--no-http", action="store_true")
    suite.add_argument("--no-writes", action="store_true")
    suite.add_argument(
        "--no-write-load", action="store_true", help="skip checks on 4 workers while writes arrive"
    )
    suite.add_argument("--write-repeats", type=int, default=20)
    suite.add_argument(
        "--postgres-url",
        default=None,
        help="also load from this PostgreSQL database (WIPED; its name must contain 'bench';"
        " else PDP_BENCH_POSTGRES_URL)",
    )
    suite.add_argument("--json", default=None, help="default bench/results/suite-scale<X>.json")
    suite.add_argument("--data-dir", default=None, help="SQLite files (default bench/results)")
    suite.add_argument("--history-dir", default=None, help="where the run is kept (bench/history)")
    suite.add_argument("--no-history", action="store_true", help="do not keep this run")
    hist = sub.add_parser("history", help="one row per kept run of the suite, oldest first")
    hist.add_argument("--history-dir", default=None, help="default bench/history")
    hist.add_argument("--write-readme", action="store_true", help="regenerate bench/README.md's")
    gen = sub.add_parser("generate", help="insert the seeded dataset into an empty store")
    gen.add_argument("--scale", type=float, default=0.1)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--database-url", default=None)
    p = sub.add_parser("run", help="measure the engine on a generated store and print the table")
    p.add_argument("--scale", type=float, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--database-url", default=None)
    p.add_argument("--queries", type=int, default=100_000)
    p.add_argument("--casbin-queries", type=int, default=200)
    p.add_argument("--casbin-budget", type=float, default=60.0, help="seconds")
    p.add_argument("--no-casbin", action="store_true")
    p.add_argument("--no-fast-casbin", action="store_true", help="skip casbin.FastEnforcer")
    p.add_argument("--cedar", action="store_true", help="also measure cedarpy on a sample")
    p.add_argument("--queries-out", default=None, help="write 20,000 of the queries (JSON)")
    p.add_argument("--load-only", action="store_true", help="measure the cold load alone")
    p.add_argument("--json", default=None, help="write every figure to this file")
    w = sub.add_parser("writes", help="time administration writes (modifies the database)")
    w.add_argument("--database-url", required=True)
    w.add_argument("--repeats", type=int, default=20)
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.command == "generate":
        _generate(args)
    elif args.command == "run":
        if args.scale is None and not (args.database_url or os.environ.get("PDP_DATABASE_URL")):
            args.scale = 0.1
        _run(args, args.database_url or os.environ.get("PDP_DATABASE_URL") or _url(args))
    elif args.command == "writes":
        _writes(args)
    elif args.command == "history":
        _history(args)
    else:
        _suite(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
