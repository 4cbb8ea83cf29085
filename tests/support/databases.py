"""What conftest's database fixtures do, importable by any test: empty a PostgreSQL database,
load the demo, make a database for a fixture of any scope, give it the tests' API key, and the
settings every test app gets unless told otherwise.

These live here rather than in tests/conftest.py because a folder's own ``conftest.py`` takes
the module name ``conftest`` while its tests run: ``from conftest import ...`` would then find
that one."""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import ApiClientRecord, Base, PolicyRevision
from pdp.core.catalogue import load_catalogue
from pdp.services.api_keys import key_digest
from pdp.services.demo import load_demo

from support.constants import API_KEY, API_KEY_ID

# Every table the domain writes, children first; the revision row and Alembic's table stay.
DOMAIN_TABLES = [
    t.name for t in reversed(Base.metadata.sorted_tables) if t.name != "policy_revision"
]

# The settings of the tests' apps unless told otherwise: no decision log file, no refresh
# throttle, no self-check against Casbin, no rate limit.
APP_DEFAULTS: dict[str, Any] = {
    "decision_log": "off",
    "refresh_interval": 0,
    "verify_orgs": 0,
    "rate_limit": "off",
}


# Restarts the sequences of the domain tables' identity and serial columns (what ALTER SEQUENCE
# ... RESTART does, without making a new file for each): the next value is the start value.
_RESTART_SEQUENCES = text(
    "SELECT s.oid::regclass::text, setval(s.oid, q.seqstart, false) FROM pg_class s"
    " JOIN pg_sequence q ON q.seqrelid = s.oid"
    " JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid"
    " AND d.deptype IN ('a', 'i')"
    " JOIN pg_class t ON t.oid = d.refobjid"
    " WHERE s.relkind = 'S' AND t.relname = ANY(:tables)"
    " AND t.relnamespace = current_schema()::regnamespace"
)


def reset_postgres(url: str) -> None:
    """Empty every domain table and set the revision back to 0.

    DELETE, children first, and the tables' sequences restarted: what ``TRUNCATE ... RESTART
    IDENTITY`` does, at a few milliseconds instead of a few hundred (TRUNCATE makes new files
    for every table and index); a reset runs before every PostgreSQL test.
    """
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for name in DOMAIN_TABLES:
                conn.execute(text(f'DELETE FROM "{name}"'))
            restarted = conn.execute(_RESTART_SEQUENCES, {"tables": DOMAIN_TABLES}).all()
            assert restarted, "no sequence of the domain tables found"
            conn.execute(
                update(PolicyRevision)
                .where(PolicyRevision.id == 1)
                .values(revision=0, audit_seq=0, audit_hash="0" * 64)
            )
        with sessionmaker(engine).begin() as session:
            add_test_key(session)
    finally:
        engine.dispose()


def new_database(request: pytest.FixtureRequest, backend: str, directory: Path) -> str:
    """Return the URL of an empty database at the latest schema (revision 0) on ``backend``.

    SQLite: a new file in ``directory``. PostgreSQL: the session's database, emptied (it is
    shared: whatever a previous test left there is gone).
    """
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = directory / f"pdp-{secrets.token_hex(4)}.sqlite3"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    reset_postgres(url)
    return url


def write_demo(url: str, today: dt.date) -> None:
    """Load the demo stories (pdp.services.demo) into the database at ``url``, in one
    transaction."""
    engine = make_engine(url)
    try:
        with sessionmaker(engine).begin() as session:
            load_demo(session, today)
    finally:
        engine.dispose()


def add_test_key(session: Session) -> None:
    """Give a fresh database the tests' API key (client "tests", every service of the
    catalogue): every database the fixtures make has it."""
    session.add(
        ApiClientRecord(
            key_id=API_KEY_ID,
            name="tests",
            key_hash=key_digest(API_KEY),
            services=",".join(sorted(load_catalogue().services)),
            created_at=dt.datetime.now(dt.UTC),
        )
    )
