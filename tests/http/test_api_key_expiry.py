"""API keys with an optional expiry (R-OPS-2) and the day each was last used (R-OPS-3).

- ``pdp clients add NAME --services … --expires DAY`` makes a key refused from that day on
  (Europe/Paris), 401 ``API_KEY_EXPIRED``; an expiry in the past or unreadable is refused.
- The day a key was last used is shown by ``pdp clients list``; it is written with the keys'
  periodic re-read, at most once per key per day per worker: never one write per request.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import OperationalError

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import ApiClientRecord, AuditRecord
from pdp.cli.commands import cli
from pdp.core import clock
from pdp.core.errors import BadRequest, Unauthorized
from pdp.services.api_keys import ClientRegistry, _paris_day, parse_expiry

from support.api_clients import error_code, store
from support.constants import MakeApp
from support.servers import add_key, run_pdp, running, server_env

DAY = 86400.0


@pytest.fixture
def db(demo_db: str) -> Iterator[Engine]:
    engine = make_engine(demo_db)
    yield engine
    engine.dispose()


def updates_of_keys(db: Engine) -> list[str]:
    """Every UPDATE of api_clients sent on ``db`` from now on (a list that grows)."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_CLIENTS"):
            seen.append(statement)

    event.listen(db, "before_cursor_execute", note)
    return seen


def test_r_ops_2_an_expired_key_is_refused(
    make_app: MakeApp, demo_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tomorrow = (clock.paris_today() + dt.timedelta(days=1)).isoformat()
    key, client = store(demo_db).add("afas-front", ["afas"], "cli:tester", parse_expiry(tomorrow))
    assert client.expires_at == parse_expiry(tomorrow)
    app, _ = make_app()
    http = app.test_client()
    body = {"user": "lea.fontaine", "service": "afas"}
    assert http.post("/v1/check", json=body, headers={"X-Api-Key": key}).status_code == 200
    # Two days later (the clock moved on): refused, with its own code.
    monkeypatch.setattr(clock, "_offset", clock._offset + 2 * DAY)
    late = http.post("/v1/check", json=body, headers={"X-Api-Key": key})
    assert (late.status_code, error_code(late)) == (401, "API_KEY_EXPIRED")
    assert "expirée" in late.get_json()["error"]["message"]
    # A key without expiry goes on working.
    assert (
        http.post("/v1/check", json={"user": "bruno.petit", "service": "cdap"}).status_code == 200
    )


def test_r_ops_2_an_expiry_is_a_day_in_paris_or_an_instant_with_its_offset() -> None:
    assert parse_expiry("2027-06-30") == dt.datetime(2027, 6, 29, 22, 0, tzinfo=dt.UTC)
    assert parse_expiry("2027-01-15") == dt.datetime(2027, 1, 14, 23, 0, tzinfo=dt.UTC)
    assert parse_expiry("2027-01-15T12:00:00+01:00") == dt.datetime(
        2027, 1, 15, 11, 0, tzinfo=dt.UTC
    )
    for bad in ("2027-13-01", "demain", "2027-01-15T12:00:00"):  # the last: no offset
        with pytest.raises(BadRequest) as refused:
            parse_expiry(bad)
        assert refused.value.code == "INVALID_EXPIRY"


def test_r_ops_2_an_expiry_in_the_past_is_refused_and_nothing_is_written(
    demo_db: str, db: Engine
) -> None:
    with pytest.raises(BadRequest) as refused:
        store(demo_db).add("afas-front", ["afas"], "cli:tester", parse_expiry("2020-01-01"))
    assert refused.value.code == "INVALID_EXPIRY"
    with db.connect() as conn:
        names = conn.scalars(select(ApiClientRecord.name)).all()
    assert "afas-front" not in names


def test_r_ops_2_the_expiry_is_in_the_audit_trail(demo_db: str, db: Engine) -> None:
    store(demo_db).add("afas-front", ["afas"], "cli:tester", parse_expiry("2099-01-01"))
    with db.connect() as conn:
        after = conn.scalars(
            select(AuditRecord.after).where(AuditRecord.action == "client.add")
        ).all()
    recorded = [json.loads(a) if isinstance(a, str) else a for a in after]
    assert recorded[-1]["expires_at"] == "2098-12-31T23:00:00+00:00"


def test_r_ops_3_the_last_use_is_written_once_a_day_not_per_request(
    demo_db: str, db: Engine
) -> None:
    key, client = store(demo_db).add("afas-front", ["afas"], "cli:tester")
    day = dt.date(2026, 12, 2)
    writes = updates_of_keys(db)
    registry = ClientRegistry(db, refresh_interval=0, today=lambda: day)
    registry.load()
    for _ in range(50):  # each re-reads the keys (interval 0): the busiest case
        registry.authenticate(key)
    assert len(writes) == 1, writes
    with db.connect() as conn:
        used = conn.scalar(
            select(ApiClientRecord.last_used_on).where(ApiClientRecord.key_id == client.key_id)
        )
    assert used == day
    # The next day: one more write.
    day = dt.date(2026, 12, 3)
    for _ in range(10):
        registry.authenticate(key)
    registry.load()
    assert len(writes) == 2
    # Another worker, started after: it reads today's date and writes nothing for the key.
    other = ClientRegistry(db, refresh_interval=0, today=lambda: day)
    other.load()
    for _ in range(10):
        other.authenticate(key)
    other.load()
    assert len(writes) == 2


def test_r_ops_3_a_failed_write_waits_for_the_next_read(demo_db: str, db: Engine) -> None:
    key, client = store(demo_db).add("afas-front", ["afas"], "cli:tester")
    registry = ClientRegistry(db, refresh_interval=3600, today=lambda: dt.date(2026, 12, 2))
    registry.load()
    registry.authenticate(key)  # noted in memory only
    original = db.begin

    def refuse() -> Any:
        raise OperationalError("UPDATE", {}, Exception("connection refused"))

    db.begin = refuse  # type: ignore[method-assign]
    try:
        registry.load()  # the write fails; the keys are still read
    finally:
        db.begin = original  # type: ignore[method-assign]
    registry.authenticate(key)  # still the key of a valid client
    with db.connect() as conn:
        assert (
            conn.scalar(
                select(ApiClientRecord.last_used_on).where(ApiClientRecord.key_id == client.key_id)
            )
            is None
        )
    registry.load()
    with db.connect() as conn:
        assert conn.scalar(
            select(ApiClientRecord.last_used_on).where(ApiClientRecord.key_id == client.key_id)
        ) == dt.date(2026, 12, 2)


def test_pdp_clients_list_shows_the_expiry_and_the_last_use(
    demo_db: str, db: Engine, clean_env: None
) -> None:
    env = {"PDP_DATABASE_URL": demo_db}
    runner = CliRunner()
    added = runner.invoke(
        cli,
        ["clients", "add", "afas-front", "--services", "afas", "--expires", "2099-01-01"],
        env=env,
    )
    assert added.exit_code == 0, added.output
    key = added.stdout.strip().splitlines()[-1]
    assert "expires 2098-12-31 23:00" in added.stderr
    registry = ClientRegistry(db, 0, today=lambda: dt.date(2026, 12, 2))
    registry.load()
    registry.authenticate(key)  # noted in memory
    registry.load()  # and written
    listed = runner.invoke(cli, ["clients", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if line.startswith("afas-front"))
    fields = row.split("\t")
    assert fields[4:] == ["open", "expires 2098-12-31 23:00", "last used 2026-12-02"]
    others = [line for line in listed.stdout.splitlines() if not line.startswith("afas-front")]
    assert others and all(line.endswith("\tno expiry\tnever used") for line in others)
    bad = runner.invoke(
        cli, ["clients", "add", "x-front", "--services", "afas", "--expires", "hier"], env=env
    )
    assert bad.exit_code == 2 and "error INVALID_EXPIRY" in bad.stderr


def test_an_unknown_key_is_still_invalid_not_expired(demo_db: str, db: Engine) -> None:
    registry = ClientRegistry(db, 0)
    registry.load()
    with pytest.raises(Unauthorized) as refused:
        registry.authenticate("pdp_000000000099_" + "x" * 43)
    assert refused.value.code == "INVALID_API_KEY"


def test_r_ops_3_a_stopping_worker_writes_the_days_it_noted(tmp_path: Path) -> None:
    """Keys re-read only hourly: the day of use is written when the server stops (SIGTERM)."""
    url = f"sqlite:///{tmp_path / 'pdp.sqlite3'}"
    env = server_env(tmp_path, PDP_DATABASE_URL=url, PDP_REFRESH_INTERVAL="3600")
    run_pdp(["db", "upgrade"], env, tmp_path)
    key = add_key(env, tmp_path)
    with running(["serve", "--workers", "1"], env, tmp_path) as server:
        server.api_key = key
        assert server.request("POST", "/v1/check", {"user": "nobody", "service": "cdap"})[0] == 200
        db = make_engine(url)
        with db.connect() as conn:  # noted in memory only, while the server runs
            assert conn.scalar(select(ApiClientRecord.last_used_on)) is None
    with db.connect() as conn:
        assert conn.scalar(select(ApiClientRecord.last_used_on)) == clock.paris_today()
    db.dispose()


def test_r_ops_3_the_day_of_use_follows_midnight_in_paris(
    demo_db: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry's own clock (no ``today`` given): past midnight in Europe/Paris, a use is
    a new day to write; DST days end at the right hour."""
    assert _paris_day(dt.datetime(2027, 3, 27, 22, 59, tzinfo=dt.UTC).timestamp()) == (
        dt.date(2027, 3, 27),
        dt.datetime(2027, 3, 27, 23, 0, tzinfo=dt.UTC).timestamp(),
    )
    assert _paris_day(dt.datetime(2027, 3, 27, 23, 0, tzinfo=dt.UTC).timestamp()) == (
        dt.date(2027, 3, 28),
        dt.datetime(2027, 3, 28, 22, 0, tzinfo=dt.UTC).timestamp(),  # summer time from then
    )
    key, client = store(demo_db).add("afas-front", ["afas"], "cli:tester")
    registry = ClientRegistry(db, refresh_interval=0)
    registry.load()
    registry.authenticate(key)
    registry.load()
    today = clock.paris_today()

    def used() -> dt.date | None:
        with db.connect() as conn:
            return conn.scalar(
                select(ApiClientRecord.last_used_on).where(ApiClientRecord.key_id == client.key_id)
            )

    assert used() == today
    monkeypatch.setattr(clock, "_offset", clock._offset + DAY)
    registry.authenticate(key)
    registry.load()
    assert used() == today + dt.timedelta(days=1)
