"""Shared fixtures: a real database per test (SQLite, and PostgreSQL when asked), the app, its
client.

Databases (one suite, run on every driver):

- ``sqlite``: a fresh temporary file per test. The schema is made once per session by the
  Alembic migrations (``pdp.adapters.sql.database.upgrade``) into a template file, which each test
  copies: a copy costs far less than replaying the migrations, and is the same schema. The
  demo (``pdp.services.demo.load_demo``) is likewise loaded once into a second template.
- ``postgres``: only when ``PDP_TEST_POSTGRES_URL`` is set (otherwise skipped, with the reason).
  One database ``pdp_test_<random>`` is created per session through the server's ``postgres``
  maintenance database, upgraded once and dropped at the end; before each test every domain table
  is emptied and the revision reset to 0. An unreachable server fails the tests: a CI run that
  asked for PostgreSQL must not pass without it.

What the fixtures do to a database (empty it, load the demo, add the tests' API key) is in
``support.databases``, for the tests that need it outside a fixture.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from pdp.adapters.sql.database import make_engine, upgrade
from pdp.core.clock import paris_today
from pdp.records.decision_log import MemoryLog
from pdp.web.app import PdpFlask, create_app
from pdp.web.container import services

from support.constants import API_KEY
from support.databases import APP_DEFAULTS, add_test_key, new_database, write_demo

POSTGRES_ENV = "PDP_TEST_POSTGRES_URL"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


# -- SQLite ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the latest schema, made by the migrations once per session."""
    path = tmp_path_factory.mktemp("template") / "schema.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        with sessionmaker(engine).begin() as session:
            add_test_key(session)
    finally:
        engine.dispose()  # the last connection checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists(), "template WAL not checkpointed"
    return path


# -- PostgreSQL -----------------------------------------------------------------------------


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a fresh, upgraded PostgreSQL database for this session (dropped at the end)."""
    raw = os.environ.get(POSTGRES_ENV)
    if not raw:
        pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL tests skipped")
    server = make_url(raw)
    admin = create_engine(
        server.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 10},
    )
    name = f"pdp_test_{secrets.token_hex(6)}"
    problem = None
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        problem = str(exc.orig or exc).strip()
    if problem is not None:
        admin.dispose()
        pytest.fail(
            f"{POSTGRES_ENV} is set but PostgreSQL is unreachable at {_safe(server)}: {problem}",
            pytrace=False,
        )
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        engine = make_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- One database per test ------------------------------------------------------------------


@pytest.fixture
def make_database(request: pytest.FixtureRequest) -> Callable[[str, Path], str]:
    """``make_database(backend, directory)``: ``new_database`` for fixtures of any scope."""
    return lambda backend, directory: new_database(request, backend, directory)


@pytest.fixture(params=["objects", "flat"])
def users_layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both layouts of the index's users (``pdp.engine.users_table``): at the tests' small
    sizes a full build keeps the entries themselves; "flat" makes every build encode them, as
    national scale does."""
    if request.param == "flat":
        monkeypatch.setattr("pdp.engine.users_table.COMPACT_FROM", 0)
    return str(request.param)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database driver under test: "sqlite", or "postgres" when PDP_TEST_POSTGRES_URL is set."""
    if request.param == "postgres":
        request.getfixturevalue("postgres_database")  # skip, or fail when unreachable, early
    return str(request.param)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """The URL of an empty database at the latest schema (revision 0), private to this test."""
    return new_database(request, backend, tmp_path)


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    """A SQLAlchemy engine on ``db_url``, disposed after the test."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def today() -> dt.date:
    """Today in Europe/Paris, the day the demo is loaded for (once per session)."""
    return paris_today()


class KeyedClient(FlaskClient):
    """A test client sending the tests' API key (``X-Api-Key``) unless told otherwise: a
    ``headers={"X-Api-Key": ...}`` argument wins; ``client.environ_base.pop("HTTP_X_API_KEY")``
    sends none."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_X_API_KEY"] = API_KEY


# Every app the tests build (make_app or create_app) hands out such clients.
PdpFlask.test_client_class = KeyedClient


@pytest.fixture(scope="session")
def sqlite_demo_template(sqlite_template: Path, today: dt.date) -> Path:
    """A SQLite file at the latest schema with the demo loaded, made once per session."""
    path = sqlite_template.with_name("demo.sqlite3")
    shutil.copyfile(sqlite_template, path)
    write_demo(f"sqlite:///{path}", today)
    return path


@pytest.fixture
def demo_db(request: pytest.FixtureRequest, backend: str, tmp_path: Path, today: dt.date) -> str:
    """The URL of a database private to this test holding the demo stories (revision 1).

    SQLite: a copy of a file the demo was loaded into once; PostgreSQL: emptied, then loaded.
    """
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_demo_template")
        path = tmp_path / "demo.sqlite3"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url = new_database(request, backend, tmp_path)
    write_demo(url, today)
    return url


# -- The app --------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PDP_* setting of the caller's shell leaks into the apps built by the test."""
    for name in list(os.environ):
        if name.startswith("PDP_") and not name.startswith("PDP_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_app(demo_db: str, clean_env: None) -> Iterator[Callable[..., tuple[Flask, MemoryLog]]]:
    """Build apps over the demo database: ``make_app(**settings)`` → (app, its decision log).

    Settings not given are the tests' defaults: no refresh throttle, no self-check, no log file.
    """
    built: list[Flask] = []

    def make(**settings: Any) -> tuple[Flask, MemoryLog]:
        config = {"database_url": demo_db, **APP_DEFAULTS, **settings}
        log = MemoryLog()
        app = create_app(config, decision_log=log)
        built.append(app)
        return app, log

    yield make
    for app in built:
        services(app).db.dispose()


@pytest.fixture
def app_and_log(make_app: Callable[..., tuple[Flask, MemoryLog]]) -> tuple[Flask, MemoryLog]:
    """The app over the demo data, and the MemoryLog it records decisions in."""
    return make_app()


@pytest.fixture
def app(app_and_log: tuple[Flask, MemoryLog]) -> Flask:
    """The app over the demo data (refresh_interval=0, verify_orgs=0)."""
    return app_and_log[0]


@pytest.fixture
def decision_log(app_and_log: tuple[Flask, MemoryLog]) -> MemoryLog:
    """The decision log of ``app``."""
    return app_and_log[1]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of ``app``."""
    return app.test_client()
