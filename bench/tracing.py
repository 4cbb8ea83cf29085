"""What tracing costs (``PDP_TRACING``): in process and over HTTP.

1. In process: ``DecisionService.check`` on the same queries without a tracer and with the
   SDK's tracer (spans batched to an exporter that drops them), interleaved in rounds: the
   microseconds a ``pdp.decision`` span adds to a check.
2. Over HTTP, as in production (API key, rate limit, metrics, decision log buffered): a bare
   Flask endpoint, ``pdp serve`` with tracing off, and ``pdp serve`` with ``PDP_TRACING=otlp``
   exporting every span (request, decision) over OTLP/HTTP to a local sink that accepts them,
   loaded by wrk in interleaved rounds; requests per second, p99, and the loss against off.

    python -m bench.tracing --database-url sqlite:///bench/results/bench-scale0.1-seed1.sqlite3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from bench.http import _pdp_argv, _pdp_env, bench_key, check_body, running, write_script, wrk
from bench.run import make_queries
from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.policy import PolicyEngine
from pdp.records.decision_log import MemoryLog
from pdp.services.decisions import DecisionService


class _Drop(SpanExporter):
    """Accepts every span and keeps none (the in-process cost is the span's, not an export's)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def in_process(database_url: str, n: int = 20_000, rounds: int = 5) -> dict[str, Any]:
    """Median µs of ``DecisionService.check`` without and with a tracer, interleaved rounds."""
    catalogue = load_catalogue()
    db = make_engine(database_url)
    engine = PolicyEngine(SqlSnapshotSource(db), catalogue)
    engine.load()
    queries = make_queries(engine.index, catalogue, random.Random(1), n)
    plain = DecisionService(engine, catalogue, MemoryLog())
    traced = DecisionService(engine, catalogue, MemoryLog())
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Drop()))
    traced.tracer = provider.get_tracer("bench")
    per: dict[str, list[float]] = {"off": [], "on": []}
    tracer = traced.tracer
    for _ in range(rounds):
        for name, service in (("off", plain), ("on", traced)):
            started = time.perf_counter_ns()
            if service is traced:  # as under a recorded request: each decision is its child
                with tracer.start_as_current_span("bench"):
                    for q in queries:
                        service.check(q)
            else:
                for q in queries:
                    service.check(q)
            per[name].append((time.perf_counter_ns() - started) / n / 1000)
            service.decision_log = MemoryLog()  # never grows across rounds
    provider.shutdown()
    db.dispose()
    off, on = statistics.median(per["off"]), statistics.median(per["on"])
    return {"off_us": off, "on_us": on, "added_us": on - off, "rounds": per}


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts every export (counted) and keeps nothing."""

    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def over_http(
    database_url: str,
    *,
    workers: int = 2,
    connections: int = 16,
    duration_s: int = 5,
    rounds: int = 5,
) -> dict[str, Any]:
    """Bare Flask, pdp serve with tracing off, and with tracing exported over OTLP: wrk in
    interleaved rounds; the median round of each."""
    catalogue = load_catalogue()
    db = make_engine(database_url)
    engine = PolicyEngine(SqlSnapshotSource(db), catalogue)
    engine.load()
    queries = make_queries(engine.index, catalogue, random.Random(1), 20_000)
    db.dispose()
    rows = [(q.user, q.service, q.role, q.caf) for q in queries]
    singles = [json.dumps(check_body(row)) for row in rows]
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "off": [], "otlp": []}
    with tempfile.TemporaryDirectory(prefix="pdp-bench-tracing-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        env = dict(os.environ)
        env.update(
            PDP_DATABASE_URL=database_url,
            PDP_RATE_LIMIT="1000000/second",
            PYTHONPATH=os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")]),
        )
        script = write_script(work / "single.lua", singles, "/v1/check", bench_key(database_url))
        sink = stack.enter_context(_sink())
        traced_env = _pdp_env(env, work, "otlp", "buffered")
        traced_env.update(PDP_TRACING="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=sink)
        servers = {
            "bare": stack.enter_context(
                running(
                    "bare",
                    [sys.executable, "-m", "bench.bare", "--workers", str(workers)],
                    env,
                    work,
                    600,
                )
            ),
            "off": stack.enter_context(
                running(
                    "off", _pdp_argv(workers), _pdp_env(env, work, "off", "buffered"), work, 600
                )
            ),
            "otlp": stack.enter_context(running("otlp", _pdp_argv(workers), traced_env, work, 600)),
        }
        names = list(servers)
        for r in range(rounds):
            for name in names[r % 3 :] + names[: r % 3]:
                runs[name].append(wrk(servers[name].url, script, connections, duration_s, 2))
    exports = _Sink.received
    out: dict[str, Any] = {"connections": connections, "exports_received": exports}
    for name, done in runs.items():
        ordered = sorted(done, key=lambda x: float(x["rps"]))
        median = ordered[len(ordered) // 2]
        out[name] = {
            "rps": median["rps"],
            "p99_ms": median["p99_us"] / 1000,
            "rps_runs": [x["rps"] for x in done],
            "errors": sum(x["errors"] for x in done),
        }
    out["loss_vs_off"] = 1 - out["otlp"]["rps"] / out["off"]["rps"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing", description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args(argv)
    inner = in_process(args.database_url)
    print(
        f"in process, DecisionService.check: {inner['off_us']:.2f} µs without a tracer,"
        f" {inner['on_us']:.2f} µs with one: +{inner['added_us']:.2f} µs a decision"
        f" (median of {len(inner['rounds']['off'])} interleaved rounds)"
    )
    if args.no_http:
        return
    http = over_http(args.database_url, duration_s=args.duration, rounds=args.rounds)
    print(f"\nHTTP single checks, {http['connections']} connections, median of {args.rounds}:")
    print("| server | req/s | p99 | share of bare |\n|---|---|---|---|")
    for name in ("bare", "off", "otlp"):
        f = http[name]
        share = f["rps"] / http["bare"]["rps"]
        print(f"| {name} | {f['rps']:,.0f} | {f['p99_ms']:.1f} ms | {share:.0%} |")
    print(
        f"tracing on (OTLP, every span exported): {http['loss_vs_off']:.1%} of the throughput"
        f" lost vs off; {http['exports_received']} OTLP exports received;"
        f" errors {sum(http[n]['errors'] for n in ('bare', 'off', 'otlp'))}"
    )


if __name__ == "__main__":
    main()
