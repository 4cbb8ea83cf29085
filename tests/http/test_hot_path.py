"""The decision endpoints' lean path (pdp.web.api.hot_path) answers as the Flask app does.

Each request of the table is sent twice to the same app: once through the app's WSGI callable
(where the lean path takes it) and once straight to Flask's own (as every request went before
the lean path). Status, JSON document (but the decision's id, new each time), content type,
request id and Retry-After must be the same; the lean path must really have answered, and the
decision log must hold the same entries either way. R-DEC-1 (the decisions), R-DEC-2 (errors
deny, nothing unlogged is answered), R-OPS-2 (keys), R-OPS-1 (the caller behind a proxy).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client, TestResponse

from pdp.records.decision_log import MemoryLog
from pdp.web.api.hot_path import HotPath
from pdp.web.container import services

from support.api_clients import store
from support.constants import API_KEY, MakeApp
from support.decision_api import sqlite_backend  # noqa: F401 (the fixture: SQLite here)

_AFAS_KEY = "afas-only"  # replaced by a real Afas-only key in the fixture


def _json(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


CHECK, BATCH = "/v1/check", "/v1/check/batch"
BRUNO = {"user": "bruno.petit", "service": "cdap"}
CHLOE = {"user": "chloe.roux", "service": "cdap"}

# (name, path, headers, body): bodies as raw bytes, so that broken JSON is sent as it is.
CASES: list[tuple[str, str, dict[str, str], bytes]] = [
    ("allowed", CHECK, {}, _json(**BRUNO, role="T18")),
    ("denied", CHECK, {}, _json(**CHLOE, role="T18")),
    ("closed user", CHECK, {}, _json(user="david.leroy", service="cdap", caf="931")),
    ("unknown user", CHECK, {}, _json(user="nobody", service="cdap")),
    ("feature", CHECK, {}, _json(**BRUNO, feature="x")),
    ("unknown service", CHECK, {}, _json(user="bruno.petit", service="nope")),
    ("unknown field", CHECK, {}, _json(**BRUNO, x=1)),
    ("missing field", CHECK, {}, _json(user="bruno.petit")),
    ("broken JSON", CHECK, {}, b'{"user": '),
    ("control character", CHECK, {}, _json(user="bruno\x00", service="cdap")),
    ("no key", CHECK, {"X-Api-Key": ""}, _json(**BRUNO)),
    ("bad key", CHECK, {"X-Api-Key": "pdp_x"}, _json(**BRUNO)),
    ("service not allowed", CHECK, {"X-Api-Key": _AFAS_KEY}, _json(**BRUNO)),
    ("revision unknown", CHECK, {}, _json(**BRUNO, min_revision=99)),
    ("too large", CHECK, {}, _json(**BRUNO, role="T" * 400)),
    ("request id", CHECK, {"X-Request-Id": "front-42"}, _json(**CHLOE)),
    ("bad request id", CHECK, {"X-Request-Id": "a b"}, _json(**CHLOE)),
    ("batch", BATCH, {}, _json(checks=[BRUNO, {"user": "x"}, 3, dict(CHLOE, role="T1")])),
    ("batch too large", BATCH, {}, _json(checks=[{}] * 6)),
    ("batch not a list", BATCH, {}, _json(checks=1)),
]


class Counted:
    """A WSGI callable counting the requests it is given."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        return self.app(environ, start_response)  # type: ignore[no-any-return]


def _hot_path(app: Flask) -> HotPath:
    found = app.wsgi_app
    while not isinstance(found, HotPath):
        found = found.app  # type: ignore[attr-defined]
    return found


@pytest.fixture
def app_and_log(make_app: MakeApp, demo_db: str) -> tuple[Flask, MemoryLog, str]:
    app, log = make_app(max_body_bytes=300, batch_max=5)
    key, _ = store(demo_db).add("afas-front", ["afas"], "cli:tester")
    return app, log, key


def _send(
    client: Client, path: str, headers: dict[str, str], body: bytes, key: str
) -> TestResponse:
    sent = {"X-Api-Key": API_KEY, **headers}
    if sent["X-Api-Key"] == _AFAS_KEY:
        sent["X-Api-Key"] = key
    return client.post(path, data=body, headers=sent, content_type="application/json")


def _entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A log entry but what differs from one request to the next: ids (the request's unless
    the caller sent it), the time, the evaluation's duration."""
    varying = {"decision_id", "ts", "eval_us"}
    if entry.get("request_id") != "front-42":
        varying.add("request_id")
    return {k: v for k, v in entry.items() if k not in varying}


def _comparable(response: TestResponse) -> tuple[Any, ...]:
    document = response.get_json()
    for item in document.get("results", [document]):
        item.pop("decision_id", None)
    return (
        response.status_code,
        document,
        response.mimetype,
        response.headers.get("Retry-After"),
        len(response.headers["X-Request-Id"]) > 0,
    )


@pytest.mark.parametrize(("name", "path", "headers", "body"), CASES, ids=[c[0] for c in CASES])
def test_the_lean_path_answers_as_flask_does(
    app_and_log: tuple[Flask, MemoryLog, str],
    name: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    app, log, key = app_and_log
    hot = _hot_path(app)
    flask_side = hot.app = Counted(hot.app)
    lean = _send(Client(app), path, headers, body, key)
    assert flask_side.calls == 0, "the lean path passed the request on"
    lean_entries = [_entry(e) for e in log.entries]
    log.entries.clear()
    plain = _send(Client(flask_side.app), path, headers, body, key)
    assert _comparable(lean) == _comparable(plain)
    assert lean.status_code < 500 and b"Traceback" not in lean.data
    if "X-Request-Id" in headers and name == "request id":
        assert lean.headers["X-Request-Id"] == plain.headers["X-Request-Id"] == "front-42"
    assert lean_entries == [_entry(e) for e in log.entries]


def test_the_decision_log_names_the_request_and_the_client(
    app_and_log: tuple[Flask, MemoryLog, str],
) -> None:
    app, log, _ = app_and_log
    answer = Client(app).post(
        "/v1/check",
        json={"user": "bruno.petit", "service": "cdap"},
        headers={"X-Api-Key": API_KEY, "X-Request-Id": "front-7"},
    )
    assert answer.status_code == 200
    (entry,) = log.entries
    assert (entry["request_id"], entry["decision_id"]) == (
        "front-7",
        answer.get_json()["decision_id"],
    )
    assert entry["client"] == services(app).api_keys.authenticate(API_KEY).name


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/v1/check", ""),
        ("POST", "/v1/check/", ""),
        ("POST", "/v1/check", "dry_run=true"),
        ("POST", "/v1/check", "x=\x01"),
        ("POST", "/v1/users/bruno.petit/permissions", ""),
    ],
)
def test_everything_else_goes_to_flask(
    app_and_log: tuple[Flask, MemoryLog, str], method: str, path: str, query: str
) -> None:
    app, _, _ = app_and_log
    hot = _hot_path(app)
    flask_side = hot.app = Counted(hot.app)
    response = Client(app).open(
        path, method=method, query_string=query, json={"user": "a", "service": "cdap"},
        headers={"X-Api-Key": API_KEY},
    )  # fmt: skip
    assert flask_side.calls == 1
    assert response.status_code < 500


def test_a_chunked_body_goes_to_flask(app_and_log: tuple[Flask, MemoryLog, str]) -> None:
    app, _, _ = app_and_log
    hot = _hot_path(app)
    flask_side = hot.app = Counted(hot.app)
    response = Client(app).post(
        "/v1/check",
        data=b'{"user": "bruno.petit", "service": "cdap"}',
        headers={"X-Api-Key": API_KEY, "Transfer-Encoding": "chunked"},
        content_type="application/json",
        # As gunicorn hands a chunked body over: no length, the stream ends where it ends.
        environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True},
    )
    assert flask_side.calls == 1
    assert response.status_code == 200 and response.get_json()["allowed"] is True


def test_the_rate_limit_refuses_on_both_paths(make_app: MakeApp) -> None:
    """The same limiter counts both paths: the third request of the minute is refused (429
    with Retry-After) whichever path it takes."""
    app, _ = make_app(rate_limit="2/minute")
    hot = _hot_path(app)
    body = {"user": "bruno.petit", "service": "cdap"}
    first = Client(app).post("/v1/check", json=body, headers={"X-Api-Key": API_KEY})
    second = Client(hot.app).post("/v1/check", json=body, headers={"X-Api-Key": API_KEY})
    third = Client(app).post("/v1/check", json=body, headers={"X-Api-Key": API_KEY})
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert third.get_json()["error"]["code"] == "RATE_LIMITED"
    assert int(third.headers["Retry-After"]) > 0


def test_the_lean_path_is_timed_under_the_views_names(make_app: MakeApp) -> None:
    app, _ = make_app(metrics_public="true")
    client = Client(app)
    for _ in range(3):
        client.post(
            "/v1/check",
            json={"user": "bruno.petit", "service": "cdap"},
            headers={"X-Api-Key": API_KEY},
        )
    client.post("/v1/check/batch", data=b"{", headers={"X-Api-Key": API_KEY})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'endpoint="decisions.check",status="2xx"' in text
    assert 'endpoint="decisions.check_batch",status="4xx"' in text
