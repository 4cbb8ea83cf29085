"""The ``pdp`` command: database, demo data, decisions from the shell, and the server."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click
import orjson
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from pdp.adapters.sql.database import UnitOfWork, make_engine, upgrade
from pdp.cli.inputs import bind_option, database_error, masked_url, parse_day
from pdp.core.config import DEFAULT_BIND, Settings, default_workers
from pdp.core.errors import ConfigurationError, PdpError
from pdp.observability import logs as service_logs

if TYPE_CHECKING:  # the services load with the command that needs them: a faster start
    from pdp.records.decision_log import Backlog
    from pdp.services.api_keys import ClientStore
    from pdp.services.decisions import DecisionService


def _settings() -> Settings:
    return Settings.from_env()


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log the engine's progress.")
@click.version_option(package_name="caf-pdp", prog_name="pdp", message="%(prog)s %(version)s")
def cli(verbose: bool) -> None:
    """pdp: the access decision point of the Caf partner portal."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    clock_start = os.environ.get("PDP_CLOCK_START")
    if clock_start:  # tests only (refused in production): the same day as the server's
        from pdp.core.clock import start_clock_at

        try:
            start_clock_at(clock_start)
        except ValueError as exc:
            raise ConfigurationError(f"PDP_CLOCK_START: {exc}") from None
    if os.environ.get("PDP_LOG_FORMAT") == "json":
        service_logs.configure("json")


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest version (Alembic)."""
    settings = _settings()
    upgrade(make_engine(settings.database_url))
    click.echo(f"schema up to date: {masked_url(settings.database_url)}")


@cli.group()
def demo() -> None:
    """Demo data."""


def _load_demo(url: str) -> str:
    from pdp.core.clock import paris_today
    from pdp.core.masking import Masker
    from pdp.records.audit_trail import AuditChain
    from pdp.services.demo import demo_loaded, load_demo

    settings = _settings()
    chain = AuditChain(
        settings.audit_key.get_secret_value(),
        Masker(settings.log_mask, settings.log_mask_key.get_secret_value()),
    )
    uow = UnitOfWork(sessionmaker(make_engine(url)))
    with uow.begin() as session:
        if demo_loaded(session):
            return "demo data already loaded"
        revision = load_demo(session, paris_today(), chain)
    return f"demo data loaded (revision {revision})"


@demo.command("load")
def demo_load() -> None:
    """Load the demo organisations, users and groups (once)."""
    click.echo(_load_demo(_settings().database_url))


def _service() -> DecisionService:
    """The decision service, logging like the server (client "cli"); the log is flushed and
    shipped when the command exits."""
    from pdp.core.masking import Masker
    from pdp.records.decision_log import open_log
    from pdp.services.decisions import DecisionService
    from pdp.web.app import build_engine

    settings = Settings.from_env(verify_orgs=0)
    engine, db = build_engine(settings)
    decision_log, _shipper = open_log(settings, db)
    masker = Masker(settings.log_mask, settings.log_mask_key.get_secret_value())
    return DecisionService(engine, engine.catalogue, decision_log, masker)


@cli.command()
@click.argument("user")
@click.argument("service")
@click.argument("role", required=False)
@click.option("--caf", help="Caf code, e.g. 751.")
@click.option("--at", "at", help="Day to decide for (YYYY-MM-DD), default today.")
def check(user: str, service: str, role: str | None, caf: str | None, at: str | None) -> None:
    """Decide whether USER may use SERVICE (with ROLE). Exit 0 if allowed, 1 if denied."""
    from pdp.engine.decision import Query

    day = parse_day(at, "--at")  # a bad day is refused before the store is read
    try:
        checked = _service().check(Query(user, service, role, caf, day))
    except PdpError as exc:
        click.echo(f"error {exc.code}: {exc.message}", err=True)
        sys.exit(2)
    d = checked.decision
    verdict = "ALLOWED" if d.allowed else "DENIED"
    click.echo(f"{verdict} {d.reason.value}: {d.message} (revision {d.revision}, {d.day})")
    for g in d.grants:
        via = f"group {g.group}" if g.group else "Afas profile"
        click.echo(f"  {user} -> {via} -> {g.service}:{g.role}")
    sys.exit(0 if d.allowed else 1)


@cli.command()
@click.argument("user")
@click.option("--at", "at", help="Day (YYYY-MM-DD), default today.")
def permissions(user: str, at: str | None) -> None:
    """Print every service, role and Caf USER may use (JSON)."""
    day = parse_day(at, "--at")
    try:
        result = _service().permissions(user, day)
    except PdpError as exc:
        click.echo(f"error {exc.code}: {exc.message}", err=True)
        sys.exit(2)
    # The API's JSON form of the typed result (orjson writes dataclasses and days), indented.
    click.echo(json.dumps(orjson.loads(orjson.dumps(result)), ensure_ascii=False, indent=2))


@cli.command()
@click.option(
    "--bind",
    default=lambda: os.environ.get("PDP_BIND", DEFAULT_BIND),
    show_default=DEFAULT_BIND,
    callback=bind_option,
    help="HOST:PORT or unix:PATH (PDP_BIND), checked before anything is loaded.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=lambda: os.environ.get("PDP_WORKERS", str(default_workers())),
    help="Worker processes (PDP_WORKERS; default 2 per core).",
)
def serve(bind: str, workers: int) -> None:
    """Serve the API with gunicorn (production defaults)."""
    from pdp.web.app import create_app
    from pdp.web.server import serve as run

    service_logs.configure(_settings().log_format_of(serving=True))
    logging.getLogger("pdp").setLevel(logging.INFO)
    run(create_app(), bind, workers)


def _moment(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 day or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@cli.group()
def logs() -> None:
    """The decision log: shipping, export, retention."""


@logs.command("ship")
@click.option(
    "--follow",
    is_flag=True,
    help="Ship every PDP_DECISION_LOG_SHIP_INTERVAL until stopped (SIGTERM, ^C), as the "
    "shipper of an instance whose server does not run one.",
)
def logs_ship(follow: bool) -> None:
    """Ship to the database every segment no running process holds (after a crash); with
    --follow, be the directory's shipper until stopped."""
    from pdp.records.decision_log import ShipperLock, backlog, open_shipper
    from pdp.records.decision_log import follow as follow_log

    settings = _settings()
    shipper = open_shipper(settings, make_engine(settings.database_url))
    if follow:
        service_logs.configure(settings.log_format_of(serving=True))
        logging.getLogger("pdp").setLevel(logging.INFO)
        follow_log(shipper, _stop_event())
        click.echo(_rejected_line(backlog(settings.decision_log_dir)))
        return
    lock = ShipperLock(settings.decision_log_dir)
    # The segments of a server's workers: only under the lock, which its shipper holds.
    shipper.served = lock.acquire()
    try:
        report = shipper.ship_once()
    finally:
        lock.release()
    torn = f", {report.torn} torn last lines dropped" if report.torn else ""
    click.echo(
        f"shipped {report.shipped} decisions from {report.orphans} segments; "
        f"{report.rejected} entries set aside{torn}"
    )
    if not shipper.served:
        click.echo(f"the workers' segments are left to the running shipper (pid {lock.holder()})")
    click.echo(_rejected_line(backlog(settings.decision_log_dir)))


def _stop_event() -> Callable[[float], bool]:
    """``stopping(timeout)`` for a loop stopped by SIGTERM or SIGINT (^C)."""
    import signal
    import threading

    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda signum, frame: stop.set())
    return stop.wait


@logs.command("status")
def logs_status() -> None:
    """Show what waits to be shipped, the entries set aside in rejected.jsonl, and the shipper
    that runs (pdp serve's, or pdp logs ship --follow), if any."""
    from pdp.records.decision_log import ShipperLock, backlog

    waiting = backlog(_settings().decision_log_dir)
    click.echo(
        f"segments: {waiting.segments} waiting, {waiting.pending_bytes} bytes not shipped"
        if waiting.segments
        else "segments: none waiting"
    )
    click.echo(_rejected_line(waiting))
    holder = ShipperLock(_settings().decision_log_dir).holder()
    if holder is not None:
        click.echo(f"shipper: running (pid {holder})")


def _rejected_line(waiting: Backlog) -> str:
    """How many entries rejected.jsonl holds, where, and the last one's time and error."""
    if not waiting.rejected:
        return f"rejected: none ({waiting.rejected_path})"
    line = f"rejected: {waiting.rejected} entries in {waiting.rejected_path}"
    last = waiting.last_rejected
    if not isinstance(last, dict):
        return line
    error = last.get("error") or {}
    message = str(error.get("message", "")).partition("\n")[0]
    return f"{line}, the last at {last.get('rejected_at')}: {error.get('class')}: {message}"


@logs.command("export")
@click.option("--from", "start", help="First moment (ISO 8601), included.")
@click.option("--to", "end", help="Last moment (ISO 8601), excluded.")
@click.option("--organisation", help="Only this organisation's decisions.")
def logs_export(start: str | None, end: str | None, organisation: str | None) -> None:
    """Write the logged decisions, oldest first, to standard output as JSON lines."""
    from pdp.services.auditing import export_decisions

    db = make_engine(_settings().database_url)
    out = sys.stdout.buffer
    for line in export_decisions(db, organisation, _moment(start), _moment(end)):
        out.write(line)
    out.flush()


@logs.command("prune")
@click.option(
    "--months",
    type=click.IntRange(min=1),
    help="Months kept (default PDP_DECISION_LOG_RETENTION_MONTHS; production: at most 12).",
)
@click.option("--dry-run", is_flag=True, help="Say what would go; change nothing.")
def logs_prune(months: int | None, dry_run: bool) -> None:
    """Apply the retention: drop the decision log's months before the kept ones (PostgreSQL:
    whole partitions; SQLite: deletes in batches). The audit trail is never pruned."""
    from pdp.core.config import retention_problem
    from pdp.records.retention import Retention

    settings = Settings.from_env() if months is None else _settings_with_retention(months)
    refused = retention_problem(settings)
    if refused:
        raise ConfigurationError(f"PDP_ENV=production refuses: {refused}")
    db = make_engine(settings.database_url)
    retention = Retention(db, settings.decision_log_retention_months)
    click.echo(retention.prune(dry_run=dry_run).describe())


def _settings_with_retention(months: int) -> Settings:
    return Settings.from_env(decision_log_retention_months=months)


@cli.group()
def audit() -> None:
    """The audit trail of administrative changes."""


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False),
    help="Compare with this checkpoint file instead of the latest of PDP_AUDIT_CHECKPOINT_DIR.",
)
def audit_verify(checkpoint_file: str | None) -> None:
    """Check the hash chain, the policy revision against it, and the latest checkpoint (or
    --checkpoint); exit 1 naming the first broken or missing record."""
    from pdp.records.checkpoints import verify_trail

    settings = _settings()
    report = verify_trail(settings, make_engine(settings.database_url), checkpoint_file)
    for line in report.lines:
        click.echo(line)
    sys.exit(0 if report.ok else 1)


@audit.command("checkpoint")
@click.option(
    "--after-restore",
    is_flag=True,
    help="Acknowledge a restore that went behind the latest checkpoint: start a new generation.",
)
def audit_checkpoint(after_restore: bool) -> None:
    """Write a signed checkpoint of the chain's head into PDP_AUDIT_CHECKPOINT_DIR; exit 1 if
    the chain lacks the latest checkpoint."""
    from pdp.records.audit_trail import AuditChain
    from pdp.records.checkpoints import CheckpointError, open_writer

    settings = _settings()
    db = make_engine(settings.database_url)
    writer = open_writer(settings, db)
    if writer is None:
        raise ConfigurationError("PDP_AUDIT_CHECKPOINT_DIR is not set: nowhere to write")
    if after_restore:
        # Only an intact chain may be acknowledged: the new generation vouches for it.
        report = AuditChain(settings.audit_key.get_secret_value()).verify(db)
        if not report.ok:
            click.echo(f"BROKEN: {report.message}; not acknowledged", err=True)
            sys.exit(1)
    try:
        checkpoint = writer.step(after_restore=after_restore)
    except CheckpointError as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)
    superseded = (
        f", superseding record {checkpoint.supersedes[0]} of the previous generation"
        if checkpoint.supersedes
        else ""
    )
    click.echo(
        f"{checkpoint.path}: record {checkpoint.seq}, hash {checkpoint.hash}, "
        f"revision {checkpoint.revision}, generation {checkpoint.generation}{superseded}"
    )


@audit.command("export")
def audit_export() -> None:
    """Write every audit record, oldest first, to standard output as JSON lines."""
    import orjson

    from pdp.records.audit_trail import iter_records

    out = sys.stdout.buffer
    for record in iter_records(make_engine(_settings().database_url)):
        out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    out.flush()


@cli.group()
def access() -> None:
    """Who may use what: every user's rights on a day, as a document (R-ADM-8)."""


@access.command("export")
@click.option("--organisation", help="Only this organisation (default: the whole nation).")
@click.option("--at", "at", help="Day (YYYY-MM-DD), default today.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl")
@click.option("--output", type=click.File("wb", lazy=True), default="-", help="Default: stdout.")
def access_export(organisation: str | None, at: str | None, fmt: str, output: BinaryIO) -> None:
    """Write every right (organisation, login, service, role, caf, source, group, at), streamed."""
    from pdp.services.access import document
    from pdp.web.app import build_engine

    day = parse_day(at, "--at")
    engine, _db = build_engine(Settings.from_env(verify_orgs=0))
    try:
        found = document(engine, organisation, day)
        rows = found.write(output, fmt)
    except PdpError as exc:
        click.echo(f"error {exc.code}: {exc.message}", err=True)
        sys.exit(2)
    click.echo(f"{rows} rows, {found.day}, revision {found.revision}", err=True)


@cli.command()
@click.argument("login")
@click.option("--ttl", type=click.IntRange(min=1), help="Lifetime in seconds (PDP_TOKEN_TTL).")
def token(login: str, ttl: int | None) -> None:
    """Print a short-lived administration token for LOGIN (needs PDP_JWT_SECRET)."""
    from sqlalchemy import select

    from pdp.adapters.sql.models import User
    from pdp.services.tokens import mint

    settings = _settings()
    with make_engine(settings.database_url).connect() as conn:
        known = conn.execute(select(User.id).where(User.login == login)).first()
    if known is None:
        click.echo(
            f"error UNKNOWN_LOGIN: no user {login!r} in this database; "
            "no token minted / aucun utilisateur de cet identifiant, pas de jeton.",
            err=True,
        )
        sys.exit(2)
    click.echo(mint(settings, login, ttl))


def _client_store() -> ClientStore:
    from pdp.core.catalogue import load_catalogue
    from pdp.core.masking import Masker
    from pdp.policies import CATALOGUE_PATH
    from pdp.records.audit_trail import AuditChain
    from pdp.services.api_keys import ClientStore

    settings = _settings()
    catalogue = load_catalogue(
        Path(settings.catalogue_path) if settings.catalogue_path else CATALOGUE_PATH
    )
    chain = AuditChain(
        settings.audit_key.get_secret_value(),
        Masker(settings.log_mask, settings.log_mask_key.get_secret_value()),
    )
    return ClientStore(make_engine(settings.database_url), chain, catalogue.services)


def _operator() -> str:
    """Who runs the command, for the audit trail."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli:unknown"


def main() -> None:
    """Entry point of the ``pdp`` console script; configuration errors exit 2 with a message."""
    try:
        cli()
    except ConfigurationError as exc:
        click.echo(f"error {exc.code}: {exc.message}", err=True)
        sys.exit(2)
    except SQLAlchemyError as exc:
        problem = str(getattr(exc, "orig", None) or exc)
        try:
            url = _settings().database_url
        except (ConfigurationError, ValueError):
            url = os.environ.get("PDP_DATABASE_URL", "")
        click.echo(f"error DATABASE_ERROR: {database_error(url, problem)}", err=True)
        sys.exit(2)
