"""The decision API over HTTP (Flask's test client) on the demo data (pdp.services.demo).

Every answer is JSON; every error is ``{"error": {"code", "message"}}`` with a stable code,
never a 500 nor a traceback. Decisions are written to the decision log with the
id returned to the caller.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from pydantic import BaseModel
from werkzeug.test import TestResponse

from adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.decision import MESSAGES, Reason
from pdp.engine.index import Index, Outcome
from pdp.engine.policy import PolicyEngine
from pdp.engine.snapshot import Snapshot
from pdp.records.decision_log import MemoryLog
from pdp.web.api.openapi import Registry
from pdp.web.api.schemas import (
    BatchResponse,
    CheckResponse,
    ErrorResponse,
    HealthResponse,
    PermissionsResponse,
    ReadyResponse,
    ServiceUsersResponse,
)
from pdp.web.app import create_app

from support.constants import MakeApp

# Every login of the demo (pdp/services/demo.py), to compute expected listings independently.
DEMO_LOGINS = (
    "op.caf751",
    "alice.martin",
    "bruno.petit",
    "chloe.roux",
    "david.leroy",
    "emma.garnier",
    "fabien.morel",
    "gilles.bernard",
    "helene.fabre",
    "ines.moreau",
    "jules.lambert",
    "karim.diallo",
    "lea.fontaine",
    "marc.chevalier",
    "nadia.benali",
)


# The HTTP layer does not depend on the database driver: these tests run on SQLite, except the
# smoke test at the end, which runs every verb on every driver (the decision tables and the
# refresh tests are the drivers' contract suite).
DRIVERS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture
def backend() -> str:
    """SQLite for this module (see DRIVERS)."""
    return "sqlite"


def days(today: dt.date, n: int) -> str:
    """ISO day ``n`` days from ``today``."""
    return (today + dt.timedelta(days=n)).isoformat()


def valid(model: type[BaseModel], response: TestResponse) -> dict[str, Any]:
    """Return the JSON body after checking it against the API's declared response model."""
    body = response.get_json()
    assert isinstance(body, dict), response.data
    model.model_validate(body)
    return body


def js(response: TestResponse) -> Any:
    """The JSON body of a response (None when it is not JSON)."""
    return response.get_json(silent=True)


def check(client: FlaskClient, **body: Any) -> dict[str, Any]:
    """POST /v1/check; the answer must be a 200 CheckResponse."""
    response = client.post("/v1/check", json=body)
    assert response.status_code == 200, response.get_json()
    return valid(CheckResponse, response)


def error(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """Assert a JSON error answer with ``status`` and ``code``; return its ``error`` body."""
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    assert b"Traceback" not in response.data
    body = valid(ErrorResponse, response)
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def grant_set(grants: Iterable[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(g["group"], g["service"], g["role"], g["source"]) for g in grants}


# -- POST /v1/check --------------------------------------------------------------------------


def test_check_allowed_carries_every_grant_path(client: FlaskClient, today: dt.date) -> None:
    # R-DEC-1, R-DEC-3: bruno is in CCAS and CCAS-INSTRUCTION, both holding cdap T1 and T18.
    body = check(client, user="bruno.petit", service="cdap")
    assert body["allowed"] is True
    assert body["reason"] == {"code": "ALLOWED", "message": MESSAGES[Reason.ALLOWED]}
    assert grant_set(body["grants"]) == {
        ("CCAS", "cdap", "T1", "group"),
        ("CCAS", "cdap", "T18", "group"),
        ("CCAS-INSTRUCTION", "cdap", "T1", "group"),
        ("CCAS-INSTRUCTION", "cdap", "T18", "group"),
    }
    assert body["at"] == today.isoformat()
    assert body["revision"] == 1
    assert len(body["decision_id"]) == 32


def test_check_with_a_role_lists_only_that_role(client: FlaskClient) -> None:
    body = check(client, user="chloe.roux", service="cdap", role="T1")
    assert body["allowed"] is True
    assert body["grants"] == [
        {"group": "CCAS-ACCUEIL", "service": "cdap", "role": "T1", "source": "group"}
    ]


def test_check_afas_profile_grant(client: FlaskClient) -> None:
    # R-AFAS-1: marc is in no group, his Afas profile grants afas.
    body = check(client, user="marc.chevalier", service="afas")
    assert body["allowed"] is True
    assert body["grants"] == [
        {"group": None, "service": "afas", "role": "consultation", "source": "afas_profile"}
    ]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        pytest.param({"user": "nobody", "service": "cdap"}, "UNKNOWN_USER", id="R-DEC-3-unknown"),
        pytest.param({"user": "david.leroy", "service": "cdap"}, "USER_CLOSED", id="R-USR-4"),
        pytest.param(
            {"user": "fabien.morel", "service": "cdap"}, "USER_NOT_YET_OPEN", id="R-TIME-1"
        ),
        pytest.param({"user": "op.caf751", "service": "cdap"}, "NO_ORGANISATION", id="R-CON-4"),
        pytest.param({"user": "bruno.petit", "service": "adonis"}, "NO_SUBSCRIPTION", id="R-CON-2"),
        pytest.param(
            {"user": "bruno.petit", "service": "cdap", "caf": "751"},
            "CAF_NOT_SUBSCRIBED",
            id="R-CON-3",
        ),
        pytest.param({"user": "alice.martin", "service": "cdap"}, "NO_MEMBERSHIP", id="R-ADM-2"),
        pytest.param(
            {"user": "emma.garnier", "service": "cdap", "role": "T18"},
            "GROUP_CLOSED",
            id="R-GRP-2",
        ),
        pytest.param(
            {"user": "chloe.roux", "service": "cdap", "role": "T18"},
            "ROLE_NOT_GRANTED",
            id="R-GRP-4",
        ),
    ],
)
def test_check_denials_carry_their_reason(
    client: FlaskClient, query: dict[str, Any], reason: str
) -> None:
    body = check(client, **query)
    assert body["allowed"] is False
    assert body["reason"] == {"code": reason, "message": MESSAGES[Reason(reason)]}
    assert body["grants"] == []


def test_check_at_a_past_day(client: FlaskClient, today: dt.date) -> None:
    # R-TIME-2: adonis expired 10 days ago (NO_SUBSCRIPTION today) but was usable 11 days ago.
    assert check(client, user="bruno.petit", service="adonis")["allowed"] is False
    past = days(today, -11)
    body = check(client, user="bruno.petit", service="adonis", role="acces", at=past)
    assert body["allowed"] is True
    assert body["at"] == past
    assert grant_set(body["grants"]) == {("CCAS", "adonis", "acces", "group")}


def test_check_caf(client: FlaskClient) -> None:
    # R-CON-3: ccas-grand-paris has cdap under its conventions with 751 and 931.
    assert check(client, user="nadia.benali", service="cdap", caf="751")["allowed"] is True
    assert check(client, user="nadia.benali", service="cdap", caf="931")["allowed"] is True
    denied = check(client, user="nadia.benali", service="cdap", caf="691")
    assert denied["reason"]["code"] == "CAF_NOT_SUBSCRIBED"


def test_check_is_recorded_in_the_decision_log(
    client: FlaskClient, decision_log: MemoryLog, today: dt.date
) -> None:
    allowed = check(client, user="chloe.roux", service="cdap", role="T1")
    denied = check(client, user="david.leroy", service="cdap", caf="931")
    assert [e["decision_id"] for e in decision_log.entries] == [
        allowed["decision_id"],
        denied["decision_id"],
    ]
    assert allowed["decision_id"] != denied["decision_id"]
    entry = decision_log.entries[1]
    assert entry["kind"] == "check"
    assert (entry["user"], entry["service"], entry["role"], entry["caf"]) == (
        "david.leroy",
        "cdap",
        None,
        "931",
    )
    assert (entry["allowed"], entry["reason"], entry["at"], entry["revision"]) == (
        False,
        "USER_CLOSED",
        today.isoformat(),
        1,
    )


def test_a_decision_that_cannot_be_logged_is_not_answered(
    demo_db: str, clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fail closed: no decision leaves without its entry on file. The
    # disk fills up half-way through the entry: 503, and the half line is cut back off.
    import errno

    from pdp.records.decision_log import WalLog
    from pdp.records.decision_log import files as module

    log = WalLog(tmp_path, "buffered")
    app = create_app(
        {"database_url": demo_db, "refresh_interval": 0, "verify_orgs": 0}, decision_log=log
    )
    client = app.test_client()
    real = module._write_all

    def disk_full(fd: int, data: bytes) -> None:
        real(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    try:
        first = check(client, user="chloe.roux", service="cdap", role="T1")
        monkeypatch.setattr(module, "_write_all", disk_full)
        response = client.post("/v1/check", json={"user": "chloe.roux", "service": "cdap"})
        monkeypatch.setattr(module, "_write_all", real)
        last = check(client, user="chloe.roux", service="cdap", role="T1")
    finally:
        log.close()
        app.extensions["pdp.db"].dispose()
    assert response.status_code == 503
    assert js(response)["error"]["code"] == "DECISION_LOG_UNAVAILABLE"
    assert log.failures == 1
    (segment,) = tmp_path.glob("*.log")
    lines = segment.read_bytes().splitlines()
    assert [json.loads(line)["decision_id"] for line in lines] == [
        first["decision_id"],
        last["decision_id"],
    ]


class ExplodingIndex(Index):
    """An index whose every decision fails (a fake: a bug or corrupt data deep in the engine)."""

    def decide(
        self, login: str, service: str, role: str | None, caf: str | None, day: int
    ) -> Outcome:
        raise RuntimeError("boom")


def test_an_engine_error_denies(client: FlaskClient, app: Flask, decision_log: MemoryLog) -> None:
    # R-DEC-2: fail closed, and say so.
    engine = app.extensions["pdp.decisions"].engine
    healthy = engine.index
    exploding = ExplodingIndex(healthy.revision)
    exploding.users, exploding.orgs = healthy.users, healthy.orgs
    engine.index = exploding
    body = check(client, user="bruno.petit", service="cdap")
    assert (body["allowed"], body["reason"]["code"]) == (False, "ENGINE_ERROR")
    assert decision_log.entries[-1]["reason"] == "ENGINE_ERROR"


class UnreachableStore:
    """A snapshot source over the real one that can be cut off (a fake, not a mock)."""

    def __init__(self, real: SqlSnapshotSource) -> None:
        self.real = real
        self.down = False

    def load(self, organisation_ids: Iterable[int] | None = None) -> Snapshot:
        if self.down:
            raise ConnectionError("store unreachable")
        return self.real.load(organisation_ids)

    def changes_since(self, revision: int) -> list[tuple[int, int | None]]:
        if self.down:
            raise ConnectionError("store unreachable")
        return self.real.changes_since(revision)


@pytest.fixture
def cut_off(app: Flask) -> tuple[FlaskClient, UnreachableStore]:
    """A client of an app over the demo whose store can be cut off; max_staleness 0.2 s."""
    store = UnreachableStore(SqlSnapshotSource(app.extensions["pdp.db"]))
    engine = PolicyEngine(store, load_catalogue(), refresh_interval=0, max_staleness=0.2)
    engine.load()
    url = app.config["PDP_SETTINGS"].database_url
    stale_app = create_app(
        {"verify_orgs": 0, "database_url": url}, engine=engine, decision_log=MemoryLog()
    )
    return stale_app.test_client(), store


def test_a_store_unreachable_for_too_long_denies_and_readyz_says_stale(
    cut_off: tuple[FlaskClient, UnreachableStore],
) -> None:
    # R-DEC-2: once the index cannot be confirmed for max_staleness seconds, checks deny.
    client, store = cut_off
    assert check(client, user="chloe.roux", service="cdap")["allowed"] is True
    assert client.get("/healthz").status_code == 200
    store.down = True
    time.sleep(0.3)
    body = check(client, user="chloe.roux", service="cdap")
    assert (body["allowed"], body["reason"]["code"]) == (False, "POLICY_UNAVAILABLE")
    # Alive (restarting would not help), but not ready: the probe says why.
    assert valid(HealthResponse, client.get("/healthz")) == {"status": "ok", "revision": 1}
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert valid(ReadyResponse, ready) == {
        "status": "not_ready",
        "revision": 1,
        "checks": {"policy": "stale", "database": "ok", "api_keys": "ok"},
    }
    store.down = False
    assert check(client, user="chloe.roux", service="cdap")["allowed"] is True


@pytest.mark.parametrize(
    ("url", "listed"),
    [
        ("/v1/users/chloe.roux/permissions", "services"),
        ("/v1/services/cdap/users", "users"),
    ],
    ids=["permissions", "service-users"],
)
def test_listings_fail_closed_too_when_the_store_is_unreachable(
    cut_off: tuple[FlaskClient, UnreachableStore], url: str, listed: str
) -> None:
    # R-DEC-2, R-DEC-4: the welcome page must not offer what a check would refuse.
    client, store = cut_off
    assert js(client.get(url))[listed] != []
    store.down = True
    time.sleep(0.3)
    assert check(client, user="chloe.roux", service="cdap")["reason"]["code"] == (
        "POLICY_UNAVAILABLE"
    )
    response = client.get(url)
    assert response.status_code == 503 or js(response)[listed] == [], js(response)


# -- POST /v1/check: bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(
            {"user": "bruno.petit", "service": "cdap", "x": 1}, "UNKNOWN_FIELD", id="extra"
        ),
        pytest.param({"user": 42, "service": "cdap"}, "VALIDATION_ERROR", id="user-int"),
        pytest.param(
            {"user": "bruno.petit", "service": "cdap", "at": 20260101},
            "VALIDATION_ERROR",
            id="at-int",
        ),
        pytest.param(
            {"user": "bruno.petit", "service": "cdap", "at": "2026-02-30"},
            "VALIDATION_ERROR",
            id="at-no-such-day",
        ),
        pytest.param(
            {"user": "bruno.petit", "service": "cdap", "at": "2026-2-3"},
            "VALIDATION_ERROR",
            id="at-format",
        ),
        pytest.param(
            {"user": "bruno.petit", "service": "cdap", "at": "0000-01-01"},
            "VALIDATION_ERROR",
            id="at-year-0",
        ),
        pytest.param(
            {"user": "bruno.petit", "service": "cdap", "role": ""},
            "VALIDATION_ERROR",
            id="role-empty",
        ),
        pytest.param(
            {"user": "bruno petit", "service": "cdap"}, "VALIDATION_ERROR", id="login-space"
        ),
        pytest.param(
            {"user": "bruno.petit", "service": "cdap", "caf": 751}, "VALIDATION_ERROR", id="caf-int"
        ),
        pytest.param(
            {"user": "bruno.petit", "service": "cdap", "role": None, "caf": None},
            None,
            id="nulls-ok",
        ),
        pytest.param({"user": "bruno.petit"}, "MISSING_FIELD", id="missing-service"),
        pytest.param({}, "MISSING_FIELD", id="empty-object"),
        pytest.param([], "VALIDATION_ERROR", id="array"),
        pytest.param("bruno.petit", "VALIDATION_ERROR", id="string"),
        pytest.param({"user": "bruno.petit", "service": "nope"}, "UNKNOWN_SERVICE", id="service"),
        pytest.param(
            {"user": "bruno.petit", "service": "cdap", "role": "T99"}, "UNKNOWN_ROLE", id="role"
        ),
        pytest.param(
            {"user": "bruno.petit", "service": "dgfip", "role": "T1"},
            "UNKNOWN_ROLE",
            id="role-of-another-service",
        ),
    ],
)
def test_check_bad_input_is_a_400_and_is_not_logged(
    client: FlaskClient, decision_log: MemoryLog, body: Any, code: str | None
) -> None:
    response = client.post("/v1/check", json=body)
    if code is None:  # the control row: the same shape, valid, is decided
        assert response.status_code == 200
        return
    err = error(response, 400, code)
    if code == "UNKNOWN_FIELD":
        assert [d["field"] for d in err["details"]] == ["x"]
    if code == "MISSING_FIELD" and body:
        assert [d["field"] for d in err["details"]] == ["service"]
    assert decision_log.entries == []


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"user": "bruno.petit",}', b"\xff\xfe", b"user=bruno.petit&service=cdap"],
    ids=["empty", "truncated", "trailing-comma", "not-utf8", "form"],
)
def test_check_invalid_json(client: FlaskClient, raw: bytes) -> None:
    error(client.post("/v1/check", data=raw, content_type="application/json"), 400, "INVALID_JSON")


def test_body_over_max_body_bytes_is_a_413(make_app: MakeApp) -> None:
    app, log = make_app(max_body_bytes=200)
    client = app.test_client()
    small = {"user": "bruno.petit", "service": "cdap"}
    assert client.post("/v1/check", json=small).status_code == 200
    big = {"user": "bruno.petit", "service": "cdap", "role": "T1" + "1" * 300}
    error(client.post("/v1/check", json=big), 413, "PAYLOAD_TOO_LARGE")
    batch = {"checks": [small] * 10}
    error(client.post("/v1/check/batch", json=batch), 413, "PAYLOAD_TOO_LARGE")
    assert len(log.entries) == 1


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/v1/check", 405, "METHOD_NOT_ALLOWED"),
        ("put", "/v1/check/batch", 405, "METHOD_NOT_ALLOWED"),
        ("post", "/healthz", 405, "METHOD_NOT_ALLOWED"),
        ("delete", "/v1/users/bruno.petit/permissions", 405, "METHOD_NOT_ALLOWED"),
        ("get", "/v1/nowhere", 404, "NOT_FOUND"),
        ("get", "/", 404, "NOT_FOUND"),
        ("get", "/v1/users/a/b/permissions", 404, "NOT_FOUND"),
    ],
)
def test_wrong_method_or_path(
    client: FlaskClient, method: str, path: str, status: int, code: str
) -> None:
    response = getattr(client, method)(path)
    error(response, status, code)
    if status == 405:  # RFC 9110: a 405 names the methods the resource takes
        allowed = set(response.headers["Allow"].split(", "))
        assert allowed and method.upper() not in allowed
        for other in allowed - {"OPTIONS", "HEAD"}:
            assert client.open(path, method=other).status_code != 405


def test_every_405_names_the_allowed_methods(app: Flask) -> None:
    """Over the whole URL map (API and console): a wrong method's answer carries ``Allow``."""
    client = app.test_client()
    refused = 0
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<", "").replace(">", "")
        wrong = next(m for m in ("PATCH", "PUT", "DELETE", "POST") if m not in rule.methods)
        response = client.open(path, method=wrong)
        if response.status_code == 405:
            refused += 1
            assert set(response.headers["Allow"].split(", ")) >= rule.methods - {"OPTIONS"}, (
                rule.rule
            )
    assert refused >= 30


# -- POST /v1/check/batch --------------------------------------------------------------------


def test_batch_keeps_the_order(client: FlaskClient, decision_log: MemoryLog) -> None:
    checks = [
        {"user": "chloe.roux", "service": "cdap", "role": "T1"},
        {"user": "david.leroy", "service": "cdap"},
        {"user": "nadia.benali", "service": "cdap", "caf": "931"},
        {"user": "op.caf751", "service": "cdap"},
    ]
    response = client.post("/v1/check/batch", json={"checks": checks})
    assert response.status_code == 200
    results = valid(BatchResponse, response)["results"]
    assert [(r["allowed"], r["reason"]["code"]) for r in results] == [
        (True, "ALLOWED"),
        (False, "USER_CLOSED"),
        (True, "ALLOWED"),
        (False, "NO_ORGANISATION"),
    ]
    assert [e["decision_id"] for e in decision_log.entries] == [r["decision_id"] for r in results]
    assert [e["user"] for e in decision_log.entries] == [c["user"] for c in checks]


def test_batch_bad_items_answer_their_own_error(
    client: FlaskClient, decision_log: MemoryLog, today: dt.date
) -> None:
    checks: list[Any] = [
        {"user": "chloe.roux", "service": "cdap"},
        {"user": "chloe.roux", "service": "cdap", "extra": True},
        {"user": "chloe.roux", "service": "nope"},
        {"user": "chloe.roux", "service": "cdap", "role": "T99"},
        "not an object",
        {"user": "chloe.roux"},
        {"user": 7, "service": "cdap"},
        {"user": "chloe.roux", "service": "cdap", "at": "2026-02-30"},
        {"user": "bruno.petit", "service": "adonis", "at": days(today, -11)},
    ]
    response = client.post("/v1/check/batch", json={"checks": checks})
    assert response.status_code == 200
    results = valid(BatchResponse, response)["results"]
    assert len(results) == len(checks)
    assert results[0]["allowed"] is True
    assert [r["error"]["code"] for r in results[1:8]] == [
        "UNKNOWN_FIELD",
        "UNKNOWN_SERVICE",
        "UNKNOWN_ROLE",
        "VALIDATION_ERROR",
        "MISSING_FIELD",
        "VALIDATION_ERROR",
        "VALIDATION_ERROR",
    ]
    assert all(set(r) == {"error"} for r in results[1:8])
    assert results[8]["allowed"] is True and results[8]["at"] == days(today, -11)
    assert [e["decision_id"] for e in decision_log.entries] == [
        results[0]["decision_id"],
        results[8]["decision_id"],
    ]


def test_batch_cap(make_app: MakeApp) -> None:
    app, log = make_app(batch_max=3)
    client = app.test_client()
    item = {"user": "chloe.roux", "service": "cdap"}
    assert len(js(client.post("/v1/check/batch", json={"checks": [item] * 3}))["results"]) == 3
    error(client.post("/v1/check/batch", json={"checks": [item] * 4}), 400, "BATCH_TOO_LARGE")
    assert len(log.entries) == 3  # the refused batch decided nothing


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "MISSING_FIELD"),
        ({"checks": {"user": "chloe.roux"}}, "VALIDATION_ERROR"),
        ({"checks": [], "more": 1}, "UNKNOWN_FIELD"),
        ([{"user": "chloe.roux", "service": "cdap"}], "VALIDATION_ERROR"),
    ],
    ids=["no-checks", "checks-not-a-list", "extra", "bare-list"],
)
def test_batch_bad_envelope(client: FlaskClient, body: Any, code: str) -> None:
    error(client.post("/v1/check/batch", json=body), 400, code)


def test_empty_batch(client: FlaskClient) -> None:
    response = client.post("/v1/check/batch", json={"checks": []})
    assert response.status_code == 200
    assert response.json == {"results": []}


# -- GET /v1/users/<login>/permissions -------------------------------------------------------


def test_permissions_of_a_user_now(client: FlaskClient, today: dt.date) -> None:
    # R-DEC-4: one call gives every service, role and Caf usable now; adonis expired.
    response = client.get("/v1/users/bruno.petit/permissions")
    body = valid(PermissionsResponse, response)
    assert (body["user"], body["at"], body["revision"]) == ("bruno.petit", today.isoformat(), 1)
    assert [s["service"] for s in body["services"]] == ["cdap"]
    cdap = body["services"][0]
    assert (cdap["roles"], cdap["cafs"]) == (["T1", "T18"], ["931"])
    assert grant_set(cdap["grants"]) == {
        ("CCAS", "cdap", "T1", "group"),
        ("CCAS", "cdap", "T18", "group"),
        ("CCAS-INSTRUCTION", "cdap", "T1", "group"),
        ("CCAS-INSTRUCTION", "cdap", "T18", "group"),
    }


def test_permissions_at_a_past_day(client: FlaskClient, today: dt.date) -> None:
    # R-TIME-2, R-DEC-4: 11 days ago adonis was still subscribed; 6 days ago the closed
    # CCAS-ARCHIVES still gave emma cdap T18.
    bruno = valid(
        PermissionsResponse, client.get(f"/v1/users/bruno.petit/permissions?at={days(today, -11)}")
    )
    assert [s["service"] for s in bruno["services"]] == ["adonis", "cdap"]
    assert bruno["services"][0]["roles"] == ["acces"]
    emma_now = js(client.get("/v1/users/emma.garnier/permissions"))
    assert emma_now["services"] == []
    emma_then = js(client.get(f"/v1/users/emma.garnier/permissions?at={days(today, -6)}"))
    assert emma_then["at"] == days(today, -6)
    assert [(s["service"], s["roles"]) for s in emma_then["services"]] == [("cdap", ["T18"])]


def test_permissions_agree_with_check(client: FlaskClient) -> None:
    # R-DEC-4 must say exactly what R-DEC-1 says, role by role, for every demo user.
    catalogue = load_catalogue()
    for login in DEMO_LOGINS:
        listed = {
            (s["service"], role)
            for s in js(client.get(f"/v1/users/{login}/permissions"))["services"]
            for role in s["roles"]
        }
        checked = {
            (name, role)
            for name, svc in catalogue.services.items()
            for role in svc.roles + svc.user_profiles
            if check(client, user=login, service=name, role=role)["allowed"]
        }
        assert listed == checked, login


def test_permissions_afas_profiles_and_cafs(client: FlaskClient) -> None:
    lea = js(client.get("/v1/users/lea.fontaine/permissions"))
    assert [(s["service"], s["roles"], s["cafs"]) for s in lea["services"]] == [
        ("afas", ["declaration", "declarer"], ["751"])
    ]
    nadia = js(client.get("/v1/users/nadia.benali/permissions"))
    assert [(s["service"], s["cafs"]) for s in nadia["services"]] == [("cdap", ["751", "931"])]


@pytest.mark.parametrize("login", ["alice.martin", "david.leroy", "fabien.morel", "op.caf751"])
def test_permissions_of_users_with_nothing(client: FlaskClient, login: str) -> None:
    # R-ADM-2 (admin in no group), R-USR-4 (closed), not yet open, operator: known, nothing.
    response = client.get(f"/v1/users/{login}/permissions")
    assert response.status_code == 200
    assert valid(PermissionsResponse, response)["services"] == []


def test_permissions_unknown_user_is_a_404(client: FlaskClient) -> None:
    error(client.get("/v1/users/nobody/permissions"), 404, "UNKNOWN_USER")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("at=2026-02-30", "VALIDATION_ERROR"),
        ("at=yesterday", "VALIDATION_ERROR"),
        ("at=", "VALIDATION_ERROR"),
        ("day=2026-01-01", "UNKNOWN_FIELD"),
    ],
)
def test_permissions_bad_query(client: FlaskClient, query: str, code: str) -> None:
    error(client.get(f"/v1/users/bruno.petit/permissions?{query}"), 400, code)


# -- GET /v1/services/<service>/users --------------------------------------------------------


def allowed_logins(client: FlaskClient, service: str, role: str | None = None) -> set[str]:
    """Who /v1/check allows, asked one by one (the listing's independent oracle)."""
    extra = {"role": role} if role else {}
    return {
        login
        for login in DEMO_LOGINS
        if check(client, user=login, service=service, **extra)["allowed"]
    }


def pages(client: FlaskClient, url: str, limit: int) -> list[dict[str, Any]]:
    """Follow next_cursor from the first page to the last; return every page."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    sep = "&" if "?" in url else "?"
    while True:
        query = f"{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url + query)
        assert response.status_code == 200, response.json
        page = valid(ServiceUsersResponse, response)
        assert len(page["users"]) <= limit
        out.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return out
        assert len(out) < 50, "pagination does not end"


@pytest.mark.parametrize("limit", [1, 2, 3, 1000])
def test_service_users_pagination_covers_everyone_once(client: FlaskClient, limit: int) -> None:
    every = [u for p in pages(client, "/v1/services/cdap/users", limit) for u in p["users"]]
    keys = [(u["organisation"], u["login"]) for u in every]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert {u["login"] for u in every} == allowed_logins(client, "cdap")
    assert keys == [
        ("ccas-grand-paris", "nadia.benali"),
        ("mairie-montreuil", "bruno.petit"),
        ("mairie-montreuil", "chloe.roux"),
    ]


def test_service_users_last_page_has_no_cursor(client: FlaskClient) -> None:
    # Exactly as many users as the limit: one page, no empty second page.
    only = pages(client, "/v1/services/cdap/users", 3)
    assert len(only) == 1 and only[0]["next_cursor"] is None


def test_service_users_role_filter(client: FlaskClient) -> None:
    page = valid(ServiceUsersResponse, client.get("/v1/services/cdap/users?role=T18"))
    assert page["role"] == "T18"
    assert [(u["login"], u["roles"]) for u in page["users"]] == [("bruno.petit", ["T18"])]
    assert {u["login"] for u in page["users"]} == allowed_logins(client, "cdap", "T18")


def test_service_users_afas_includes_profiles(client: FlaskClient) -> None:
    page = js(client.get("/v1/services/afas/users"))
    assert [(u["login"], u["roles"]) for u in page["users"]] == [
        ("karim.diallo", ["habiliter"]),
        ("lea.fontaine", ["declaration", "declarer"]),
        ("marc.chevalier", ["consultation"]),
    ]


def test_service_users_organisation_filter(client: FlaskClient) -> None:
    url = "/v1/services/cdap/users?organisation=mairie-montreuil"
    every = [u for p in pages(client, url, 1) for u in p["users"]]
    assert [(u["organisation"], u["login"]) for u in every] == [
        ("mairie-montreuil", "bruno.petit"),
        ("mairie-montreuil", "chloe.roux"),
    ]
    none = js(client.get("/v1/services/cdap/users?organisation=sip-lyon"))
    assert none["users"] == [] and none["next_cursor"] is None


def test_service_users_at_a_past_day(client: FlaskClient, today: dt.date) -> None:
    # R-TIME-2: 31 days ago david was open, and emma's group too.
    page = js(client.get(f"/v1/services/cdap/users?role=T18&at={days(today, -31)}"))
    assert page["at"] == days(today, -31)
    assert [u["login"] for u in page["users"]] == ["bruno.petit", "david.leroy", "emma.garnier"]


def test_service_users_limit_is_capped_by_page_max(make_app: MakeApp) -> None:
    app, _ = make_app(page_max=2)
    page = js(app.test_client().get("/v1/services/cdap/users?limit=2"))
    assert len(page["users"]) == 2 and page["next_cursor"] is not None
    refused = app.test_client().get("/v1/services/cdap/users?limit=3")  # a clear 400, not less
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "PAGE_TOO_LARGE"
    app, _ = make_app(page_max=5000)  # above 1,000 too: the setting decides
    page = js(app.test_client().get("/v1/services/cdap/users?limit=1001"))
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/v1/services/cdap/users?organisation=nowhere", 404, "UNKNOWN_ORGANISATION"),
        ("/v1/services/nope/users", 400, "UNKNOWN_SERVICE"),
        ("/v1/services/cdap/users?role=T99", 400, "UNKNOWN_ROLE"),
        ("/v1/services/cdap/users?cursor=!!!!", 400, "INVALID_CURSOR"),
        ("/v1/services/cdap/users?cursor=YWJj", 400, "INVALID_CURSOR"),  # "abc": no separator
        ("/v1/services/cdap/users?cursor=a", 400, "INVALID_CURSOR"),
        ("/v1/services/cdap/users?cursor=_w", 400, "INVALID_CURSOR"),  # not UTF-8
        ("/v1/services/cdap/users?limit=0", 400, "VALIDATION_ERROR"),
        ("/v1/services/cdap/users?limit=abc", 400, "VALIDATION_ERROR"),
        ("/v1/services/cdap/users?limit=-5", 400, "VALIDATION_ERROR"),
        ("/v1/services/cdap/users?at=2026-13-01", 400, "VALIDATION_ERROR"),
        ("/v1/services/cdap/users?page=2", 400, "UNKNOWN_FIELD"),
    ],
)
def test_service_users_bad_query(client: FlaskClient, url: str, status: int, code: str) -> None:
    error(client.get(url), status, code)


# -- GET /healthz, GET /v1/openapi.json ----------------------------------------------------


def test_health(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert valid(HealthResponse, response) == {"status": "ok", "revision": 1}


def test_openapi_documents_every_route(app: Flask, client: FlaskClient) -> None:
    doc = js(client.get("/v1/openapi.json"))
    assert doc["openapi"].startswith("3.")
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if (
            rule.rule.startswith(("/v1/", "/healthz", "/readyz"))
            and rule.rule != "/v1/openapi.json"
        ):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
            routes.setdefault(path, set()).update(methods)
    assert {p: set(ops) for p, ops in doc["paths"].items()} == routes
    schemas = doc["components"]["schemas"]
    for ops in doc["paths"].values():
        for op in ops.values():
            for answer in op["responses"].values():
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                assert ref.removeprefix("#/components/schemas/") in schemas
    check_body = doc["paths"]["/v1/check"]["post"]["requestBody"]["content"]["application/json"]
    assert check_body["schema"]["$ref"].endswith("/CheckRequest")
    assert set(schemas["CheckRequest"]["properties"]) == {
        "user",
        "service",
        "role",
        "caf",
        "at",
        "min_revision",
    }


def test_openapi_declares_the_errors_routes_answer(client: FlaskClient) -> None:
    doc = js(client.get("/v1/openapi.json"))
    users = doc["paths"]["/v1/users/{login}/permissions"]["get"]
    assert {"200", "400", "404"} <= set(users["responses"])
    params = {p["name"]: p["in"] for p in users["parameters"]}
    assert params == {"login": "path", "at": "query", "min_revision": "query"}
    listing = doc["paths"]["/v1/services/{service}/users"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "service",
        "organisation",
        "role",
        "at",
        "limit",
        "cursor",
        "min_revision",
    }
    assert {"400", "413"} <= set(doc["paths"]["/v1/check/batch"]["post"]["responses"])


# -- Every verb on every driver --------------------------------------------------------------


@pytest.mark.parametrize("backend", DRIVERS)
def test_every_verb_on_every_driver(
    client: FlaskClient, decision_log: MemoryLog, backend: str, today: dt.date
) -> None:
    assert js(client.get("/healthz")) == {"status": "ok", "revision": 1}
    assert check(client, user="chloe.roux", service="cdap", role="T1")["allowed"] is True
    assert check(client, user="david.leroy", service="cdap")["reason"]["code"] == "USER_CLOSED"
    past = check(client, user="bruno.petit", service="adonis", at=days(today, -11))
    assert past["allowed"] is True
    batch = js(
        client.post(
            "/v1/check/batch",
            json={"checks": [{"user": "nadia.benali", "service": "cdap", "caf": "931"}, {}]},
        )
    )["results"]
    assert batch[0]["allowed"] is True and batch[1]["error"]["code"] == "MISSING_FIELD"
    assert len(decision_log.entries) == 4
    lea = js(client.get("/v1/users/lea.fontaine/permissions"))
    assert [(s["service"], s["roles"]) for s in lea["services"]] == [
        ("afas", ["declaration", "declarer"])
    ]
    listed = [u["login"] for p in pages(client, "/v1/services/cdap/users", 2) for u in p["users"]]
    assert listed == ["nadia.benali", "bruno.petit", "chloe.roux"]


def test_openapi_declares_413_on_every_route_with_a_body(client: FlaskClient) -> None:
    doc = js(client.get("/v1/openapi.json"))
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                assert "413" in op["responses"], f"{method} {path}"


def test_openapi_document_is_valid_openapi_3(client: FlaskClient) -> None:
    # Checked by an independent validator, not by our own reading of the spec.
    from openapi_spec_validator import validate

    validate(js(client.get("/v1/openapi.json")))


def test_one_declaration_gives_the_flask_rule_and_the_operation() -> None:
    registry = Registry()
    prefixed, bare = Blueprint("t", __name__, url_prefix="/v1/"), Blueprint("u", __name__)

    @registry.route(
        prefixed,
        "PATCH",
        "/orgs/<org>/subs/<int:subscription_id>",
        summary="s",
        response=HealthResponse,
    )
    def edit(org: str, subscription_id: int) -> str:
        return f"{org} {subscription_id}"

    @registry.route(bare, "GET", "/ping", summary="p", response=HealthResponse, public=True)
    def ping() -> str:
        return "pong"

    app = Flask(__name__)
    app.register_blueprint(prefixed)
    app.register_blueprint(bare)
    rules = {r.endpoint: (r.rule, r.methods) for r in app.url_map.iter_rules()}
    assert rules["t.edit"] == ("/v1/orgs/<org>/subs/<int:subscription_id>", {"PATCH", "OPTIONS"})
    assert rules["u.ping"] == ("/ping", {"GET", "HEAD", "OPTIONS"})
    assert app.test_client().patch("/v1/orgs/o/subs/7").text == "o 7"
    assert [(o.method, o.path, o.path_params) for o in registry.operations] == [
        ("patch", "/v1/orgs/{org}/subs/{subscription_id}", ("org", "subscription_id")),
        ("get", "/ping", ()),
    ]
    with pytest.raises(ValueError, match="GET /ping is declared twice"):
        registry.route(bare, "GET", "/ping", summary="p", response=HealthResponse)(ping)
