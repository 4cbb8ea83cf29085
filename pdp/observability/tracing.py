"""Tracing with OpenTelemetry, an optional extra (``pip install 'caf-pdp[tracing]'``).

``PDP_TRACING`` says where spans go: ``off`` (the default: nothing is installed, so the request
path pays nothing but one ``is None`` test per decision), ``otlp`` (OTLP over HTTP, to
``OTEL_EXPORTER_OTLP_ENDPOINT`` or its default, with the SDK's other ``OTEL_*`` variables) or
``console`` (one JSON document per span on standard output, for a first look). The SDK's
sampler settings apply (``OTEL_TRACES_SAMPLER=parentbased_traceidratio``,
``OTEL_TRACES_SAMPLER_ARG=0.01``: one request in a hundred, or as the caller's trace says); a
request left out costs far less than a recorded one (bench/tracing.py). Asking for
tracing without the extra installed stops the service at start-up (ConfigurationError): a
setting that silently does nothing would be worse.

What is traced, each span a child of the one above it:

- every request: a server span named after its route (``POST /v1/check``), continuing the
  caller's trace when the request carries a W3C ``traceparent`` header (``pdp.client`` sends
  the caller's current one); it records the status code;
- every decision of a recorded request (single checks and each item of a batch):
  ``pdp.decision``, with the decision's id (the one the decision log keeps: a trace leads to its
  log entry), reason, outcome, service and policy revision — never the user's login;
- every database transaction made while serving a request: ``pdp.store.transaction``, ended by
  its commit or rollback. The background threads (decision-log shipper, checkpoints) have no
  request and are not traced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, g, request
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from pdp.core.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )
except ImportError:  # the extra is not installed: tracing stays off
    AVAILABLE = False
else:
    AVAILABLE = True

MODES = ("off", "otlp", "console")
SERVICE_NAME = "pdp"


def tracer_for(mode: str, exporter: SpanExporter | None = None) -> Tracer | None:
    """The tracer spans are made with for ``PDP_TRACING=mode`` (None: off). ``exporter``
    replaces the mode's (tests pass the SDK's in-memory exporter; spans are then exported as
    they end). Raises ConfigurationError for an unknown mode or a missing extra."""
    if mode not in MODES:
        raise ConfigurationError(f"PDP_TRACING must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return None
    if not AVAILABLE:
        raise ConfigurationError(
            f"PDP_TRACING={mode} needs the tracing extra: pip install 'caf-pdp[tracing]'"
        )
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif mode == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider.get_tracer("pdp")


def instrument_app(app: Flask, tracer: Tracer) -> None:
    """A server span per request, continuing the caller's ``traceparent``."""

    @app.before_request
    def _start_span() -> None:
        rule = request.url_rule.rule if request.url_rule is not None else request.path
        parent = propagate.extract(request.headers)
        span = tracer.start_span(
            f"{request.method} {rule}", context=parent, kind=trace.SpanKind.SERVER
        )
        span.set_attribute("http.request.method", request.method)
        span.set_attribute("http.route", rule)
        g.pdp_span = span
        g.pdp_span_token = otel_context.attach(trace.set_span_in_context(span, parent))

    @app.after_request
    def _status(response: Any) -> Any:
        span = g.get("pdp_span")
        if span is not None:
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(trace.StatusCode.ERROR)
        return response

    @app.teardown_request
    def _end_span(_exc: BaseException | None) -> None:
        span, token = g.pop("pdp_span", None), g.pop("pdp_span_token", None)
        if span is not None:
            span.end()
        if token is not None:
            otel_context.detach(token)


def instrument_store(db: Engine, tracer: Tracer) -> None:
    """A span per database transaction begun while a request is traced."""

    @event.listens_for(db, "begin")
    def _begin(conn: Connection) -> None:
        if not trace.get_current_span().get_span_context().is_valid:
            return  # a background thread: no request to attach it to
        conn.info["pdp_span"] = tracer.start_span("pdp.store.transaction")

    def _end(outcome: str) -> Any:
        def end(conn: Connection) -> None:
            span = conn.info.pop("pdp_span", None)
            if span is not None:
                span.set_attribute("pdp.outcome", outcome)
                span.end()

        return end

    event.listen(db, "commit", _end("commit"))
    event.listen(db, "rollback", _end("rollback"))


def recording() -> bool:
    """Whether the current span records: a request the sampler left out (or no request, as in
    a batch job) makes no decision spans, at the cost of this test alone."""
    return bool(trace.get_current_span().is_recording())


def decision_span(tracer: Tracer) -> Any:
    """A ``pdp.decision`` span around one decision (a context manager)."""
    return tracer.start_as_current_span("pdp.decision")


def describe_decision(span: Span, attributes: Mapping[str, Any]) -> None:
    """Name the decision on its span (its id, reason, outcome, service, revision)."""
    span.set_attributes({f"pdp.{k}": v for k, v in attributes.items() if v is not None})
