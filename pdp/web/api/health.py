"""Probes for the orchestrator: ``/healthz`` (alive) and ``/readyz`` (fit to answer).

Neither needs credentials nor counts against a rate limit; neither says anything about users.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from pdp.services.health import readiness
from pdp.web.api.openapi import route
from pdp.web.api.schemas import HealthResponse, ReadyResponse
from pdp.web.container import services

bp = Blueprint("health", __name__)


@route(
    bp,
    "GET",
    "/healthz",
    summary="Liveness: the process answers",
    response=HealthResponse,
    errors=(),
    public=True,
)
def healthz() -> Response:
    """Alive, and the policy revision served. Does not touch the database."""
    return jsonify({"status": "ok", "revision": services().engine.revision})


@route(
    bp,
    "GET",
    "/readyz",
    summary="Readiness: policy fresh, database reachable, API keys read",
    response=ReadyResponse,
    errors=(),
    other_responses={503: ReadyResponse},
    public=True,
)
def readyz() -> Response:
    """Ready when the policy has been confirmed against the store within PDP_MAX_STALENESS,
    the database answers and the API keys have been read; 503 otherwise (checks then deny:
    R-DEC-2, or answer 503 KEYS_UNAVAILABLE)."""
    found = services()
    engine = found.engine
    checks = readiness(engine, found.api_keys, found.db)
    ready = all(v == "ok" for v in checks.values())
    response = jsonify(
        {"status": "ready" if ready else "not_ready", "revision": engine.revision, "checks": checks}
    )
    response.status_code = 200 if ready else 503
    return response
