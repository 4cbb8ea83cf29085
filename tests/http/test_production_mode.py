"""Production mode, and secrets kept out of every log.

PDP_ENV=production refuses to start with a default or missing secret, an in-memory rate limit,
or the demo key open; over a real server, neither an API key nor a token reaches the server's
output, the log segments or the database.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from pdp.adapters.sql.database import make_engine
from pdp.core.config import Settings
from pdp.core.errors import ConfigurationError
from pdp.services.tokens import mint

from support.api_clients import production, store
from support.constants import SECRET, MakeApp
from support.servers import pdp_command, run_pdp, running, server_env

# -- Production mode ---------------------------------------------------------------------------


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
    # The key's 43 secret characters (they may hold "_"), the key, the tokens, the secret.
    for secret in (key.split("_", 2)[2], key, token, forged, jwt_secret):
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
