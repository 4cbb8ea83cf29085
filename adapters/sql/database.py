"""Database access: engine creation, migrations (Alembic) and the unit of work."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, insert, text, update
from sqlalchemy.orm import Session, sessionmaker

from pdp.adapters.sql.models import PolicyChange, PolicyRevision

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str) -> Engine:
    """Create the SQLAlchemy engine for ``url`` (SQLite gets foreign keys and WAL)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()
            # pysqlite sends no BEGIN before SELECTs: every read would see a different moment.
            # Take over transaction control (SQLAlchemy's documented recipe) so that a
            # transaction, reads included, is one WAL snapshot.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN")

        return engine
    # A database host that does not answer must not hold a worker (or the master) past
    # gunicorn's timeout: give up connecting after 5 s, as for a refused connection.
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})


def leave_checkpoints(engine: Engine) -> None:
    """SQLite: the connections of ``engine``, in this process and the processes it forks from
    now on, never checkpoint the WAL when they commit (``wal_autocheckpoint=0``; the pool is
    emptied so that none opened before is left); whoever calls ``checkpoint`` does. No-op on
    other databases.

    Under ``pdp serve`` the decision log's shipper writes most of the WAL, and by default the
    connection whose commit finds the WAL past 1,000 pages copies it all into the database:
    a worker's administration write then paid for the shipper's pages (a write under load took
    28 instead of 20 ms, and the checks lost twice what the writes' own work explains; see
    bench/README.md). The shipper process checkpoints after each round instead."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _no_autocheckpoint(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    engine.dispose()


def checkpoint(engine: Engine) -> None:
    """SQLite: copy what the WAL holds into the database, as far as readers allow, without
    waiting for them (``wal_checkpoint(PASSIVE)``). No-op on other databases."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").close()


def alembic_config(engine: Engine) -> Config:
    """Return an Alembic configuration pointing at pdp's migrations."""
    # Alembic is imported when migrations are looked at, not by every command that opens the
    # database: it is a third of the command line's start-up time.
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def upgrade(engine: Engine, target: str = "head") -> None:
    """Bring the schema to ``target`` with Alembic migrations (never ``create_all``)."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)


def schema_revision(engine: Engine) -> tuple[str | None, str | None]:
    """Return (the database's Alembic revision or None, the code's head revision)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


class UnitOfWork:
    """One business action = one transaction: ``begin``'s block commits when it ends normally and
    rolls back on any exception (callers never call ``commit`` themselves)."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """Yield a session in a transaction committed on success, rolled back on any error."""
        session = self._factory()
        try:
            with session.begin():
                yield session
        finally:
            session.close()


NOTIFY_CHANNEL = "pdp_policy"
# Built once: every write runs them, and building them cost more than running them.
_LOCK_REVISION = (
    update(PolicyRevision)
    .where(PolicyRevision.id == 1)
    .values(revision=PolicyRevision.revision)
    .returning(PolicyRevision.revision)
)
_BUMP_REVISION = (
    update(PolicyRevision)
    .where(PolicyRevision.id == 1)
    .values(revision=PolicyRevision.revision + 1)
    .returning(PolicyRevision.revision)
)
_NOTIFY = text("SELECT pg_notify(:channel, :revision)")


def lock_revision(session: Session) -> int:
    """Take the revision row's lock without a new revision; return the current revision."""
    return int(session.execute(_LOCK_REVISION).scalar_one())


def bump_revision(session: Session) -> int:
    """Take the next policy revision; the row lock is held until the transaction ends.

    Every writer that takes a revision calls this first (the others ``lock_revision``): writers
    are thus serialised, revisions commit in order, and whatever a writer reads afterwards is
    the latest committed state (on PostgreSQL at READ COMMITTED, and on SQLite whose write lock
    is taken by this very UPDATE).
    """
    revision = int(session.execute(_BUMP_REVISION).scalar_one())
    if session.get_bind().dialect.name == "postgresql":
        # Delivered to every listener when (and only if) this transaction commits
        # (pdp.adapters.watcher): other instances apply the change within milliseconds.
        session.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL, "revision": str(revision)})
    return revision


def log_changes(
    session: Session,
    revision: int,
    organisation_ids: Iterable[int | None],
    reason: str,
    parts: Iterable[tuple[int, str, int | None]] = (),
) -> None:
    """Log what revision ``revision`` touched: whole domains (``organisation_ids``, None: every
    domain) and parts of others (``parts``: (organisation, scope, subject id), migration 0011).
    A part of a domain also logged whole is left out: the whole covers it."""
    whole = set(organisation_ids)
    rows: list[dict[str, object]] = [
        {"revision": revision, "organisation_id": org, "reason": reason}
        for org in sorted(whole, key=lambda o: -1 if o is None else o)
    ]
    rows += [
        {
            "revision": revision,
            "organisation_id": org,
            "reason": reason,
            "scope": scope,
            "subject_id": subject,
        }
        for org, scope, subject in sorted(set(parts), key=lambda p: (p[0], p[1], p[2] or 0))
        if org not in whole and None not in whole
    ]
    session.execute(insert(PolicyChange), rows or [{"revision": revision, "reason": reason}])


def record_change(session: Session, organisation_ids: Iterable[int | None], reason: str) -> int:
    """Number this write: bump the revision, log the domains it touched, return the revision.

    An organisation id of None means every domain must be reloaded.
    """
    revision = bump_revision(session)
    log_changes(session, revision, organisation_ids, reason)
    return revision
