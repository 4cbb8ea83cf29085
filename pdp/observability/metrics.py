"""Prometheus metrics: every metric object of the service, and ``GET /metrics``.

Under ``pdp serve`` every gunicorn worker is a process of its own. With
``PROMETHEUS_MULTIPROC_DIR`` set (before the process starts: prometheus_client reads it when
imported), each process keeps its values in memory-mapped files of that directory and
``/metrics`` sums them over every process, live or dead (multiprocess mode): the master empties
the directory at start-up (``prepare_directory``) and forgets each worker's live gauges when it
exits (``process_dead``). Without it (tests, one process), the default registry is served.

What is measured (the names are the public contract of dashboards and alerts):

- ``pdp_decisions_total{kind, result, reason}``: every decision made (each one goes to the
  decision log); ``kind`` is check, permissions, service_users or admin, ``result`` allowed or
  denied;
- ``pdp_http_request_duration_seconds{endpoint, status}``: request latency by Flask endpoint
  and status class (``2xx``, ``4xx``…), from the first ``before_request`` to the response;
- ``pdp_policy_revision``: the revision each worker serves (one series per live process);
- ``pdp_policy_fresh_timestamp_seconds``: when the policy was last confirmed against the store
  (Unix time; the oldest of the live workers): alert on ``time() - …`` nearing
  ``PDP_MAX_STALENESS``;
- ``pdp_index_load_seconds``: how long each full build of the index took;
- ``pdp_decision_log_pending_bytes`` / ``pdp_decision_log_lag_seconds``: what is written and
  not shipped yet, and the age of its oldest entry (to within one ship interval), published by
  the shipper (under ``pdp serve`` the shipper process, for the whole directory; elsewhere each
  process's shipper thread, summed); ``pdp_decision_log_shipped_total`` (rows) and
  ``pdp_decision_log_ship_errors_total`` / ``pdp_decision_log_write_errors_total``;
  ``pdp_decision_log_rejected_total{cause}``: entries set aside in ``rejected.jsonl``
  (``unreadable``, or ``refused`` by the database), which every later entry ships past;
- ``pdp_watcher_reconnects_total``: how often the change watcher (``pdp.adapters.watcher``) had to
  reconnect to the store;
- ``pdp_build_info{version, commit, python}``: always 1; what is running (the package's
  version, ``PDP_BUILD_COMMIT`` or ``unknown``, the interpreter's version);
- ``pdp_rate_limited_requests_total{caller}``: requests refused 429 by the rate limit, by the
  kind of key they were counted on (``client``, ``user`` or ``address``);
- ``pdp_database_ok_timestamp_seconds``: when a worker last reached the database (Unix time;
  the newest of the live workers), checked on every ``/readyz`` and every scrape of
  ``/metrics``: alert on ``time() - …`` well above the scrape interval;
- ``pdp_audit_checkpoint_errors_total``: checkpoint rounds (``pdp.records.checkpoints``) that failed
  or were refused because the audit chain lacks the latest checkpoint (alert on any increase),
  and ``pdp_audit_checkpoint_ok_timestamp_seconds``: when a round last found the chain holding
  the latest checkpoint (Unix time; the newest of the live workers);
- ``pdp_dormant_users`` / ``pdp_dormant_rights``: users holding rights unused for 90 days, and
  those rights, nationally, as the last national report of dormant rights counted them
  (``GET /v1/dormant-rights``, ``pdp.services.dormant``), and
  ``pdp_dormant_counted_timestamp_seconds``: when that was (the counts are never older than the
  last report: schedule one, e.g. daily, rather than pay for it at each scrape).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from pdp.engine.decision import Reason
from pdp.engine.rules import AdminReason

ENDPOINT = "metrics"  # the Flask endpoint of GET /metrics (pdp.web.api.guard decides its access)

# Read once, like prometheus_client itself (its value class is chosen when it is imported).
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

# -- decisions ---------------------------------------------------------------------------------

DECISIONS = Counter(
    "pdp_decisions_total",
    "Decisions made, by kind, result and reason.",
    ("kind", "result", "reason"),
)


def _child(kind: str, allowed: bool, reason: str) -> Callable[[], None]:
    counter = DECISIONS.labels(kind, "allowed" if allowed else "denied", reason)
    return counter.inc


# The check path's counters made once (a ``labels()`` lookup costs more than the increment):
# ``CHECKS[reason]()`` counts one check. A check is allowed exactly when its reason is ALLOWED.
CHECKS: dict[Reason, Callable[[], None]] = {
    r: _child("check", r is Reason.ALLOWED, r.value) for r in Reason
}
ADMIN: dict[AdminReason, Callable[[], None]] = {
    r: _child("admin", r is AdminReason.ALLOWED, r.value) for r in AdminReason
}
_OTHERS: dict[tuple[str, bool, str], Callable[[], None]] = {}


def count_decision(kind: str, allowed: bool, reason: str) -> None:
    """Count one decision of any kind (the listings; checks and admin use CHECKS and ADMIN)."""
    key = (kind, allowed, reason)
    inc = _OTHERS.get(key)
    if inc is None:
        inc = _OTHERS[key] = _child(kind, allowed, reason)
    inc()


# -- what is running ---------------------------------------------------------------------------

BUILD_INFO = Gauge(
    "pdp_build_info",
    "Always 1: the running version, its source commit (or unknown) and Python's version.",
    ("version", "commit", "python"),
    multiprocess_mode="max",
)


def package_version() -> str:
    """The installed package's version (``unknown`` when run from a bare source tree)."""
    try:
        return metadata.version("caf-pdp")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_info(commit: str) -> None:
    """Publish ``pdp_build_info`` (one series: the version, ``commit`` or unknown, Python)."""
    global _build
    _build = (package_version(), commit or "unknown", platform.python_version())
    if MULTIPROC_DIR is None:  # (not implemented there: one app per process anyway)
        BUILD_INFO.clear()  # an app built again in this process (tests) replaces the series
    BUILD_INFO.labels(*_build).set(1)


_build: tuple[str, str, str] | None = None  # the labels build_info was last given


# -- requests ----------------------------------------------------------------------------------

REQUEST_SECONDS = Histogram(
    "pdp_http_request_duration_seconds",
    "HTTP request latency by endpoint and status class.",
    ("endpoint", "status"),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
_REQUESTS: dict[tuple[str, int], Callable[[float], None]] = {}

RATE_LIMITED = Counter(
    "pdp_rate_limited_requests_total",
    "Requests refused by the rate limit (429), by the kind of key they were counted on.",
    ("caller",),
)
# Made once, shown from the start at 0: ``RATE_LIMITED_BY["client"]()`` counts one refusal.
RATE_LIMITED_BY: dict[str, Callable[[], None]] = {
    kind: RATE_LIMITED.labels(kind).inc for kind in ("client", "user", "address")
}

# -- the database ------------------------------------------------------------------------------

DATABASE_OK = Gauge(
    "pdp_database_ok_timestamp_seconds",
    "Unix time a worker last reached the database (newest live worker).",
    multiprocess_mode="livemax",
)


def database_ok() -> None:
    """Record that the database just answered."""
    DATABASE_OK.set(time.time())


# -- the policy --------------------------------------------------------------------------------

POLICY_REVISION = Gauge(
    "pdp_policy_revision",
    "Policy revision served by each worker.",
    multiprocess_mode="liveall",
)
POLICY_FRESH = Gauge(
    "pdp_policy_fresh_timestamp_seconds",
    "Unix time the policy was last confirmed against the store (oldest live worker).",
    multiprocess_mode="livemin",
)
INDEX_LOAD_SECONDS = Histogram(
    "pdp_index_load_seconds",
    "Time to build the whole index from the store.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)


_policy: tuple[int, float] | None = None  # (revision, when): what the gauges were last set to


class EngineMetrics:
    """The decision engine's observer (``PolicyEngine(observer=...)``): index loads and the
    policy's freshness."""

    def loaded(self, seconds: float) -> None:
        """Count an index load of ``seconds``."""
        INDEX_LOAD_SECONDS.observe(seconds)

    def fresh(self, revision: int) -> None:
        """The policy at ``revision`` was just confirmed against the store."""
        policy_fresh(revision)


def policy_fresh(revision: int) -> None:
    """Record that the policy at ``revision`` was just confirmed against the store."""
    global _policy
    _policy = (revision, time.time())
    POLICY_REVISION.set(_policy[0])
    POLICY_FRESH.set(_policy[1])


def after_fork() -> None:
    """In a new worker: publish the policy it inherited. (In multiprocess mode a forked
    process starts from zeroed values: until its first refresh it would show revision 0.)"""
    if _build is not None:
        BUILD_INFO.labels(*_build).set(1)
    if _policy is not None:
        POLICY_REVISION.set(_policy[0])
        POLICY_FRESH.set(_policy[1])


def not_a_worker() -> None:
    """In a process forked from the master that serves no policy (the decision log's shipper
    process): publish none of the workers' policy gauges. At a forked process's first use of any
    metric, prometheus_client writes a zero of every gauge into files of its own: the revision
    (``liveall``) and the freshness (``livemin``) would show a process on revision 0 whose
    policy was never confirmed. Those two files hold nothing else: they go."""
    if MULTIPROC_DIR is None:
        return
    LOG_SHIPPED.inc(0)  # the first use: the process's files made now, not later
    for mode in ("liveall", "livemin"):
        Path(MULTIPROC_DIR, f"gauge_{mode}_{os.getpid()}.db").unlink(missing_ok=True)


# -- the decision log --------------------------------------------------------------------------

LOG_PENDING_BYTES = Gauge(
    "pdp_decision_log_pending_bytes",
    "Decision log bytes written and not yet shipped to the database.",
    multiprocess_mode="livesum",
)
LOG_LAG_SECONDS = Gauge(
    "pdp_decision_log_lag_seconds",
    "Age of the oldest decision log entry not yet shipped (0 when all is shipped).",
    multiprocess_mode="livemax",
)
LOG_SHIPPED = Counter("pdp_decision_log_shipped_total", "Decision log rows shipped.")
# PDP_DECISION_LOG_SYSLOG (pdp.records.decision_log.syslog): the SIEM's copy.
LOG_FORWARD_PENDING_BYTES = Gauge(
    "pdp_decision_log_forward_pending_bytes",
    "Decision log bytes written and not yet delivered to syslog.",
    multiprocess_mode="livesum",
)
LOG_FORWARDED = Counter(
    "pdp_decision_log_forwarded_total", "Decision log entries delivered to syslog."
)
LOG_FORWARD_ERRORS = Counter(
    "pdp_decision_log_forward_errors_total",
    "Failed deliveries to syslog (the entries wait on disk).",
)
LOG_SHIP_ERRORS = Counter(
    "pdp_decision_log_ship_errors_total", "Failed shipping rounds (the entries wait on disk)."
)
LOG_REJECTED = Counter(
    "pdp_decision_log_rejected_total",
    "Decision log entries set aside in rejected.jsonl: unreadable, or refused by the database.",
    ("cause",),
)
for _cause in ("unreadable", "refused"):
    LOG_REJECTED.labels(_cause)  # both series shown from the start, at 0
LOG_WRITE_ERRORS = Counter(
    "pdp_decision_log_write_errors_total",
    "Decision log writes or flushes that failed (a failed write is answered 503).",
)

# -- the change watcher ------------------------------------------------------------------------

# Incremented by pdp.adapters.watcher each time it reconnects to the store after losing its
# connection.
WATCHER_RECONNECTS = Counter(
    "pdp_watcher_reconnects_total", "Reconnections of the change watcher to the store."
)

# -- the audit trail's checkpoints -------------------------------------------------------------

AUDIT_CHECKPOINT_ERRORS = Counter(
    "pdp_audit_checkpoint_errors_total",
    "Audit checkpoint rounds that failed, or were refused (the chain lacks the latest checkpoint).",
)
AUDIT_CHECKPOINT_OK = Gauge(
    "pdp_audit_checkpoint_ok_timestamp_seconds",
    "Unix time a checkpoint round last found the audit chain holding the latest checkpoint.",
    multiprocess_mode="livemax",
)
LOG_PRUNE_ERRORS = Counter(
    "pdp_decision_log_prune_errors_total",
    "Retention rounds of the decision log that failed (pdp.records.retention; retried).",
)
LOG_PRUNE_OK = Gauge(
    "pdp_decision_log_prune_ok_timestamp_seconds",
    "Unix time a retention round of the decision log last completed (or found another "
    "server's round under way).",
    multiprocess_mode="livemax",
)


# -- dormant rights (R-CNIL-6) -------------------------------------------------------------------

DORMANT_USERS = Gauge(
    "pdp_dormant_users",
    "Users holding rights unused for 90 days, nationally, at the last national report.",
    multiprocess_mode="mostrecent",
)
DORMANT_RIGHTS = Gauge(
    "pdp_dormant_rights",
    "Rights (user, service, role) unused for 90 days, nationally, at the last national report.",
    multiprocess_mode="mostrecent",
)
DORMANT_COUNTED = Gauge(
    "pdp_dormant_counted_timestamp_seconds",
    "Unix time of the last national report of dormant rights (90 days).",
    multiprocess_mode="max",
)


def dormant_counted(users: int, rights: int, when: float) -> None:
    """Publish the counts of the national report of dormant rights just made."""
    DORMANT_USERS.set(users)
    DORMANT_RIGHTS.set(rights)
    DORMANT_COUNTED.set(when)


# -- exposure ----------------------------------------------------------------------------------


def exposition() -> bytes:
    """The text exposition of every metric: summed over every process in multiprocess mode."""
    if MULTIPROC_DIR is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, MULTIPROC_DIR)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def install(app: Flask, on_scrape: Callable[[], object] | None = None) -> None:
    """Time every request (register before any other ``before_request``) and serve
    ``GET /metrics`` (its access is decided by ``pdp.web.api.guard``); ``on_scrape`` runs
    before each exposition (the readiness checks: the database's and the policy's gauges are
    then as fresh as the scrape)."""

    @app.before_request
    def _start_timer() -> None:
        g.pdp_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("pdp_started")
        if started is not None:
            observe_request(request.endpoint or "none", response.status_code, started)
        return response

    def metrics() -> Response:
        """Prometheus text format (not JSON: outside the OpenAPI document)."""
        if on_scrape is not None:
            on_scrape()
        return Response(exposition(), mimetype=CONTENT_TYPE_LATEST.split(";")[0])

    app.add_url_rule("/metrics", ENDPOINT, metrics, methods=["GET"])


def observe_request(endpoint: str, status: int, started: float) -> None:
    """Count a request to ``endpoint`` answered with ``status``, begun at ``started``
    (``time.perf_counter``), in ``pdp_http_request_duration_seconds``."""
    key = (endpoint, status // 100)
    observe = _REQUESTS.get(key)
    if observe is None:
        observe = _REQUESTS[key] = REQUEST_SECONDS.labels(endpoint, f"{key[1]}xx").observe
    observe(time.perf_counter() - started)


# -- gunicorn's master -------------------------------------------------------------------------


def prepare_directory() -> None:
    """At the master's start-up: delete what earlier runs left in PROMETHEUS_MULTIPROC_DIR.

    The master's own files stay (they hold what it measured before forking, such as the first
    index load), except its live gauges: it serves nothing, so the revision it loaded at
    start-up must not show as a worker stuck on it. No-op outside multiprocess mode."""
    if MULTIPROC_DIR is None:
        return
    directory = Path(MULTIPROC_DIR)
    own = f"_{os.getpid()}.db"
    for path in directory.glob("*.db"):
        if not path.name.endswith(own):
            path.unlink(missing_ok=True)
    process_dead(os.getpid())


def process_dead(pid: int) -> None:
    """Forget the live gauges of a process that exited (gunicorn's ``child_exit``); its
    counters and histograms stay, so that the sums never go backwards."""
    if MULTIPROC_DIR is not None:
        multiprocess.mark_process_dead(pid, MULTIPROC_DIR)  # type: ignore[no-untyped-call]
