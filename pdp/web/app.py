"""The application factory and composition root: builds every collaborator and passes it in."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from sqlalchemy.exc import SQLAlchemyError

from pdp.adapters.sql.database import make_engine, schema_revision
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.adapters.watcher import open_watcher
from pdp.core import context
from pdp.core.catalogue import load_catalogue
from pdp.core.clock import start_clock_at
from pdp.core.config import Settings, refuse_defaults
from pdp.core.errors import BadRequest, ConfigurationError
from pdp.core.masking import Masker
from pdp.engine.casbin_model import load_model
from pdp.engine.policy import PolicyEngine
from pdp.observability import metrics, tracing
from pdp.observability.metrics import WATCHER_RECONNECTS
from pdp.policies import CATALOGUE_PATH
from pdp.records.audit_trail import AuditChain
from pdp.records.checkpoints import open_writer
from pdp.records.decision_log import DecisionLog, open_log
from pdp.records.retention import open_retention
from pdp.services.access import AccessDocuments
from pdp.services.admin.preview import previewing
from pdp.services.admin.service import AdminService
from pdp.services.api_keys import DEMO_CLIENT, ClientRegistry
from pdp.services.auditing import AuditorQueries
from pdp.services.decisions import DecisionService
from pdp.services.health import readiness
from pdp.services.person_file import PersonFiles
from pdp.services.sessions import SessionStore
from pdp.services.tokens import TokenVerifier
from pdp.web import console
from pdp.web.api import errors, guard, hot_path
from pdp.web.api.access import bp as access_bp
from pdp.web.api.admin_contracts import bp as admin_contracts_bp
from pdp.web.api.admin_groups import bp as admin_groups_bp
from pdp.web.api.admin_network import bp as admin_network_bp
from pdp.web.api.admin_reviews import bp as admin_reviews_bp
from pdp.web.api.admin_users import bp as admin_users_bp
from pdp.web.api.auditor import bp as auditor_bp
from pdp.web.api.catalogue import bp as catalogue_bp
from pdp.web.api.decisions import bp as decisions_bp
from pdp.web.api.docs import bp as docs_bp
from pdp.web.api.dormant import bp as dormant_bp
from pdp.web.api.health import bp as health_bp
from pdp.web.api.jsonio import OrjsonProvider
from pdp.web.api.person_file import bp as person_file_bp
from pdp.web.container import Services
from pdp.web.proxy_trust import trust_forwarded

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("pdp")


def build_engine(settings: Settings) -> tuple[PolicyEngine, Any]:
    """Create the database engine and the decision engine, loaded and self-checked."""
    catalogue = load_catalogue(
        Path(settings.catalogue_path) if settings.catalogue_path else CATALOGUE_PATH
    )
    load_model()  # fail at start-up, not at the first check, if the model file is broken
    try:
        db = make_engine(settings.database_url)
    except SQLAlchemyError as exc:
        raise ConfigurationError(f"PDP_DATABASE_URL is not a database URL: {exc}") from exc
    where = db.url.render_as_string(hide_password=True)
    try:
        current, head = schema_revision(db)
    except SQLAlchemyError as exc:
        raise ConfigurationError(f"database unreachable ({where}): {exc}") from exc
    if not current:
        raise ConfigurationError(
            f"database {where} has no pdp schema. Is PDP_DATABASE_URL the database you meant? "
            "(after `pdp quickstart`: `. ./pdp-demo.env`); for a new, empty database: "
            "`pdp db upgrade`"
        )
    if current != head:
        raise ConfigurationError(
            f"database {where}: schema at {current}, the code needs {head}: "
            "run `pdp db upgrade` first"
        )
    engine = PolicyEngine(
        SqlSnapshotSource(db),
        catalogue,
        refresh_interval=settings.refresh_interval,
        max_staleness=settings.max_staleness,
        observer=metrics.EngineMetrics(),
    )
    engine.load()
    checked = engine.verify(settings.verify_orgs)
    log.info("engine self-check against Casbin: %s queries agreed", checked)
    return engine, db


def refuse_demo_key(clients: ClientRegistry) -> None:
    """In production, refuse to start while the demo's API key (``pdp quickstart``) is open,
    or while the keys cannot be read (the demo key could be among them)."""
    if not clients.loaded:
        raise ConfigurationError(
            "PDP_ENV=production refuses to start: the API keys cannot be read (database "
            "unreachable), so the demo key cannot be known closed"
        )
    if clients.named(DEMO_CLIENT):
        raise ConfigurationError(
            f"PDP_ENV=production refuses to start: the demo API key {DEMO_CLIENT!r} is open "
            f"(pdp clients revoke {DEMO_CLIENT})"
        )


class PdpFlask(Flask):
    """Flask with the orjson provider (``pdp.web.api.jsonio``)."""

    json_provider_class = OrjsonProvider


def create_app(
    test_config: Mapping[str, Any] | None = None,
    *,
    engine: PolicyEngine | None = None,
    decision_log: DecisionLog | None = None,
    span_exporter: SpanExporter | None = None,
) -> Flask:
    """Build the Flask app. Settings come from the environment, overridden by ``test_config``;
    ``span_exporter`` receives the spans when ``PDP_TRACING`` is on (tests)."""
    overrides = dict(test_config or {})
    settings = Settings.from_env(**overrides)
    refuse_defaults(settings)
    if settings.clock_start:
        try:
            start_clock_at(settings.clock_start)
        except ValueError as exc:
            raise ConfigurationError(f"PDP_CLOCK_START: {exc}") from None
    app = PdpFlask(__name__)
    # Body size is enforced by the views themselves (pdp.web.api.decisions._body): Werkzeug's
    # limit cuts chunked bodies silently instead of refusing them.
    verifier = TokenVerifier.from_settings(settings)
    if engine is None:
        engine, db = build_engine(settings)
    else:
        db = make_engine(settings.database_url)
    masker = Masker(settings.log_mask, settings.log_mask_key.get_secret_value())
    shipper = None
    if decision_log is None:
        decision_log, shipper = open_log(settings, db)
    decisions = DecisionService(engine, engine.catalogue, decision_log, masker)
    admin = AdminService(
        db,
        engine,
        engine.catalogue,
        AuditChain(settings.audit_key.get_secret_value(), masker),
        decision_log,
        verifier,
        masker,
    )
    auditing = AuditorQueries(db, admin, masker)
    # Both started in each worker after the fork (pdp.web.server), never in the master.
    checkpoints = open_writer(settings, db)
    watcher = open_watcher(
        settings.watcher, settings.database_url, engine.observe, on_reconnect=WATCHER_RECONNECTS.inc
    )
    clients = ClientRegistry(db, settings.refresh_interval)
    # Read now, like the engine, not on the first request: a database lost before it would
    # leave no key to check. If this read fails (an app given its engine, or the database
    # lost since the engine loaded), keyed requests answer 503 until a later read succeeds.
    # gunicorn's workers inherit this copy and read again after the fork (pdp.web.server).
    clients.load()
    if settings.production:
        refuse_demo_key(clients)

    metrics.build_info(settings.build_commit)
    # First: its timer starts before any other before_request. A scrape checks the database.
    metrics.install(app, lambda: readiness(engine, clients, db))
    tracer = tracing.tracer_for(settings.tracing, span_exporter)
    if tracer is not None:  # PDP_TRACING=off installs nothing on the request path
        tracing.instrument_app(app, tracer)
        tracing.instrument_store(db, tracer)
        decisions.tracer = tracer
    else:  # the checks' lean path (its spans would be Flask hooks: all through Flask then)
        hot_path.install(app)
    # Behind a trusted reverse proxy, request.remote_addr is the caller nginx saw (R-OPS-1).
    app.wsgi_app = trust_forwarded(app.wsgi_app, settings)  # type: ignore[method-assign,assignment]

    @app.before_request
    def _request_context() -> None:
        context.begin(request.headers.get("X-Request-Id"), request.remote_addr)
        if b"dry_run" in request.query_string:  # a preview of a write (bytes test: no parsing
            previewing.set(_dry_run(request.args.get("dry_run")))  # on the checks' path)

    @app.after_request
    def _request_id_header(response: Response) -> Response:
        response.headers["X-Request-Id"] = context.request_id.get() or ""
        return response

    @app.teardown_request
    def _forget_request_id(_exc: BaseException | None) -> None:
        context.end()
        previewing.set(False)  # a preview must not carry over to the next write either

    errors.install(app)
    limiter = guard.install(app, clients, verifier, settings)
    app.register_blueprint(health_bp)
    app.register_blueprint(decisions_bp)
    app.register_blueprint(admin_users_bp)
    app.register_blueprint(admin_contracts_bp)
    app.register_blueprint(admin_network_bp)
    app.register_blueprint(admin_groups_bp)
    app.register_blueprint(admin_reviews_bp)
    app.register_blueprint(auditor_bp)
    app.register_blueprint(catalogue_bp)
    app.register_blueprint(access_bp)
    app.register_blueprint(docs_bp)
    app.register_blueprint(person_file_bp)
    app.register_blueprint(dormant_bp)
    sessions = SessionStore(db, settings.console_session_idle, settings.console_session_max)
    mounted_console = console.install(app, settings, sessions)  # unless PDP_CONSOLE_AUTH=off
    Services(
        settings=settings,
        db=db,
        engine=engine,
        masker=masker,
        verifier=verifier,
        decision_log=decision_log,
        shipper=shipper,
        decisions=decisions,
        admin=admin,
        auditing=auditing,
        access=AccessDocuments(admin, decisions),
        api_keys=clients,
        checkpoints=checkpoints,
        watcher=watcher,
        retention=open_retention(settings, db),
        persons=PersonFiles(db, admin, masker, settings.decision_log_retention_months),
        limiter=limiter,
        mounted_console=mounted_console,
    ).install(app)
    return app


def _dry_run(value: str | None) -> bool:
    """``?dry_run=true`` (or 1): preview the write instead of making it; false (or 0): make it."""
    if value in ("true", "1"):
        return True
    if value in ("false", "0", None):
        return False
    raise BadRequest("dry_run vaut true ou false.", code="VALIDATION_ERROR")
