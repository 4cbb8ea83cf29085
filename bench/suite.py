"""``python -m bench all``: every figure of the performance suite in one run, side by side.

1. In-process decisions at the target scale (``bench run`` in a fresh process, so that its
   memory is the engine's alone), with cedarpy on a sample of the same queries.
2. The alternatives on the same data and queries at 100 and 1,000 organisations (scales 0.005
   and 0.05): plain ``casbin.Enforcer``, cedarpy, the dict floor, and ours.
3. Over HTTP at the target scale: ``pdp serve`` (decision log buffered, as in production)
   against a bare Flask endpoint (``bench.http``); then the decision log's cost: ``pdp serve``
   with the log off, buffered and sync, side by side.
4. Loading and memory: cold load from SQLite (and PostgreSQL with ``--postgres-url``), server
   memory.
5. Administration writes and the time until decisions see them (``bench.writes``) on a copy of
   the target scale's SQLite file.
6. Growth: check latency and load time at scales 0.01, 0.1 and the target.

Every sub-run prints its own table as it goes; the summary and the targets come last, and
everything is written to one JSON file.
"""

from __future__ import annotations

import json
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text

from bench.generate import RESULTS_DIR, generate, remove_sqlite_file
from bench.history import HISTORY_DIR, record
from bench.http import HttpOptions, http_rows, log_cost_table, measure_http
from bench.run import _us
from bench.write_load import measure as measure_write_load
from pdp.adapters.sql.database import make_engine

ALTERNATIVE_SCALES = (0.005, 0.05)  # 100 and 1,000 organisations: plain Casbin is too slow beyond
GROWTH_SCALES = (0.01, 0.1)

TARGETS = {
    "median_us": 10.0,
    "p99_us": 100.0,
    "dict_ratio": 15.0,
    "casbin_ratio": 1000.0,
    "cedar_ratio": 10.0,
    "growth": 2.0,
    "http_share": 0.8,
    "http_p99_ms_16": 20.0,
    "batch_checks_per_s": 100_000.0,
    "load_s": 60.0,
    "worker_rss_mib": 2048.0,
    "server_pss_mib": 1228.8,  # 1.2 GiB for the production server (4 workers), after load
    "log_buffered_loss": 0.10,
    "write_load_loss": 0.10,  # check throughput lost while writes arrive at 10/s
}


@dataclass(frozen=True)
class SuiteOptions:
    """The whole suite's settings."""

    scale: float = 1.0
    seed: int = 1
    queries: int = 100_000
    casbin_budget_s: float = 60.0
    http: bool = True
    http_duration_s: int = 5
    http_rounds: int = 3
    writes: bool = True
    write_repeats: int = 20
    write_load: bool = True  # checks on 4 workers while writes arrive (bench.write_load)
    postgres_url: str | None = None
    json_path: str | None = None
    data_dir: Path = RESULTS_DIR
    history_dir: Path | None = HISTORY_DIR  # where the run is kept (None: not kept)


def _python_m(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


def _run_scale(scale: float, opts: SuiteOptions, work: Path) -> dict[str, Any]:
    """Generate the scale's SQLite file, then measure it in a fresh process."""
    url = f"sqlite:///{opts.data_dir / f'bench-scale{scale:g}-seed{opts.seed}.sqlite3'}"
    remove_sqlite_file(url)
    started = time.perf_counter()
    db = make_engine(url)
    stats = generate(db, scale, opts.seed)
    db.dispose()
    generate_s = time.perf_counter() - started
    print(f"\n# scale {scale:g}: generated {stats.as_dict()} in {generate_s:.1f} s", flush=True)
    alternative = scale in ALTERNATIVE_SCALES or scale == min(opts.scale, ALTERNATIVE_SCALES[0])
    out = work / f"run-{scale:g}.json"
    argv = _python_m("run", "--database-url", url, "--scale", str(scale), "--seed", str(opts.seed))
    argv += ["--queries", str(opts.queries), "--json", str(out)]
    argv += ["--casbin-budget", str(opts.casbin_budget_s)]
    if alternative:
        argv += ["--casbin-queries", "2000"]
    else:
        argv.append("--no-casbin")
    if alternative or scale == opts.scale:
        argv.append("--cedar")
    if scale == opts.scale:
        argv += ["--queries-out", str(work / "queries.json")]
    subprocess.run(argv, check=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    figures["generate_s"] = generate_s
    figures["database_url"] = url
    return figures


def _create_database(url: str) -> None:
    """Create the named PostgreSQL database if it does not exist yet."""
    target = make_url(url)
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            ).first()
            if found is None:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
                print(f"created database {target.database}")
    finally:
        server.dispose()


def _postgres(opts: SuiteOptions, work: Path) -> dict[str, Any]:
    """Wipe the named PostgreSQL database (its name must contain "bench"), generate, and time a
    cold load."""
    assert opts.postgres_url is not None
    _create_database(opts.postgres_url)
    db = create_engine(opts.postgres_url)
    with db.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    db.dispose()
    started = time.perf_counter()
    db = make_engine(opts.postgres_url)
    generate(db, opts.scale, opts.seed)
    db.dispose()
    generate_s = time.perf_counter() - started
    out = work / "postgres.json"
    argv = _python_m("run", "--database-url", opts.postgres_url, "--load-only", "--json", str(out))
    subprocess.run([*argv, "--scale", str(opts.scale)], check=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    figures["generate_s"] = generate_s
    return figures


def _copy(url: str, copy: Path) -> None:
    """Copy the target scale's file (the original stays as made)."""
    with (
        closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as source,
        closing(sqlite3.connect(copy)) as target,
    ):
        source.backup(target)  # the WAL's pages included


def _writes(url: str, opts: SuiteOptions, work: Path) -> dict[str, Any]:
    """Administration writes on a copy of the target scale's file."""
    copy = work / "writes.sqlite3"
    _copy(url, copy)
    out = work / "writes.json"
    argv = _python_m("writes", "--database-url", f"sqlite:///{copy}", "--json", str(out))
    subprocess.run([*argv, "--repeats", str(opts.write_repeats)], check=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def run_suite(opts: SuiteOptions) -> dict[str, Any]:
    """Run every part; print the summary; write the JSON; return the figures."""
    if opts.postgres_url and "bench" not in (make_url(opts.postgres_url).database or ""):
        raise SystemExit("--postgres-url: the database is wiped; its name must contain 'bench'")
    scales = sorted(
        {s for s in (*ALTERNATIVE_SCALES, *GROWTH_SCALES) if s < opts.scale} | {opts.scale}
    )
    suite: dict[str, Any] = {
        "scale": opts.scale,
        "seed": opts.seed,
        "python": platform.python_version(),
        "machine": platform.platform(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": {},
        "failed": [],
    }
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pdp-bench-") as tmp:
        work = Path(tmp)
        for scale in scales:
            suite["runs"][f"{scale:g}"] = _run_scale(scale, opts, work)
            _save(suite, opts)
        target = suite["runs"][f"{opts.scale:g}"]
        if opts.http:
            print("\n# HTTP", flush=True)
            rows = [tuple(r) for r in json.loads((work / "queries.json").read_text())]
            http_opts = HttpOptions(
                database_url=target["database_url"],
                queries=rows,
                duration_s=opts.http_duration_s,
                rounds=opts.http_rounds,
            )
            _part(suite, "http", lambda: measure_http(http_opts), opts)
        if opts.writes:
            print("\n# administration writes", flush=True)
            _part(suite, "writes", lambda: _writes(target["database_url"], opts, work), opts)
        if opts.write_load:
            print("\n# checks while writes arrive", flush=True)
            copy = work / "write-load.sqlite3"
            _copy(target["database_url"], copy)
            _part(
                suite,
                "write_load",
                lambda: measure_write_load(
                    f"sqlite:///{copy}",
                    duration_s=opts.http_duration_s,
                    rounds=opts.http_rounds,
                    seed=opts.seed,
                ),
                opts,
            )
        if opts.postgres_url:
            print("\n# PostgreSQL", flush=True)
            _part(suite, "postgres", lambda: _postgres(opts, work), opts)
    summary_table(suite)
    _save(suite, opts)
    if opts.json_path:
        print(f"\nwritten: {opts.json_path}")
    if opts.history_dir is not None:
        print(f"kept: {record(suite, opts.history_dir)} (python -m bench history)")
    if suite["failed"]:
        raise SystemExit(f"failed parts: {', '.join(suite['failed'])}")
    return suite


def _save(suite: dict[str, Any], opts: SuiteOptions) -> None:
    """Write what has been measured so far (a later part failing loses nothing)."""
    if opts.json_path:
        Path(opts.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.json_path).write_text(json.dumps(suite, indent=2, default=str) + "\n")


def _part(
    suite: dict[str, Any], name: str, measure: Callable[[], dict[str, Any]], opts: SuiteOptions
) -> None:
    """Run one part; on failure, say so and go on with the others (the exit status says it)."""
    try:
        suite[name] = measure()
    except Exception as exc:
        print(f"\n{name} FAILED: {type(exc).__name__}: {exc}", flush=True)
        suite["failed"].append(name)
    _save(suite, opts)


# -- the summary ------------------------------------------------------------------------------


def _ok(good: bool) -> str:
    return "met" if good else "MISSED"


def _alternatives(suite: dict[str, Any]) -> list[str]:
    lines = [
        "| organisations | ours (Engine.check) | dict floor | plain Casbin | cedarpy |"
        " ours ÷ dict | Casbin ÷ ours | cedarpy ÷ ours | agree (Casbin, cedarpy) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in suite["runs"].values():
        c, cd = run.get("casbin"), run.get("cedar")
        if not cd:
            continue
        ours = run["check"]["median_us"]
        casbin = c["all"]["median_us"] / c["ours_same_sample"]["median_us"] if c else None
        casbin_agree = f"{c['agree']}/{c['compared']}" if c else "—"
        cedar = cd["all"]["median_us"] / cd["ours_same_sample"]["median_us"]
        lines.append(
            f"| {run['dataset']['organisations']:,} | {_us(ours)} |"
            f" {_us(run['dict']['median_us'])} |"
            f" {_us(c['all']['median_us']) if c else 'not run'} |"
            f" {_us(cd['all']['median_us'])} | {ours / run['dict']['median_us']:.1f}× |"
            f" {f'{casbin:,.0f}×' if casbin else '—'} | {cedar:,.0f}× |"
            f" {casbin_agree},"
            f" {cd['agree']:,}/{cd['compared']:,} |"
        )
    return lines


def _growth(suite: dict[str, Any]) -> list[str]:
    lines = [
        "| scale | organisations | users | check median | check p99 | permissions median"
        " | cold load | RSS after load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, run in suite["runs"].items():
        ds = run["dataset"]
        lines.append(
            f"| {key} | {ds['organisations']:,} | {ds['users']:,} |"
            f" {_us(run['check']['median_us'])} | {_us(run['check']['p99_us'])} |"
            f" {_us(run['permissions']['median_us'])} | {run['load']['total_s']:.2f} s |"
            f" {run['rss_mib']['after_load']:.0f} MiB |"
        )
    return lines


def targets(suite: dict[str, Any]) -> list[str]:
    """One line per target: the figure, the target, met or MISSED."""
    t = TARGETS
    runs = suite["runs"]
    top = runs[f"{suite['scale']:g}"]
    med, p99 = top["check"]["median_us"], top["check"]["p99_us"]
    out = [
        f"check median {_us(med)} ≤ 10 µs: {_ok(med <= t['median_us'])}",
        f"check p99 {_us(p99)} ≤ 100 µs: {_ok(p99 <= t['p99_us'])}",
        f"within 15× of the dict floor: {med / top['dict']['median_us']:.1f}×:"
        f" {_ok(med / top['dict']['median_us'] <= t['dict_ratio'])}",
    ]
    for run in runs.values():
        orgs = run["dataset"]["organisations"]
        if run.get("casbin") and run["casbin"]["compared"]:
            c = run["casbin"]
            r = c["all"]["median_us"] / c["ours_same_sample"]["median_us"]
            out.append(
                f"vs plain Casbin at {orgs:,} organisations: {r:,.0f}× ≥ 1,000×: {_ok(r >= 1000)}"
            )
        if run.get("fast_casbin") and run["fast_casbin"]["compared"]:
            fc = run["fast_casbin"]
            r = fc["all"]["median_us"] / fc["ours_interleaved"]["median_us"]
            agree = f"{fc['agree']:,}/{fc['compared']:,} agree"
            out.append(f"vs casbin.FastEnforcer at {orgs:,} organisations: {r:,.0f}× ({agree})")
        if run.get("cedar") and run["cedar"]["compared"]:
            cd = run["cedar"]
            r = cd["all"]["median_us"] / cd["ours_same_sample"]["median_us"]
            out.append(f"vs cedarpy at {orgs:,} organisations: {r:,.0f}× ≥ 10×: {_ok(r >= 10)}")
    base = "0.01" if "0.01" in runs else min(runs, key=float)
    growth = med / runs[base]["check"]["median_us"]
    out.append(
        f"check median growth, scale {base} → {suite['scale']:g}:"
        f" {growth:.2f}× < 2×: {_ok(growth < t['growth'])}"
    )
    load = top["load"]["total_s"]
    out.append(f"cold load from SQLite {load:.1f} s ≤ 60 s: {_ok(load <= t['load_s'])}")
    if "postgres" in suite:
        pg = suite["postgres"]["load"]["total_s"]
        out.append(f"cold load from PostgreSQL {pg:.1f} s ≤ 60 s: {_ok(pg <= t['load_s'])}")
    http = suite.get("http")
    if http:
        for ours, bare in zip(http["pdp"], http["bare"], strict=True):
            share = ours["rps"] / bare["rps"]
            out.append(
                f"HTTP throughput at {ours['connections']} connections: {share:.0%} of bare"
                f" Flask ≥ 80%: {_ok(share >= t['http_share'])}"
            )
            if ours["connections"] == 16:
                ms = ours["p99_us"] / 1000
                out.append(f"HTTP p99 at 16 connections {ms:.2f} ms ≤ 20 ms: {_ok(ms <= 20)}")
        best = max((b["rps"] * 1000 for b in http["batch"]), default=0.0)
        out.append(
            f"HTTP batches {best:,.0f} checks/s ≥ 100,000: {_ok(best >= t['batch_checks_per_s'])}"
        )
        rss = max(w["rss_mib"] for w in http["memory"]["workers"])
        out.append(f"worker RSS {rss:.0f} MiB ≤ 2 GiB: {_ok(rss <= t['worker_rss_mib'])}")
        prod = http.get("memory_production")
        if prod:
            pss = prod["total_pss_mib"]
            out.append(
                f"production server ({len(prod['workers'])} workers) PSS after load"
                f" {pss:,.0f} MiB ≤ 1.2 GiB: {_ok(pss <= t['server_pss_mib'])}"
            )
        cost = http.get("log_cost")
        if cost:
            single = cost["modes"]["buffered"]["single"]
            loss = single["loss_vs_off"]
            out.append(
                f"log buffered: throughput loss {loss:.1%} < 10 % vs off"
                f" ({cost['connections']} connections, {single['rps']:,.0f} vs"
                f" {cost['modes']['off']['single']['rps']:,.0f} req/s):"
                f" {_ok(loss < t['log_buffered_loss'])}"
            )
    load = suite.get("write_load")
    if load:
        out.append(
            f"checks while {load['rate']:g} writes/s arrive ({load['workers']} workers):"
            f" {load['loaded_rps']:,.0f} vs {load['quiet_rps']:,.0f} checks/s, loss"
            f" {load['loss']:.1%} < 10 %: {_ok(load['loss'] < t['write_load_loss'])}"
        )
    return out


def summary_table(suite: dict[str, Any]) -> None:
    """Print the side-by-side tables and the targets."""
    print(f"\n# pdp performance suite, scale {suite['scale']:g} ({suite['machine']})\n")
    print("## Alternatives: same data, same queries, same run (medians per check)\n")
    print("\n".join(_alternatives(suite)))
    print("\n## Growth\n")
    print("\n".join(_growth(suite)))
    rows: list[tuple[str, str]] = []
    if "http" in suite:
        rows += http_rows(suite["http"])
    if "writes" in suite:
        from bench.writes import write_rows

        rows += write_rows(suite["writes"])
    if "postgres" in suite:
        pg = suite["postgres"]
        rows.append(
            (
                "cold load from PostgreSQL",
                f"{pg['load']['total_s']:.2f} s (snapshot read {pg['load']['snapshot_s']:.2f} s"
                f" + index build {pg['load']['index_s']:.2f} s)",
            )
        )
    if rows:
        print("\n## HTTP, memory, writes\n")
        print("| figure | value |\n|---|---|")
        for name, value in rows:
            print(f"| {name} | {value} |")
    if "log_cost" in suite.get("http", {}):
        cost = suite["http"]["log_cost"]
        print(
            "\n## Decision log cost: pdp serve with the log off, buffered, sync"
            f" (median of {len(cost['modes']['off']['single']['rps_runs'])} interleaved rounds)\n"
        )
        print("\n".join(log_cost_table(cost)))
    print("\n## Targets\n")
    for line in targets(suite):
        print(f"- {line}")
