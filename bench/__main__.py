"""``python -m bench generate|run|all``: build the dataset, measure the engine, or both."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from adapters.sql.database import make_engine
from bench.generate import default_database_url, generate, remove_sqlite_file
from bench.run import RunOptions, run, write_json


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
        label=f"scale {args.scale:g}" if args.scale is not None else "",
    )
    figures = run(opts)
    if args.json:
        write_json(figures, args.json)


def _forward(args: argparse.Namespace, url: str) -> list[str]:
    """The ``run`` command line for a fresh process (so that its RSS is the engine's alone)."""
    cmd = [sys.executable, "-m", "bench", "run", "--database-url", url, "--seed", str(args.seed)]
    cmd += ["--scale", str(args.scale), "--queries", str(args.queries)]
    cmd += [
        "--casbin-queries",
        str(args.casbin_queries),
        "--casbin-budget",
        str(args.casbin_budget),
    ]
    if args.no_casbin:
        cmd.append("--no-casbin")
    if args.json:
        cmd += ["--json", args.json]
    return cmd


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run it; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("generate", "insert the seeded dataset into an empty store"),
        ("run", "measure the engine on a generated store and print the table"),
        ("all", "generate, then run in a fresh process"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--scale", type=float, default=None if name == "run" else 0.1)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--database-url", default=None)
        if name != "generate":
            p.add_argument("--queries", type=int, default=100_000)
            p.add_argument("--casbin-queries", type=int, default=200)
            p.add_argument("--casbin-budget", type=float, default=60.0, help="seconds")
            p.add_argument("--no-casbin", action="store_true")
            p.add_argument("--json", default=None, help="write every figure to this file")
    args = parser.parse_args(argv)
    if args.command == "generate":
        _generate(args)
    elif args.command == "run":
        if args.scale is None and not (args.database_url or os.environ.get("PDP_DATABASE_URL")):
            args.scale = 0.1
        _run(args, args.database_url or os.environ.get("PDP_DATABASE_URL") or _url(args))
    else:
        url = _generate(args)
        return subprocess.call(_forward(args, url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
