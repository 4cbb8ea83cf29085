"""Callers and limits: front-ends' API keys, the per-client rate limit, the size
limits, production mode, and secrets kept out of every log.

- A key is created by ``pdp clients add NAME --services …``, shown once, stored as a SHA-256
  only; ``pdp clients revoke`` makes servers refuse it within PDP_REFRESH_INTERVAL. Both are
  recorded in the audit chain (without the key).
- Keys are read when the app starts: a database lost before the first request, or during
  any later one, leaves valid keys working and revoked ones refused; an app that never read
  them answers 503 KEYS_UNAVAILABLE (never 401) and /readyz says so, until it reads them.
- A key asks only about its services: the Afas front-end cannot query Cdap rights (403
  SERVICE_NOT_ALLOWED), its permissions listing shows Afas only.
- Only /healthz and /readyz answer without credentials; the administration API wants a JWT.
- The rate limit counts per client (the key's name), in memory or in Redis shared by every
  worker; over it, 429 RATE_LIMITED with Retry-After; Redis down → counted in memory, no 500.
- PDP_ENV=production refuses to start with a default or missing secret, an in-memory rate
  limit, or the demo key open.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import ApiClientRecord, AuditRecord
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.core.config import Settings
from pdp.core.errors import ConfigurationError
from pdp.engine.policy import PolicyEngine
from pdp.records.audit_trail import AuditChain
from pdp.records.decision_log import MemoryLog
from pdp.services.api_keys import ClientStore, key_digest
from pdp.services.tokens import mint
from pdp.web.app import create_app
from pdp.web.container import services

from conftest import APP_DEFAULTS
from support.constants import API_KEY, SECRET, MakeApp
from support.servers import answers_from_every_worker, pdp_command, run_pdp, running, server_env

REDIS_ENV = "PDP_TEST_REDIS_URL"
STRONG = "Zq8vT3kLp0Wm2Yx7Rb5Nc1Hd9Gf4Js6A"  # 32 characters, 32 distinct: not a default


def store(url: str) -> ClientStore:
    return ClientStore(make_engine(url), AuditChain(), load_catalogue().services)


def bearer(login: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(Settings(jwt_secret=SECRET), login)}"}


def error_code(response: Any) -> str:
    body = response.get_json()
    assert isinstance(body, dict) and "error" in body, body
    return str(body["error"]["code"])


# -- Keys: stored hashed, shown once, audited --------------------------------------------------


def test_a_key_is_stored_as_its_digest_only_and_audited(demo_db: str) -> None:
    key, client = store(demo_db).add("afas-front", ["afas"], "cli:tester")
    assert re.fullmatch(r"pdp_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
    db = make_engine(demo_db)
    with db.connect() as conn:
        row = conn.execute(
            select(ApiClientRecord).where(ApiClientRecord.key_id == client.key_id)
        ).one()
        assert row.key_hash == key_digest(key) and row.services == "afas"
        secret_part = key.rsplit("_", 1)[1]
        for table in ("api_clients", "audit_log"):
            dump = json.dumps(
                [list(r) for r in conn.execute(text(f"SELECT * FROM {table}"))], default=str
            )
            assert secret_part not in dump, table
        audit = conn.execute(
            select(AuditRecord.actor, AuditRecord.action, AuditRecord.target).where(
                AuditRecord.action.like("client.%")
            )
        ).all()
    assert [tuple(a) for a in audit] == [("cli:tester", "client.add", "client:afas-front")]
    db.dispose()


@pytest.mark.parametrize(
    ("name", "services", "code"),
    [
        ("afas-front", ["cdap", "nope"], "UNKNOWN_SERVICE"),
        ("afas-front", [], "UNKNOWN_SERVICE"),
        ("Afas Front", ["afas"], "INVALID_CLIENT_NAME"),
        ("x" * 65, ["afas"], "INVALID_CLIENT_NAME"),
    ],
)
def test_bad_client_definitions_are_refused(
    demo_db: str, name: str, services: list[str], code: str
) -> None:
    with pytest.raises(Exception) as caught:
        store(demo_db).add(name, services, "cli:tester")
    assert getattr(caught.value, "code", None) == code
    assert store(demo_db).list() == [c for c in store(demo_db).list() if c.name == "tests"]


def test_a_revoked_key_is_refused(make_app: MakeApp, demo_db: str) -> None:
    app, _ = make_app()
    key, _ = store(demo_db).add("cdap-front", ["cdap"], "cli:tester")
    client = app.test_client()
    body = {"user": "bruno.petit", "service": "cdap"}
    assert client.post("/v1/check", json=body, headers={"X-Api-Key": key}).status_code == 200
    revoked = store(demo_db).revoke("cdap-front", "cli:tester")
    assert [c.name for c in revoked] == ["cdap-front"]
    refused = client.post("/v1/check", json=body, headers={"X-Api-Key": key})
    assert (refused.status_code, error_code(refused)) == (401, "INVALID_API_KEY")
    with pytest.raises(Exception) as caught:  # nothing open left to revoke
        store(demo_db).revoke("cdap-front", "cli:tester")
    assert getattr(caught.value, "code", None) == "UNKNOWN_CLIENT"


def test_revocation_waits_at_most_the_refresh_interval(make_app: MakeApp, demo_db: str) -> None:
    now = [0.0]
    app, _ = make_app(refresh_interval=1.0)
    registry = services(app).api_keys
    registry._clock = lambda: now[0]  # injected time: no sleeping
    key, _ = store(demo_db).add("cdap-front", ["cdap"], "cli:tester")
    registry.load()
    client = app.test_client()
    body = {"user": "bruno.petit", "service": "cdap"}
    store(demo_db).revoke("cdap-front", "cli:tester")
    now[0] = 0.5  # within the interval, the copy held still has the key
    assert client.post("/v1/check", json=body, headers={"X-Api-Key": key}).status_code == 200
    now[0] = 1.01
    assert client.post("/v1/check", json=body, headers={"X-Api-Key": key}).status_code == 401


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "API_KEY_REQUIRED"),
        ({"X-Api-Key": "not-a-key"}, "INVALID_API_KEY"),
        ({"X-Api-Key": API_KEY[:-1] + ("u" if API_KEY[-1] != "u" else "v")}, "INVALID_API_KEY"),
        ({"X-Api-Key": f"pdp_ffffffffffff_{'t' * 43}"}, "INVALID_API_KEY"),
        ({"Authorization": "Bearer " + API_KEY}, "API_KEY_REQUIRED"),
    ],
)
def test_the_decision_api_wants_a_valid_key(
    make_app: MakeApp, headers: dict[str, str], code: str
) -> None:
    client = make_app()[0].test_client()
    client.environ_base.pop("HTTP_X_API_KEY")
    for method, path, body in (
        ("POST", "/v1/check", {"user": "bruno.petit", "service": "cdap"}),
        ("POST", "/v1/check/batch", {"checks": [{"user": "bruno.petit", "service": "cdap"}]}),
        ("GET", "/v1/users/bruno.petit/permissions", None),
        ("GET", "/v1/services/cdap/users", None),
        ("GET", "/v1/openapi.json", None),
    ):
        response = client.open(path, method=method, json=body, headers=headers)
        assert (response.status_code, error_code(response)) == (401, code), path


def test_probes_answer_without_credentials(make_app: MakeApp) -> None:
    client = make_app()[0].test_client()
    client.environ_base.pop("HTTP_X_API_KEY")
    assert client.get("/healthz").get_json() == {"status": "ok", "revision": 1}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"policy": "ok", "database": "ok", "api_keys": "ok"}


def test_the_openapi_document_wants_a_key_or_a_token(make_app: MakeApp) -> None:
    client = make_app(jwt_secret=SECRET)[0].test_client()
    assert client.get("/v1/openapi.json").status_code == 200  # the tests' key
    client.environ_base.pop("HTTP_X_API_KEY")
    assert client.get("/v1/openapi.json", headers=bearer("op.caf751")).status_code == 200
    bad = client.get("/v1/openapi.json", headers={"Authorization": "Bearer x.y.z"})
    assert (bad.status_code, error_code(bad)) == (401, "INVALID_TOKEN")


def test_the_administration_api_does_not_take_an_api_key(make_app: MakeApp) -> None:
    client = make_app(jwt_secret=SECRET)[0].test_client()  # sends the tests' key
    response = client.get("/v1/organisations/mairie-montreuil/users")
    assert response.status_code == 401
    assert client.get("/v1/organisations/mairie-montreuil/users", headers=bearer("alice.martin"))


# -- A key asks about its services only --------------------------------------------------------


@pytest.fixture
def afas_only(make_app: MakeApp, demo_db: str) -> Iterator[Any]:
    """A client of the app holding an Afas-only key."""
    app, _ = make_app()
    key, _ = store(demo_db).add("afas-front", ["afas"], "cli:tester")
    client = app.test_client()
    client.environ_base["HTTP_X_API_KEY"] = key
    yield client


def test_the_afas_front_end_cannot_query_cdap_rights(afas_only: Any) -> None:
    refused = afas_only.post("/v1/check", json={"user": "bruno.petit", "service": "cdap"})
    assert (refused.status_code, error_code(refused)) == (403, "SERVICE_NOT_ALLOWED")
    allowed = afas_only.post("/v1/check", json={"user": "lea.fontaine", "service": "afas"})
    assert allowed.status_code == 200 and allowed.get_json()["allowed"] is True
    # An unknown service is refused as unknown, as it is for any key.
    unknown = afas_only.post("/v1/check", json={"user": "lea.fontaine", "service": "nope"})
    assert (unknown.status_code, error_code(unknown)) == (400, "UNKNOWN_SERVICE")
    users = afas_only.get("/v1/services/cdap/users")
    assert (users.status_code, error_code(users)) == (403, "SERVICE_NOT_ALLOWED")
    assert afas_only.get("/v1/services/afas/users").status_code == 200


def test_a_batch_refuses_only_the_items_about_other_services(afas_only: Any) -> None:
    checks = [
        {"user": "lea.fontaine", "service": "afas"},
        {"user": "bruno.petit", "service": "cdap", "role": "T18"},
    ]
    results = afas_only.post("/v1/check/batch", json={"checks": checks}).get_json()["results"]
    assert results[0]["allowed"] is True
    assert results[1]["error"]["code"] == "SERVICE_NOT_ALLOWED"


def test_the_permissions_listing_shows_the_keys_services_only(
    afas_only: Any, make_app: MakeApp
) -> None:
    # R-DEC-4, seen by the Afas front-end: only Afas, though the user may use more.
    everything = make_app()[0].test_client().get("/v1/users/nadia.benali/permissions")
    assert {s["service"] for s in everything.get_json()["services"]} - {"afas"}
    listing = afas_only.get("/v1/users/nadia.benali/permissions").get_json()
    assert {s["service"] for s in listing["services"]} <= {"afas"}


def test_the_decision_log_names_the_client(afas_only: Any, make_app: MakeApp) -> None:
    app, log = make_app()
    client = app.test_client()
    client.post("/v1/check", json={"user": "bruno.petit", "service": "cdap"})
    assert log.entries[-1]["client"] == "tests"


# -- Limits: each a clear 4xx ------------------------------------------------------------------


def test_size_limits_answer_a_clear_4xx(make_app: MakeApp) -> None:
    client = make_app(max_body_bytes=2000, batch_max=3, page_max=5)[0].test_client()
    big = client.post(
        "/v1/check", data=b'{"user": "' + b"x" * 3000 + b'"}', content_type="application/json"
    )
    assert (big.status_code, error_code(big)) == (413, "PAYLOAD_TOO_LARGE")
    batch = client.post("/v1/check/batch", json={"checks": [{"user": "a", "service": "cdap"}] * 4})
    assert (batch.status_code, error_code(batch)) == (400, "BATCH_TOO_LARGE")
    page = client.get("/v1/services/cdap/users?limit=6")
    assert (page.status_code, error_code(page)) == (400, "PAGE_TOO_LARGE")
    long_user = client.post("/v1/check", json={"user": "u" * 121, "service": "cdap"})
    assert long_user.status_code == 400
    long_path = client.get(f"/v1/users/{'u' * 121}/permissions")
    assert (long_path.status_code, error_code(long_path)) == (400, "VALUE_TOO_LONG")
    long_service = client.get(f"/v1/services/{'s' * 41}/users")
    assert (long_service.status_code, error_code(long_service)) == (400, "VALUE_TOO_LONG")


def test_the_rate_limit_counts_per_client(make_app: MakeApp, demo_db: str) -> None:
    app, _ = make_app(rate_limit="3/minute")
    other_key, _ = store(demo_db).add("other-front", ["cdap"], "cli:tester")
    client = app.test_client()
    body = {"user": "bruno.petit", "service": "cdap"}
    assert [client.post("/v1/check", json=body).status_code for _ in range(3)] == [200] * 3
    over = client.post("/v1/check", json=body)
    assert (over.status_code, error_code(over)) == (429, "RATE_LIMITED")
    assert int(over.headers["Retry-After"]) > 0
    assert over.get_json()["error"]["message"]
    # Another front-end has its own count; the probes are never limited.
    other = client.post("/v1/check", json=body, headers={"X-Api-Key": other_key})
    assert other.status_code == 200
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))


def test_a_bad_rate_limit_setting_stops_the_start(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match="PDP_RATE_LIMIT"):
        make_app(rate_limit="lots")
    with pytest.raises(ConfigurationError, match="PDP_RATE_LIMIT_STORAGE"):
        make_app(rate_limit="3/minute", rate_limit_storage="mongodb://x")


@pytest.fixture
def redis_url() -> str:
    """A Redis database for the test, emptied; skipped unless PDP_TEST_REDIS_URL is set, and
    failing if it is set but Redis does not answer (CI asked for it)."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set: Redis tests skipped")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).flushdb()
    except redis.RedisError as exc:
        pytest.fail(f"{REDIS_ENV} is set but Redis is unreachable at {url}: {exc}", pytrace=False)
    return url


def test_workers_share_one_count_in_redis(make_app: MakeApp, redis_url: str) -> None:
    # Two apps, like two workers (or two instances): one limit for the client, across both.
    settings = {"rate_limit": "3/minute", "rate_limit_storage": redis_url}
    first, second = make_app(**settings)[0].test_client(), make_app(**settings)[0].test_client()
    body = {"user": "bruno.petit", "service": "cdap"}
    statuses = [c.post("/v1/check", json=body).status_code for c in (first, second, first)]
    assert statuses == [200, 200, 200]
    over = second.post("/v1/check", json=body)
    assert (over.status_code, error_code(over)) == (429, "RATE_LIMITED")


def test_redis_down_falls_back_to_memory_without_errors(make_app: MakeApp) -> None:
    app, _ = make_app(rate_limit="2/minute", rate_limit_storage="redis://127.0.0.1:1/0")
    client = app.test_client()
    body = {"user": "bruno.petit", "service": "cdap"}
    statuses = [client.post("/v1/check", json=body).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


# -- Production mode ---------------------------------------------------------------------------


def production(**settings: str) -> dict[str, str]:
    values = {
        "env": "production",
        "jwt_secret": STRONG,
        "log_mask_key": STRONG[::-1],
        "audit_key": STRONG[1:] + "Q",
        "rate_limit": "1000/second",
        "rate_limit_storage": "redis://127.0.0.1:6379/0",
    }
    values.update(settings)
    return values


def test_production_starts_with_real_secrets(make_app: MakeApp) -> None:
    app, _ = make_app(**production())
    assert app.test_client().get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"jwt_secret": ""}, "PDP_JWT_SECRET: it is not set"),
        ({"jwt_secret": SECRET}, "PDP_JWT_SECRET: it is a documented default"),
        ({"jwt_secret": "change-me-please-0123456789abcdefgh"}, "PDP_JWT_SECRET"),
        ({"jwt_secret": "ab" * 20}, "fewer than 10 distinct"),
        ({"log_mask_key": ""}, "PDP_LOG_MASK_KEY"),
        ({"audit_key": "short-but-varied-123"}, "PDP_AUDIT_KEY: it is shorter than 32"),
        ({"rate_limit_storage": "memory://"}, "PDP_RATE_LIMIT_STORAGE"),
        ({"jwt_algorithm": "RS256", "jwt_secret": ""}, "PDP_JWT_PUBLIC_KEY"),
    ],
)
def test_production_refuses_default_secrets(
    make_app: MakeApp, override: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(named)):
        make_app(**production(**override))


def test_production_allows_no_mask_key_when_nothing_is_masked(make_app: MakeApp) -> None:
    make_app(**production(log_mask="", log_mask_key=""))
    make_app(**production(rate_limit="off", rate_limit_storage="memory://"))


def test_production_refuses_an_open_demo_key(make_app: MakeApp, demo_db: str) -> None:
    store(demo_db).add("demo", ["cdap"], "cli:tester")
    with pytest.raises(ConfigurationError, match="demo API key"):
        make_app(**production())
    store(demo_db).revoke("demo", "cli:tester")
    make_app(**production())


def test_an_unknown_environment_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="PDP_ENV"):
        Settings.from_env({"PDP_ENV": "prod"})


# -- Over a real server: the CLI, production refusal, secrets never logged ---------------------


def test_pdp_serve_in_production_with_defaults_exits_with_the_reason(tmp_path: Path) -> None:
    env = server_env(tmp_path, PDP_DATABASE_URL=f"sqlite:///{tmp_path / 'p.sqlite3'}")
    run_pdp(["db", "upgrade"], env, tmp_path)
    env["PDP_ENV"] = "production"
    done = subprocess.run(
        [*pdp_command(), "serve", "--bind", "127.0.0.1:1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "PDP_ENV=production refuses to start" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.e2e
def test_keys_and_tokens_never_reach_a_log(tmp_path: Path, demo_db: str) -> None:
    """A real server with the decision log shipping to the database: after allowed, refused,
    bad-key and bad-token requests, neither the key nor any token is in the server's output,
    the log segments, the decision_log and audit_log tables, or `pdp clients list`."""
    jwt_secret = secrets.token_urlsafe(32)
    env = server_env(
        tmp_path,
        PDP_DATABASE_URL=demo_db,
        PDP_DECISION_LOG="sync",
        PDP_DECISION_LOG_DIR=str(tmp_path / "log"),
        PDP_DECISION_LOG_SHIP_INTERVAL="0.2",
        PDP_JWT_SECRET=jwt_secret,
    )
    cli = subprocess.run(
        [*pdp_command(), "clients", "add", "cdap-front", "--services", "cdap"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    key = cli.stdout.strip()
    token = mint(Settings(jwt_secret=jwt_secret), "alice.martin")
    forged = mint(Settings(jwt_secret="f" * 16 + secrets.token_hex(16)), "alice.martin")
    with running(["serve", "--workers", "2"], env, tmp_path) as server:
        server.api_key = key
        assert server.check(user="bruno.petit", service="cdap")["allowed"] is True
        assert server.request("POST", "/v1/check", {"user": "x", "service": "afas"})[0] == 403
        server.api_key = key[:-2] + "zz"
        assert server.request("POST", "/v1/check", {"user": "x", "service": "cdap"})[0] == 401
        server.api_key = None
        for bearer_token in (token, forged):
            request_headers = {"Authorization": f"Bearer {bearer_token}"}
            status = _get(
                server.base_url + "/v1/organisations/mairie-montreuil/users", request_headers
            )
            assert status in (200, 401)
        deadline = dt.datetime.now() + dt.timedelta(seconds=10)
        while _logged(demo_db) < 1 and dt.datetime.now() < deadline:
            pass
    listed = run_pdp(["clients", "list"], env, tmp_path)
    assert "cdap-front" in listed
    places = {"server output": server.log(), "pdp clients list": listed}
    for path in (tmp_path / "log").rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_text(errors="replace")
    db = make_engine(demo_db)
    with db.connect() as conn:
        for table in ("decision_log", "audit_log", "api_clients"):
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()
            places[table] = json.dumps([[str(v) for v in r] for r in rows])
    db.dispose()
    assert _logged(demo_db) >= 1
    for secret in (key.rsplit("_", 1)[1], key, token, forged, jwt_secret):
        for where, content in places.items():
            assert secret not in content, f"a secret is in {where}"


def _get(url: str, headers: dict[str, str]) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10):
            return 200
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def _logged(url: str) -> int:
    db = make_engine(url)
    try:
        with db.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM decision_log")).scalar_one())
    finally:
        db.dispose()


def test_every_route_but_the_probes_refuses_a_call_without_credentials(make_app: MakeApp) -> None:
    """Only /healthz and /readyz answer without credentials: every other route of the app, with
    any method, answers 401 to a call carrying neither an API key nor a token."""
    app, _ = make_app(jwt_secret=SECRET)
    client = app.test_client()
    client.environ_base.pop("HTTP_X_API_KEY")
    open_routes = {"/healthz", "/readyz"}
    seen = 0
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/static", "/console")):
            # The console's pages want a signed-in session instead (its sign-in page is open):
            # test_console_auth.test_every_console_page_but_sign_in_needs_a_session.
            continue
        path = re.sub(
            r"<(?:\w+:)?(\w+)>", lambda m: "1" if "int:" in m.group(0) else "x", rule.rule
        )
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method, json={})
            seen += 1
            if rule.rule in open_routes:
                assert response.status_code == 200, rule.rule
            else:
                assert response.status_code == 401, (method, rule.rule, response.get_json())
    assert seen >= 30


def test_the_admin_check_takes_a_key_or_the_actors_own_token(make_app: MakeApp) -> None:
    client = make_app(jwt_secret=SECRET)[0].test_client()
    question = {
        "actor": "bruno.petit",
        "action": "group.edit",
        "target": "group:mairie-montreuil/CCAS",
    }
    assert client.post("/v1/admin/check", json=question).status_code == 200  # a front-end's key
    client.environ_base.pop("HTTP_X_API_KEY")
    own = client.post("/v1/admin/check", json=question, headers=bearer("bruno.petit"))
    assert own.status_code == 200
    other = client.post("/v1/admin/check", json=question, headers=bearer("alice.martin"))
    assert (other.status_code, error_code(other)) == (403, "ACTOR_MISMATCH")


def test_local_windows_reset_each_window_and_stay_bounded() -> None:
    from pdp.web.api.rate_limit import LocalWindows

    now = [1000.0]
    windows = LocalWindows([(2, 1), (3, 60)], clock=lambda: now[0])  # 2/second and 3/minute
    assert [windows.hit("a"), windows.hit("a")] == [None, None]
    assert windows.hit("a") == 1  # third in the same second: wait for the next second
    assert windows.hit("b") is None  # another caller, its own count
    now[0] = 1001.0
    assert windows.hit("a") is None  # a new second; the minute has 3 now
    now[0] = 1002.0
    assert windows.hit("a") == 18  # the minute window [960, 1020) is full: 1020 - 1002


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
