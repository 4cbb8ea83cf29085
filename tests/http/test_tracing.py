"""Tracing (PDP_TRACING, the tracing extra): the spans of a request, of each decision and of each
store transaction, collected by the OpenTelemetry SDK's own in-memory exporter; the caller's W3C
``traceparent`` continued, including the one ``pdp.client`` sends over a real HTTP connection;
nothing installed when tracing is off."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from werkzeug.serving import make_server

from pdp.client import Client
from pdp.core.errors import ConfigurationError
from pdp.observability import tracing
from pdp.records.decision_log import MemoryLog
from pdp.web.app import create_app
from pdp.web.container import services

from support.actors import bearer
from support.constants import API_HEADERS, API_KEY, SECRET
from support.databases import APP_DEFAULTS

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


@pytest.fixture
def traced(demo_db: str, clean_env: None) -> Iterator[tuple[Flask, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    config = {**APP_DEFAULTS, "database_url": demo_db, "tracing": "console", "jwt_secret": SECRET}
    app = create_app(config, decision_log=MemoryLog(), span_exporter=exporter)
    yield app, exporter
    services(app).db.dispose()


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_a_check_is_a_request_span_with_its_decision_continuing_the_callers_trace(
    traced: tuple[Flask, InMemorySpanExporter],
) -> None:
    app, exporter = traced
    r = app.test_client().post(
        "/v1/check",
        json={"user": "bruno.petit", "service": "cdap", "role": "T18"},
        headers={**API_HEADERS, "traceparent": TRACEPARENT},
    )
    assert r.status_code == 200, r.get_json()
    spans = exporter.get_finished_spans()
    (request_span,) = named(spans, "POST /v1/check")
    (decision,) = named(spans, "pdp.decision")
    # The caller's trace goes on: same trace id, the caller's span as parent.
    assert request_span.context is not None and request_span.parent is not None
    assert request_span.context.trace_id == TRACE_ID
    assert request_span.parent.span_id == PARENT_ID
    assert request_span.kind is trace.SpanKind.SERVER
    assert request_span.attributes is not None
    assert request_span.attributes["http.response.status_code"] == 200
    assert request_span.attributes["http.route"] == "/v1/check"
    # The decision is the request's child and names the log entry it left (never the login).
    assert decision.parent is not None and decision.parent.span_id == request_span.context.span_id
    assert decision.attributes is not None
    assert dict(decision.attributes) == {
        "pdp.decision_id": r.get_json()["decision_id"],
        "pdp.reason": "ALLOWED",
        "pdp.allowed": True,
        "pdp.service": "cdap",
        "pdp.revision": r.get_json()["revision"],
    }
    assert "bruno.petit" not in str(decision.attributes)


def test_each_item_of_a_batch_is_a_decision_span(
    traced: tuple[Flask, InMemorySpanExporter],
) -> None:
    app, exporter = traced
    checks = [
        {"user": "bruno.petit", "service": "cdap", "role": "T18"},
        {"user": "chloe.roux", "service": "cdap", "role": "T18"},
        {"user": "chloe.roux", "service": "nope"},  # refused item: no decision
    ]
    r = app.test_client().post("/v1/check/batch", json={"checks": checks}, headers=API_HEADERS)
    assert r.status_code == 200, r.get_json()
    spans = exporter.get_finished_spans()
    (request_span,) = named(spans, "POST /v1/check/batch")
    decisions = named(spans, "pdp.decision")
    assert [d.attributes["pdp.allowed"] for d in decisions if d.attributes] == [True, False]
    assert all(
        d.parent is not None
        and request_span.context is not None
        and d.parent.span_id == request_span.context.span_id
        for d in decisions
    )
    assert request_span.parent is None  # no traceparent: a new trace


def test_a_write_is_a_store_transaction_inside_its_request(
    traced: tuple[Flask, InMemorySpanExporter],
) -> None:
    app, exporter = traced
    r = app.test_client().post(
        "/v1/organisations/mairie-montreuil/users/chloe.roux/memberships",
        json={"group": "CCAS-INSTRUCTION"},
        headers=bearer("alice.martin"),
    )
    assert r.status_code == 201, r.get_json()
    spans = exporter.get_finished_spans()
    (request_span,) = named(spans, "POST /v1/organisations/<org>/users/<login>/memberships")
    assert request_span.context is not None
    store = named(spans, "pdp.store.transaction")
    assert store, [s.name for s in spans]
    assert all(
        s.context is not None and s.context.trace_id == request_span.context.trace_id for s in store
    )
    assert "commit" in [s.attributes["pdp.outcome"] for s in store if s.attributes]


def test_the_client_sends_the_callers_trace_over_http(
    traced: tuple[Flask, InMemorySpanExporter],
) -> None:
    """``pdp.client`` carries the caller's current span as ``traceparent``: the service's
    request span is its child (a real HTTP connection to the app)."""
    app, exporter = traced
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    caller = SpanContext(TRACE_ID, PARENT_ID, is_remote=False, trace_flags=TraceFlags(1))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(caller)))
    try:
        with Client(f"http://127.0.0.1:{server.server_port}", API_KEY) as pdp:
            assert pdp.check("bruno.petit", "cdap", role="T18").allowed
    finally:
        otel_context.detach(token)
        server.shutdown()
    (request_span,) = named(exporter.get_finished_spans(), "POST /v1/check")
    assert request_span.context is not None and request_span.parent is not None
    assert (request_span.context.trace_id, request_span.parent.span_id) == (TRACE_ID, PARENT_ID)


def test_off_installs_nothing_on_the_request_path(app: Flask) -> None:
    """PDP_TRACING=off (the default): no hook, no tracer on the decisions."""
    assert services(app).decisions.tracer is None
    hooks: list[Any] = [f for funcs in app.before_request_funcs.values() for f in funcs]
    assert not [f for f in hooks if f.__module__ == tracing.__name__]


def test_an_unknown_mode_stops_the_start() -> None:
    with pytest.raises(ConfigurationError, match="PDP_TRACING"):
        tracing.tracer_for("jaeger")


def test_a_request_the_sampler_leaves_out_makes_no_decision_span(
    demo_db: str, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's sampler settings apply (OTEL_TRACES_SAMPLER): a request left out records
    nothing, its decisions included."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    exporter = InMemorySpanExporter()
    config = {**APP_DEFAULTS, "database_url": demo_db, "tracing": "console"}
    app = create_app(config, decision_log=MemoryLog(), span_exporter=exporter)
    try:
        r = app.test_client().post(
            "/v1/check", json={"user": "bruno.petit", "service": "cdap"}, headers=API_HEADERS
        )
        assert r.status_code == 200 and r.get_json()["allowed"]
        assert exporter.get_finished_spans() == ()
    finally:
        services(app).db.dispose()
