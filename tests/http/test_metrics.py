"""Operations: Prometheus metrics, JSON logs with request ids, graceful shutdown.

- ``pdp_decisions_total`` counts every decision by kind, result and reason; the latency
  histogram counts each request by endpoint and status class; the policy gauges follow the
  engine (in process: the default registry).
- ``GET /metrics`` wants an API key or a JWT unless ``PDP_METRICS_PUBLIC=true``; it is text, not
  JSON, and not in the OpenAPI document.
- ``PDP_LOG_FORMAT=json``: one JSON object a line, carrying the request's id.
- Over a real ``pdp serve --workers 2`` with ``PROMETHEUS_MULTIPROC_DIR``: the counters are the
  sums over both workers, and what an earlier run left in the directory is gone; the output is
  JSON lines without any key.
- SIGTERM under load: every answer is a complete 200, requests in flight are drained, and every
  answered decision reaches the ``decision_log`` table.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import DecisionRecord
from pdp.core import context
from pdp.core.config import Settings
from pdp.core.errors import ConfigurationError
from pdp.observability import logs
from pdp.web.container import services

from support.actors import bearer
from support.constants import API_KEY, SECRET, MakeApp
from support.servers import running, server_env

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sample(name: str, **labels: str) -> float:
    """The current value of one sample of the default registry (0 if it does not exist)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def decisions(kind: str, result: str, reason: str) -> float:
    return sample("pdp_decisions_total", kind=kind, result=result, reason=reason)


# -- In process: counters, histogram, gauges ---------------------------------------------------


def test_decisions_are_counted_by_kind_result_and_reason(make_app: MakeApp) -> None:
    client = make_app()[0].test_client()
    before = {
        "allowed": decisions("check", "allowed", "ALLOWED"),
        "role": decisions("check", "denied", "ROLE_NOT_GRANTED"),
        "unknown": decisions("check", "denied", "UNKNOWN_USER"),
        "permissions": decisions("permissions", "allowed", "ALLOWED"),
        "nobody": decisions("permissions", "denied", "UNKNOWN_USER"),
        "users": decisions("service_users", "allowed", "ALLOWED"),
        "admin": decisions("admin", "allowed", "ALLOWED"),
    }
    allowed = {"user": "bruno.petit", "service": "cdap", "role": "T18"}
    denied = {"user": "chloe.roux", "service": "cdap", "role": "T18"}
    assert client.post("/v1/check", json=allowed).get_json()["allowed"] is True
    assert client.post("/v1/check", json=denied).get_json()["allowed"] is False
    batch = {"checks": [allowed, denied, denied, {"user": "nobody.here", "service": "afas"}]}
    assert client.post("/v1/check/batch", json=batch).status_code == 200
    assert client.get("/v1/users/nadia.benali/permissions").status_code == 200
    assert client.get("/v1/users/nobody.here/permissions").status_code == 404
    assert client.get("/v1/services/cdap/users").status_code == 200
    question = {
        "actor": "alice.martin",
        "action": "group.edit",
        "target": "group:mairie-montreuil/CCAS",
    }
    assert client.post("/v1/admin/check", json=question).status_code == 200
    assert {
        "allowed": decisions("check", "allowed", "ALLOWED") - before["allowed"],
        "role": decisions("check", "denied", "ROLE_NOT_GRANTED") - before["role"],
        "unknown": decisions("check", "denied", "UNKNOWN_USER") - before["unknown"],
        "permissions": decisions("permissions", "allowed", "ALLOWED") - before["permissions"],
        "nobody": decisions("permissions", "denied", "UNKNOWN_USER") - before["nobody"],
        "users": decisions("service_users", "allowed", "ALLOWED") - before["users"],
        "admin": decisions("admin", "allowed", "ALLOWED") - before["admin"],
    } == {
        "allowed": 2,
        "role": 3,
        "unknown": 1,
        "permissions": 1,
        "nobody": 1,
        "users": 1,
        "admin": 1,
    }


def test_every_reason_is_exposed_from_the_start(make_app: MakeApp) -> None:
    """Each check reason is a series at 0 before its first decision (rate() needs one)."""
    body = make_app()[0].test_client().get("/metrics").get_data(as_text=True)
    assert 'pdp_decisions_total{kind="check",reason="ENGINE_ERROR",result="denied"}' in body
    assert 'pdp_decisions_total{kind="admin",reason="NOT_PERMITTED",result="denied"}' in body


def test_requests_are_timed_by_endpoint_and_status_class(make_app: MakeApp) -> None:
    client = make_app()[0].test_client()
    count = "pdp_http_request_duration_seconds_count"
    ok = sample(count, endpoint="decisions.check", status="2xx")
    bad = sample(count, endpoint="decisions.check", status="4xx")
    client.post("/v1/check", json={"user": "bruno.petit", "service": "cdap"})
    client.post("/v1/check", json={"user": "bruno.petit", "service": "nosuchservice"})
    client.post("/v1/check", json={"user": "bruno.petit", "service": "cdap"})
    assert sample(count, endpoint="decisions.check", status="2xx") - ok == 2
    assert sample(count, endpoint="decisions.check", status="4xx") - bad == 1
    slowest = sample(
        "pdp_http_request_duration_seconds_bucket",
        endpoint="decisions.check",
        status="2xx",
        le="+Inf",
    )
    assert slowest == sample(count, endpoint="decisions.check", status="2xx")


def test_policy_gauges_follow_the_engine(make_app: MakeApp) -> None:
    loads = sample("pdp_index_load_seconds_count")
    app, _ = make_app()
    assert sample("pdp_index_load_seconds_count") == loads + 1
    assert sample("pdp_policy_revision") == 1
    assert time.time() - sample("pdp_policy_fresh_timestamp_seconds") < 60
    services(app).decisions.engine.refresh(force=True)
    assert time.time() - sample("pdp_policy_fresh_timestamp_seconds") < 5


# -- GET /metrics: who may read it -------------------------------------------------------------


def test_metrics_need_a_key_or_a_token_by_default(make_app: MakeApp) -> None:
    client = make_app(jwt_secret=SECRET)[0].test_client()
    keyed = client.get("/metrics")
    assert keyed.status_code == 200
    assert keyed.mimetype == "text/plain"
    assert "pdp_decisions_total" in keyed.get_data(as_text=True)
    client.environ_base.pop("HTTP_X_API_KEY")
    refused = client.get("/metrics")
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (401, "UNAUTHENTICATED")
    assert client.get("/metrics", headers=bearer("alice.martin")).status_code == 200
    assert client.get("/metrics", headers={"X-Api-Key": "pdp_nope"}).status_code == 401


def test_metrics_public_answers_without_credentials(make_app: MakeApp) -> None:
    client = make_app(metrics_public="true")[0].test_client()
    client.environ_base.pop("HTTP_X_API_KEY")
    assert client.get("/metrics").status_code == 200
    assert client.post("/v1/check", json={"user": "a", "service": "cdap"}).status_code == 401


def test_metrics_are_not_in_the_openapi_document(make_app: MakeApp) -> None:
    document = make_app()[0].test_client().get("/v1/openapi.json").get_json()
    assert "/metrics" not in document["paths"]


@pytest.mark.parametrize(
    ("name", "value"), [("PDP_METRICS_PUBLIC", "maybe"), ("PDP_LOG_FORMAT", "xml")]
)
def test_bad_operations_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


def test_serve_logs_json_by_default_in_production_only() -> None:
    assert Settings(env="production").log_format_of(serving=True) == "json"
    assert Settings(env="production").log_format_of(serving=False) == "text"
    assert Settings().log_format_of(serving=True) == "text"
    assert Settings(log_format="json").log_format_of(serving=False) == "json"


# -- JSON logs ---------------------------------------------------------------------------------


def json_lines(make: Callable[[], None]) -> list[dict[str, Any]]:
    """What the ``pdp`` loggers write while ``make()`` runs, through the JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    pdp_log = logging.getLogger("pdp")
    level = pdp_log.level
    pdp_log.addHandler(handler)
    pdp_log.setLevel(logging.INFO)
    try:
        make()
    finally:
        pdp_log.removeHandler(handler)
        pdp_log.setLevel(level)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_log_lines_carry_the_request_id(make_app: MakeApp) -> None:
    app, _ = make_app()

    @app.get("/v1/test-log")
    def _logs_twice() -> str:
        logging.getLogger("pdp.test").warning("a warning for %s", "someone")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("pdp.test").exception("it failed")
        return "ok"

    client = app.test_client()
    lines = json_lines(lambda: client.get("/v1/test-log", headers={"X-Request-Id": "req-42"}))
    assert [(line["level"], line["logger"], line["message"]) for line in lines] == [
        ("WARNING", "pdp.test", "a warning for someone"),
        ("ERROR", "pdp.test", "it failed"),
    ]
    assert {line["request_id"] for line in lines} == {"req-42"}
    assert {line["client"] for line in lines} == {"127.0.0.1"}
    assert "RuntimeError: boom" in lines[1]["exception"]
    assert "exception" not in lines[0]
    assert lines[0]["ts"].endswith("+00:00")
    # Between requests: no request id, no client.
    outside = json_lines(lambda: logging.getLogger("pdp.test").warning("idle"))
    assert (outside[0]["request_id"], outside[0]["client"]) == (None, None)
    assert context.request_id.get() is None


def test_the_gunicorn_log_config_is_json_or_gunicorns_own() -> None:
    assert logs.gunicorn_logconfig("text") is None
    config = logs.gunicorn_logconfig("json")
    assert config is not None
    assert config["loggers"]["gunicorn.error"]["handlers"] == ["stderr"]
    logging.config.dictConfig({**config, "root": {"level": "WARNING", "handlers": []}})


# -- A real server: two workers, one /metrics --------------------------------------------------


def scrape(base_url: str, headers: dict[str, str]) -> dict[tuple[str, tuple[Any, ...]], float]:
    """GET /metrics: {(sample name, sorted labels): value}."""
    req = urllib.request.Request(base_url + "/metrics", headers=headers)
    with _opener.open(req, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers.get_content_type() == "text/plain"
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict[tuple[str, tuple[Any, ...]], float], name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def post_json(base_url: str, path: str, body: Any) -> Any:
    req = urllib.request.Request(
        base_url + path,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "X-Api-Key": API_KEY},
    )
    with _opener.open(req, timeout=30) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def stale_counter(directory: Path) -> None:
    """A counter file as a dead process of an earlier run would have left it: 1,000 checks."""
    stale = MmapedDict(str(directory / "counter_999999.db"))
    labels = ("check", "allowed", "ALLOWED")
    key = mmap_key(
        "pdp_decisions", "pdp_decisions_total", ("kind", "result", "reason"), labels, "stale"
    )
    stale.write_value(key, 1000.0, 0.0)
    stale.close()


def checks_by_process(directory: Path) -> dict[str, float]:
    """{pid: checks counted} of each process that counted some, read from its own file."""
    found = {}
    for path in directory.glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(path)])
        count = sum(
            s.value
            for m in merged
            if m.name == "pdp_decisions"
            for s in m.samples
            if s.name == "pdp_decisions_total" and s.labels["kind"] == "check"
        )
        if count:
            found[path.stem.split("_")[1]] = count
    return found


@pytest.mark.e2e
def test_metrics_are_summed_over_every_worker(demo_db: str, tmp_path: Path) -> None:
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    stale_counter(prom_dir)
    env = server_env(
        tmp_path,
        PDP_DATABASE_URL=demo_db,
        PDP_LOG_FORMAT="json",
        PROMETHEUS_MULTIPROC_DIR=str(prom_dir),
    )
    headers = {"X-Api-Key": API_KEY}
    check = {"user": "bruno.petit", "service": "cdap", "role": "T18"}
    sent = 0
    with running(["serve", "--workers", "2"], env, tmp_path) as server:
        assert not (prom_dir / "counter_999999.db").exists()
        deadline = time.monotonic() + 30
        while True:
            for _ in range(20):  # a new connection each: the kernel spreads them
                post_json(server.base_url, "/v1/check", check)
                sent += 1
            answered = checks_by_process(prom_dir)
            if len(answered) >= 2:  # both workers have answered checks
                break
            assert time.monotonic() < deadline, f"one worker answered everything: {answered}"
        samples = scrape(server.base_url, headers)
        assert sum(answered.values()) == sent
        assert total(samples, "pdp_decisions_total", kind="check") == sent
        assert total(samples, "pdp_decisions_total", reason="ALLOWED", result="allowed") == sent
        assert (
            total(
                samples,
                "pdp_http_request_duration_seconds_count",
                endpoint="decisions.check",
                status="2xx",
            )
            == sent
        )
        revisions = {v for (n, _), v in samples.items() if n == "pdp_policy_revision"}
        assert len(revisions) == 1 and min(revisions) >= 1, revisions  # both on the same one
        fresh = total(samples, "pdp_policy_fresh_timestamp_seconds")
        assert time.time() - fresh < 30
        assert total(samples, "pdp_index_load_seconds_count") >= 1  # the master's first load
        # One build_info series over every process (the largest value, not a sum), and the
        # database's timestamp refreshed by the scrape itself.
        assert [v for (n, _), v in samples.items() if n == "pdp_build_info"] == [1]
        assert time.time() - total(samples, "pdp_database_ok_timestamp_seconds") < 30
        output = server.log()
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, "the server wrote nothing"
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(p["logger"] == "gunicorn.error" for p in parsed)
    assert any(p["logger"].startswith("pdp") for p in parsed)
    assert API_KEY not in output and API_KEY.rsplit("_", 1)[1] not in output


# -- Graceful shutdown: SIGTERM under load -----------------------------------------------------

BATCH = [
    {"user": "bruno.petit", "service": "cdap", "role": "T18"},
    {"user": "chloe.roux", "service": "cdap", "role": "T18"},
    {"user": "nadia.benali", "service": "cdap", "caf": "751"},
    {"user": "lea.fontaine", "service": "afas"},
] * 250  # 1,000 checks: tens of milliseconds each


@dataclass
class Load:
    """Client threads sending batches until the server stops accepting them."""

    base_url: str
    answered: list[tuple[float, list[str]]] = field(default_factory=list)  # (when, ids)
    refused: list[str] = field(default_factory=list)  # HTTP answers other than 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> None:
        while True:
            try:
                answer = post_json(self.base_url, "/v1/check/batch", {"checks": BATCH})
            except urllib.error.HTTPError as exc:
                with exc, self.lock:
                    self.refused.append(f"{exc.code}: {exc.read()!r}")
                return
            # Not accepted: refused, or reset in the listen queue of a closing socket.
            except (OSError, http.client.HTTPException):
                return
            ids = [r["decision_id"] for r in answer["results"]]
            assert len(ids) == len(BATCH)
            with self.lock:
                self.answered.append((time.monotonic(), ids))

    def count(self) -> int:
        with self.lock:
            return len(self.answered)


@pytest.mark.e2e
def test_sigterm_drains_requests_and_ships_every_answered_decision(
    demo_db: str, tmp_path: Path
) -> None:
    log_dir = tmp_path / "decision-log"
    env = server_env(
        tmp_path,
        PDP_DATABASE_URL=demo_db,
        PDP_DECISION_LOG="buffered",
        PDP_DECISION_LOG_DIR=str(log_dir),
        PDP_DECISION_LOG_SHIP_INTERVAL="3600",  # only the shipper process's last round, at exit
    )
    with running(["serve", "--workers", "2"], env, tmp_path) as server:
        load = Load(server.base_url)
        threads = [threading.Thread(target=load.client) for _ in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while load.count() < 6:
            assert time.monotonic() < deadline, f"too few answers:\n{server.log()}"
            time.sleep(0.01)
        terminated = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert server.process.wait(timeout=60) == 0, server.log()
    assert load.refused == []
    drained = [ids for when, ids in load.answered if when > terminated]
    assert drained, "no request was in flight at SIGTERM: nothing shows the drain"
    answered = {i for _, ids in load.answered for i in ids}
    db = make_engine(demo_db)
    try:
        with db.connect() as conn:
            shipped = set(conn.execute(select(DecisionRecord.decision_id)).scalars())
    finally:
        db.dispose()
    assert answered <= shipped, f"{len(answered - shipped)} answered decisions not shipped"
    assert list(log_dir.glob("*.log")) == []  # all shipped: no segment waits on disk
