"""One truth across workers and instances, in-process: read-your-writes with
``min_revision``, the PostgreSQL watcher (LISTEN/NOTIFY) and its repair, and midnight.

Two apps over one database stand for two instances (each its own engine, index and shared
"written" revision). Their refresh interval is 30 s: whatever an app sees sooner, it sees by
``min_revision`` or by the watcher, not by polling. The end-to-end version, with two gunicorn
servers and a PostgreSQL cluster stopped and restarted, is ``tests/e2e/test_instances.py``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from pdp.adapters.sql.database import make_engine
from pdp.adapters.watcher import APPLICATION_NAME, PgWatcher, open_watcher, psycopg_conninfo
from pdp.core import clock
from pdp.core.clock import PARIS, CachedToday, paris_today, start_clock_at
from pdp.core.errors import ConfigurationError
from pdp.web.container import services

from support.actors import Api
from support.constants import MAIRIE as BASE
from support.constants import SECRET, MakeApp


@pytest.fixture
def two(make_app: MakeApp) -> tuple[Flask, Flask]:
    """Instance A (writes) and instance B (reads), polling only every 30 s."""
    first, _ = make_app(jwt_secret=SECRET, refresh_interval=30, min_revision_wait=0.3)
    second, _ = make_app(jwt_secret=SECRET, refresh_interval=30, min_revision_wait=0.3)
    return first, second


def attach_chloe_to_instruction(api: Api) -> int:
    """chloe.roux joins CCAS-INSTRUCTION (which holds cdap T18): the revision written."""
    body = api.ok(
        "alice.martin",
        "POST",
        f"{BASE}/users/chloe.roux/memberships",
        {"group": "CCAS-INSTRUCTION"},
        status=201,
    )
    return int(body["revision"])


def t18(client: Any, **extra: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/check", json={"user": "chloe.roux", "service": "cdap", "role": "T18", **extra}
    )
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


# -- Read-your-writes -------------------------------------------------------------------------


def test_min_revision_answers_from_the_write_or_later(two: tuple[Flask, Flask]) -> None:
    first, second = two
    reader = second.test_client()
    assert t18(reader)["allowed"] is False  # B loads revision 1 and will not poll for 30 s
    written = attach_chloe_to_instruction(Api(first.test_client()))
    stale = t18(reader)
    assert (stale["allowed"], stale["revision"]) == (False, written - 1)  # no min_revision
    fresh = t18(reader, min_revision=written)
    assert fresh["allowed"] is True and fresh["revision"] >= written


def test_min_revision_on_listings_and_batches(two: tuple[Flask, Flask]) -> None:
    first, second = two
    reader = second.test_client()
    reader.get("/v1/users/chloe.roux/permissions")
    written = attach_chloe_to_instruction(Api(first.test_client()))
    listing = reader.get(f"/v1/users/chloe.roux/permissions?min_revision={written}").get_json()
    assert listing["revision"] >= written
    assert "T18" in next(s["roles"] for s in listing["services"] if s["service"] == "cdap")
    # A batch answers every item from the freshest revision any item (or the batch) asks for.
    batch = reader.post(
        "/v1/check/batch",
        json={
            "checks": [
                {"user": "bruno.petit", "service": "cdap"},
                {"user": "chloe.roux", "service": "cdap", "role": "T18", "min_revision": written},
            ]
        },
    ).get_json()["results"]
    assert [r["revision"] >= written for r in batch] == [True, True]
    assert batch[1]["allowed"] is True


def test_a_revision_the_store_never_had_is_refused_at_once(two: tuple[Flask, Flask]) -> None:
    _, second = two
    reader = second.test_client()
    response = reader.post(
        "/v1/check", json={"user": "chloe.roux", "service": "cdap", "min_revision": 10**6}
    )
    body = response.get_json()
    assert (response.status_code, body["error"]["code"]) == (409, "REVISION_UNKNOWN")
    assert body["error"]["details"] == {"wanted": 10**6, "served": 1}
    for url in (
        "/v1/users/chloe.roux/permissions?min_revision=1000000",
        "/v1/services/cdap/users?min_revision=1000000",
    ):
        assert reader.get(url).status_code == 409
    bad = reader.post("/v1/check", json={"user": "x", "service": "cdap", "min_revision": -1})
    assert bad.status_code == 400


class Unreachable:
    """A snapshot source that cannot be read (the store is down)."""

    def load(self, organisation_ids: Any = None) -> Any:
        raise ConnectionError("store unreachable")

    def changes_since(self, revision: int) -> Any:
        raise ConnectionError("store unreachable")


def test_a_revision_not_reached_while_the_store_is_down_is_never_answered_stale(
    two: tuple[Flask, Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two
    reader = second.test_client()
    t18(reader)
    written = attach_chloe_to_instruction(Api(first.test_client()))
    monkeypatch.setattr(services(second).decisions.engine, "source", Unreachable())
    started = time.monotonic()
    response = reader.post(
        "/v1/check",
        json={"user": "chloe.roux", "service": "cdap", "role": "T18", "min_revision": written},
    )
    waited = time.monotonic() - started
    body = response.get_json()
    assert (response.status_code, body["error"]["code"]) == (503, "REVISION_NOT_REACHED")
    assert body["error"]["details"] == {"wanted": written, "served": written - 1}
    assert 0.3 <= waited < 2.0  # PDP_MIN_REVISION_WAIT, bounded
    # Without min_revision the instance answers from memory, saying which revision it used.
    assert t18(reader)["revision"] == written - 1


# -- The watcher (PostgreSQL LISTEN/NOTIFY) ----------------------------------------------------


@pytest.fixture
def watched(
    backend: str, two: tuple[Flask, Flask], demo_db: str
) -> Iterator[tuple[Flask, Flask, PgWatcher]]:
    """Instance B listening for notifications (PostgreSQL only)."""
    if backend != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    first, second = two
    engine = services(second).decisions.engine
    watcher = open_watcher("auto", demo_db, engine.observe)
    assert isinstance(watcher, PgWatcher)
    watcher.start()
    assert watcher.connected.wait(5), "the watcher did not connect"
    yield first, second, watcher
    watcher.stop()


def _observed(app: Flask, revision: int, timeout: float) -> float | None:
    """Seconds until the app's engine knows of ``revision`` (None: not within ``timeout``)."""
    engine = services(app).decisions.engine
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if engine._written.value >= revision:
            return time.monotonic() - started
        time.sleep(0.002)
    return None


def test_a_write_reaches_the_other_instance_by_notification(
    watched: tuple[Flask, Flask, PgWatcher],
) -> None:
    first, second, watcher = watched
    reader = second.test_client()
    assert t18(reader)["allowed"] is False
    written = attach_chloe_to_instruction(Api(first.test_client()))
    delay = _observed(second, written, 1.0)
    assert delay is not None, "not notified within 1 s"
    answer = t18(reader)  # no min_revision: the notification made B apply the write
    assert (answer["allowed"], answer["revision"]) == (True, written)
    assert watcher.notifications >= 1


def test_a_killed_watcher_connection_is_repaired(
    watched: tuple[Flask, Flask, PgWatcher], demo_db: str
) -> None:
    first, second, watcher = watched
    db = make_engine(demo_db)
    with db.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": APPLICATION_NAME},
        ).scalar_one()
    db.dispose()
    assert killed >= 1
    # Written while the watcher is down: missed as a notification, repaired on reconnection
    # by reading the store's revision.
    written = attach_chloe_to_instruction(Api(first.test_client()))
    assert _observed(second, written, 5.0) is not None, "not repaired within 5 s"
    assert watcher.connections >= 2
    assert t18(second.test_client())["allowed"] is True


def test_watcher_settings(demo_db: str, backend: str, make_app: MakeApp) -> None:
    engine = services(make_app()[0]).decisions.engine
    assert open_watcher("off", demo_db, engine.observe) is None
    if backend == "sqlite":
        assert open_watcher("auto", demo_db, engine.observe) is None
        with pytest.raises(ConfigurationError):
            open_watcher("postgres", demo_db, engine.observe)
    with pytest.raises(ConfigurationError, match="PDP_WATCHER"):
        make_app(watcher="sometimes")
    conninfo = psycopg_conninfo("postgresql+psycopg://u:p'w@h:5433/d?sslmode=require")
    assert conninfo == "host='h' port='5433' user='u' password='p\\'w' dbname='d' sslmode='require'"


# -- Midnight in Europe/Paris ------------------------------------------------------------------


@pytest.fixture
def shifted_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any PDP_CLOCK_START the test sets is undone afterwards."""
    monkeypatch.setattr(clock, "_offset", 0.0)
    yield


def test_the_clock_can_start_just_before_midnight(shifted_clock: None) -> None:
    start_clock_at("2026-03-28T23:59:59.4+01:00")  # the night Paris moves to summer time
    today = CachedToday(ttl=0.1)
    assert today() == dt.date(2026, 3, 28)
    time.sleep(0.8)
    assert today() == dt.date(2026, 3, 29)
    assert clock.paris_now().tzinfo == PARIS
    with pytest.raises(ValueError):
        start_clock_at("2026-03-28T23:59:59")  # no offset: refused


def test_a_user_opening_tomorrow_is_allowed_after_midnight_without_a_write(
    shifted_clock: None, make_app: MakeApp
) -> None:
    """R-TIME-1: fabien.morel's account opens in 30 days (the demo). With the clock started
    three seconds before that midnight, he is refused, then allowed: no write, no restart."""
    opening = paris_today() + dt.timedelta(days=30)
    eve = dt.datetime.combine(opening, dt.time(23, 59, 57), PARIS) - dt.timedelta(days=1)
    app, _ = make_app(clock_start=eve.isoformat(), refresh_interval=30)
    # Building the app can take seconds on a loaded machine: the three seconds start now.
    start_clock_at(eve.isoformat())
    client = app.test_client()
    body = {"user": "fabien.morel", "service": "cdap"}
    before = client.post("/v1/check", json=body).get_json()
    assert (before["allowed"], before["reason"]["code"]) == (False, "USER_NOT_YET_OPEN")
    assert before["at"] == (opening - dt.timedelta(days=1)).isoformat()
    expected = client.post("/v1/check", json={**body, "at": opening.isoformat()}).get_json()
    time.sleep(4.2)  # past midnight, and past the cached day's 1 s
    after = client.post("/v1/check", json=body).get_json()
    assert after["at"] == opening.isoformat()
    assert (after["allowed"], after["reason"]) == (expected["allowed"], expected["reason"])
    assert after["reason"]["code"] != "USER_NOT_YET_OPEN"


def test_a_shifted_clock_is_refused_in_production(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match="PDP_CLOCK_START"):
        make_app(env="production", clock_start="2026-01-01T00:00:00+01:00")
