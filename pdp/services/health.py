"""Whether this process is fit to answer (``GET /readyz``): its policy, its database, its keys."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from pdp.engine.policy import PolicyEngine
from pdp.observability import metrics
from pdp.services.api_keys import ClientRegistry


def readiness(engine: PolicyEngine, clients: ClientRegistry, db: Engine) -> dict[str, str]:
    """Each check and its state ("ok" or why not): the policy confirmed against the store within
    PDP_MAX_STALENESS, the database answering, the API keys read. Refreshes the policy and the
    keys first (throttled like the checks' own reads: an unread copy is retried here too)."""
    engine.refresh()
    clients.refresh()
    checks = {
        "policy": "stale" if engine.stale else "ok",
        "database": "ok",
        "api_keys": "ok" if clients.loaded else "unavailable",
    }
    try:
        with db.connect() as conn:
            conn.execute(text("SELECT 1"))
        metrics.database_ok()
    except SQLAlchemyError:
        checks["database"] = "unreachable"
    return checks
