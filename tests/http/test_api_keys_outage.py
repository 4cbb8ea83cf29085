"""API keys through a database outage.

Keys are read when the app starts: a database lost before the first request, or during any
later one, leaves valid keys working and revoked ones refused; an app that never read them
answers 503 KEYS_UNAVAILABLE (never 401) and /readyz says so, until it reads them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.core.errors import ConfigurationError
from pdp.engine.policy import PolicyEngine
from pdp.records.decision_log import MemoryLog
from pdp.web.app import create_app
from pdp.web.container import services

from support.api_clients import production, store
from support.constants import API_KEY, MakeApp
from support.databases import APP_DEFAULTS
from support.servers import answers_from_every_worker, running, server_env

# -- Keys through a database outage ------------------------------------------------------------

UNKNOWN_KEY = f"pdp_ffffffffffff_{'t' * 43}"  # well-formed, in no database
CDAP = {"user": "bruno.petit", "service": "cdap"}


@contextlib.contextmanager
def outage(url: str, *pools: Engine) -> Iterator[None]:
    """The database at ``url`` is unreachable inside the block, then back as it was.

    PostgreSQL: the database refuses new connections and those open are ended (the server
    side of an outage). SQLite: the file (with its WAL) is put aside and a directory takes its
    name; an open SQLite connection would go on reading the file it opened, so ``pools`` (the
    engines of the app under test) are emptied first.
    """
    target = make_url(url)
    if target.get_backend_name() == "sqlite":
        assert target.database is not None
        path = Path(target.database)
        for pool in pools:
            pool.dispose()
        moved = [
            (Path(f"{path}{suffix}"), Path(f"{path}{suffix}.away"))
            for suffix in ("", "-wal", "-shm")
            if Path(f"{path}{suffix}").exists()
        ]
        for here, away in moved:
            here.rename(away)
        path.mkdir()  # "unable to open database file", even for root
        try:
            yield
        finally:
            path.rmdir()
            for here, away in moved:
                away.rename(here)
        return
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = target.database
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
        admin.dispose()


def check_as(client: Any, key: str) -> tuple[int, str | None]:
    """POST /v1/check with ``key``: (status, error code or None)."""
    response = client.post("/v1/check", json=CDAP, headers={"X-Api-Key": key})
    body = response.get_json()
    return response.status_code, body["error"]["code"] if "error" in body else None


def test_keys_read_at_start_outlive_a_database_lost_before_the_first_request(
    make_app: MakeApp, demo_db: str
) -> None:
    # Keys used to be read on the first request only; a database down by then made every
    # valid key 401 INVALID_API_KEY. They are read when the app starts, and kept.
    old, _ = store(demo_db).add("old-front", ["cdap"], "cli:tester")
    store(demo_db).revoke("old-front", "cli:tester")
    app, _ = make_app()  # refresh_interval 0: every request tries to re-read the keys
    client = app.test_client()
    with outage(demo_db, services(app).db):
        assert check_as(client, API_KEY) == (200, None)
        assert check_as(client, UNKNOWN_KEY) == (401, "INVALID_API_KEY")
        assert check_as(client, old) == (401, "INVALID_API_KEY")
        ready = client.get("/readyz")
        assert (ready.status_code, ready.get_json()["checks"]) == (
            503,
            {"policy": "ok", "database": "unreachable", "api_keys": "ok"},
        )
    assert check_as(client, API_KEY) == (200, None)


def test_a_revocation_read_before_an_outage_holds_through_it(
    make_app: MakeApp, demo_db: str
) -> None:
    key, _ = store(demo_db).add("cdap-front", ["cdap"], "cli:tester")
    app, _ = make_app()
    client = app.test_client()
    assert check_as(client, key) == (200, None)
    store(demo_db).revoke("cdap-front", "cli:tester")
    assert check_as(client, key) == (401, "INVALID_API_KEY")  # the last good copy
    with outage(demo_db, services(app).db):
        assert check_as(client, key) == (401, "INVALID_API_KEY")
        assert check_as(client, API_KEY) == (200, None)


def engine_over(url: str) -> tuple[Engine, PolicyEngine]:
    """A database engine on ``url`` and a decision engine loaded from it (refresh_interval 0)."""
    db = make_engine(url)
    engine = PolicyEngine(SqlSnapshotSource(db), load_catalogue(), refresh_interval=0)
    engine.load()
    return db, engine


def test_an_app_started_without_its_database_answers_503_until_it_reads_the_keys(
    demo_db: str, clean_env: None
) -> None:
    # A key that cannot be checked is neither valid nor invalid: 503 KEYS_UNAVAILABLE, never
    # 401 "invalid or revoked"; /readyz says why; the keys are read once the database is back.
    config = {"database_url": demo_db, **APP_DEFAULTS}
    db, engine = engine_over(demo_db)
    with outage(demo_db, db):
        # The app building its own engine refuses to start, as it always did.
        with pytest.raises(ConfigurationError, match="database unreachable"):
            create_app(config)
        # Given an engine already loaded, it starts without the keys.
        app = create_app(config, engine=engine, decision_log=MemoryLog())
        client = app.test_client()
        assert check_as(client, API_KEY) == (503, "KEYS_UNAVAILABLE")
        assert check_as(client, UNKNOWN_KEY) == (503, "KEYS_UNAVAILABLE")
        assert check_as(client, "not-a-key") == (401, "INVALID_API_KEY")  # no database needed
        ready = client.get("/readyz")
        assert (ready.status_code, ready.get_json()["checks"]) == (
            503,
            {"policy": "ok", "database": "unreachable", "api_keys": "unavailable"},
        )
    assert check_as(client, API_KEY) == (200, None)
    assert check_as(client, UNKNOWN_KEY) == (401, "INVALID_API_KEY")
    ready = client.get("/readyz")
    assert (ready.status_code, ready.get_json()["checks"]["api_keys"]) == (200, "ok")
    services(app).db.dispose()
    db.dispose()


def test_production_refuses_to_start_without_reading_the_keys(
    demo_db: str, clean_env: None
) -> None:
    # Unread keys could hold the demo key, which production must see closed before starting.
    config = {"database_url": demo_db, "decision_log": "off", "verify_orgs": 0, **production()}
    db, engine = engine_over(demo_db)
    with outage(demo_db, db), pytest.raises(ConfigurationError, match="API keys cannot be read"):
        create_app(config, engine=engine, decision_log=MemoryLog())
    db.dispose()


@pytest.mark.e2e
@pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_every_worker_of_a_fresh_server_keeps_the_keys_when_postgres_goes(
    tmp_path: Path, demo_db: str
) -> None:
    # The failure this guards against: `pdp serve` (development mode, 2 workers) loses its
    # database before its first check; every worker must still accept a valid key. PostgreSQL
    # only: an open SQLite connection reads on from a file moved away, so only a server can go
    # away.
    env = server_env(tmp_path, PDP_DATABASE_URL=demo_db)
    with running(["serve", "--workers", "2"], env, tmp_path) as server:
        server.api_key = API_KEY
        with outage(demo_db):
            answers = answers_from_every_worker(
                server, lambda: server.request("POST", "/v1/check", CDAP)[0]
            )
        assert answers == [200] * len(answers)
