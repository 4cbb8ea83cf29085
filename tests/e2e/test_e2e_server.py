"""End to end: a real ``pdp serve`` (gunicorn, two worker processes) and ``pdp quickstart``,
spoken to over real HTTP on the loopback interface.

The database is a temporary SQLite file prepared with the real commands (``pdp db upgrade``,
``pdp demo load``). Writes made by another process (here, the test) must reach every worker
through the change log within a few polls of ``PDP_REFRESH_INTERVAL``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pdp.adapters.sql.database import UnitOfWork, make_engine, record_change
from pdp.adapters.sql.models import Group, Membership, User
from pdp.core.clock import paris_today

from support.servers import (
    CHANGE_TIMEOUT,
    REFRESH_INTERVAL,
    STARTUP_TIMEOUT,
    Served,
    Server,
    answers_from_every_worker,
    demo_server,
    opener,
    run_pdp,
    running,
    server_env,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the read-only tests of this module."""
    with demo_server(tmp_path_factory.mktemp("serve")) as s:
        yield s


@pytest.fixture(scope="module")
def server(served: Served) -> Server:
    return served.server


def today() -> str:
    return paris_today().isoformat()


# -- reading over HTTP -------------------------------------------------------------------------


def test_health(server: Server) -> None:
    assert server.request("GET", "/healthz") == (200, {"status": "ok", "revision": 1})


def test_check_allowed_with_every_grant(server: Server) -> None:
    answer = server.check(user="bruno.petit", service="cdap", role="T18")
    assert answer["allowed"] is True
    assert answer["reason"]["code"] == "ALLOWED"
    assert answer["grants"] == [
        {"group": "CCAS-INSTRUCTION", "service": "cdap", "role": "T18", "source": "group"},
        {"group": "CCAS", "service": "cdap", "role": "T18", "source": "group"},
    ]
    assert answer["revision"] == 1
    assert answer["at"] == today()
    assert len(answer["decision_id"]) == 32
    again = server.check(user="bruno.petit", service="cdap", role="T18")
    assert again["decision_id"] != answer["decision_id"]


def test_check_denied_with_reason(server: Server) -> None:
    answer = server.check(user="chloe.roux", service="cdap", role="T18")
    assert answer["allowed"] is False
    assert answer["reason"]["code"] == "ROLE_NOT_GRANTED"
    assert answer["reason"]["message"]
    assert answer["grants"] == []


def test_batch_answers_each_item_in_order(server: Server) -> None:
    status, answer = server.request(
        "POST",
        "/v1/check/batch",
        {
            "checks": [
                {"user": "lea.fontaine", "service": "afas"},
                {"user": "emma.garnier", "service": "cdap", "role": "T18"},
                {"user": "chloe.roux", "service": "cdap", "role": "T99"},
                {"user": "nadia.benali", "service": "cdap", "caf": "691"},
            ]
        },
    )
    assert status == 200, answer
    results = answer["results"]
    assert len(results) == 4
    assert results[0]["allowed"] is True
    assert {(g["source"], g["role"]) for g in results[0]["grants"]} == {
        ("group", "declarer"),
        ("afas_profile", "declaration"),
    }
    assert (results[1]["allowed"], results[1]["reason"]["code"]) == (False, "GROUP_CLOSED")
    assert results[2] == {"error": results[2]["error"]}
    assert results[2]["error"]["code"] == "UNKNOWN_ROLE"
    assert (results[3]["allowed"], results[3]["reason"]["code"]) == (False, "CAF_NOT_SUBSCRIBED")


def test_permissions(server: Server) -> None:
    status, answer = server.request("GET", "/v1/users/nadia.benali/permissions")
    assert status == 200, answer
    assert re.fullmatch(r"[0-9a-f]{32}", answer.pop("decision_id"))
    assert answer == {
        "user": "nadia.benali",
        "at": today(),
        "revision": 1,
        "services": [
            {
                "service": "cdap",
                "roles": ["T1"],
                "features": ["synthese", "resume"],
                "cafs": ["751", "931"],
                "grants": [
                    {"group": "CONSULTATION", "service": "cdap", "role": "T1", "source": "group"}
                ],
            }
        ],
    }
    status, answer = server.request("GET", "/v1/users/nobody.here/permissions")
    assert (status, answer["error"]["code"]) == (404, "UNKNOWN_USER")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"user": "bruno.petit", ', "INVALID_JSON"),
        ({"user": "bruno.petit", "service": "cdap", "colour": "blue"}, "UNKNOWN_FIELD"),
        ({"user": "bruno.petit"}, "MISSING_FIELD"),
        ({"user": "bruno.petit", "service": "cdap", "at": "2026-02-30"}, "VALIDATION_ERROR"),
        ({"user": "bruno.petit", "service": "nosuchservice"}, "UNKNOWN_SERVICE"),
    ],
)
def test_bad_body_is_a_400_json_error(server: Server, body: Any, code: str) -> None:
    status, answer = server.request("POST", "/v1/check", body)
    assert status == 400, answer
    assert answer["error"]["code"] == code
    assert answer["error"]["message"]
    assert "Traceback" not in json.dumps(answer)


def _raw(server: Server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library in between); the status, headers, body."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (
            b"GET /v1/users/" + b"a" * 5000 + b"/permissions HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "URI_TOO_LONG",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
            431,
            "HEADERS_TOO_LARGE",
        ),
        (b"NOT A REQUEST LINE\r\n\r\n", 400, "BAD_REQUEST"),
        (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400, "BAD_REQUEST"),
    ],
)
def test_what_gunicorn_refuses_itself_is_json_too(
    server: Server, request_bytes: bytes, status: int, code: str
) -> None:
    """A request the server refuses before the app sees it (an URL over 4 KB, a header over
    8 KB, a broken request line): the API's JSON error, not gunicorn's HTML page."""
    got, headers, body = _raw(server, request_bytes)
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]
    assert b"html" not in body.lower()


def test_openapi_document_is_served(server: Server) -> None:
    status, answer = server.request("GET", "/v1/openapi.json")
    assert status == 200
    assert answer["openapi"].startswith("3.")
    assert "/v1/check" in answer["paths"]


def test_the_workers_checkpoint_the_audit_chain(served: Served) -> None:
    """Each worker starts its checkpoint writer after the fork (pdp.web.server) and checkpoints the
    audit chain's head at once, without any request: the demo's 70 records and the API key's
    one; `pdp audit verify` then compares the chain with it."""
    workdir = served.server.log_path.parent
    checkpoints = workdir / "checkpoints"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not list(checkpoints.glob("audit-*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    names = [p.name for p in checkpoints.glob("audit-*.json")]
    assert len(names) == 1 and names[0].startswith("audit-g0000-000000000071-"), names
    env = server_env(
        workdir, PDP_DATABASE_URL=served.database_url, PDP_AUDIT_CHECKPOINT_DIR=str(checkpoints)
    )
    out = run_pdp(["audit", "verify"], env, workdir)
    assert out.startswith("ok: 71 records, chain intact, ")
    assert f"it holds the latest checkpoint {names[0]} (written " in out


# -- a write made elsewhere reaches every worker -----------------------------------------------


def wait_for_change(server: Server, ask: Callable[[], dict[str, Any]], wanted: Any) -> None:
    """Wait until ``ask()`` answers ``wanted``; then every later answer, of every worker, must."""
    deadline = time.monotonic() + CHANGE_TIMEOUT
    seen = ask()
    while seen != wanted:
        if time.monotonic() > deadline:
            pytest.fail(f"the change was not visible within {CHANGE_TIMEOUT} s: {seen!r}")
        time.sleep(0.05)
        seen = ask()
    # A worker polls the change log at most every PDP_REFRESH_INTERVAL, before answering.
    time.sleep(2 * REFRESH_INTERVAL)
    answers = answers_from_every_worker(server, ask)
    assert answers == [wanted] * len(answers)


def write(database_url: str, change: Callable[[Session], int], reason: str) -> int:
    """Commit ``change`` (which returns the organisation it touched) from this process, as an
    administration tool would, numbered in the change log; return the new revision."""
    db = make_engine(database_url)
    try:
        with UnitOfWork(sessionmaker(db)).begin() as session:
            return record_change(session, [change(session)], reason)
    finally:
        db.dispose()


def test_a_committed_write_reaches_every_worker(tmp_path: Path) -> None:
    day = paris_today()

    def chloe_roux(session: Session) -> User:
        return session.execute(select(User).where(User.login == "chloe.roux")).scalar_one()

    def close_chloes_membership(session: Session) -> int:
        # R-TIME-1: a record is closed on its closing day.
        user = chloe_roux(session)
        membership = session.execute(
            select(Membership).where(Membership.user_id == user.id)
        ).scalar_one()
        membership.closes_on = day
        assert user.organisation_id is not None
        return user.organisation_id

    def open_chloe_in_instruction(session: Session) -> int:
        user = chloe_roux(session)
        group = session.execute(select(Group).where(Group.code == "CCAS-INSTRUCTION")).scalar_one()
        session.add(Membership(user_id=user.id, group_id=group.id, opens_on=day))
        return group.organisation_id

    with demo_server(tmp_path) as served:
        server = served.server

        def chloe(role: str) -> dict[str, Any]:
            answer = server.check(user="chloe.roux", service="cdap", role=role)
            return {
                "allowed": answer["allowed"],
                "code": answer["reason"]["code"],
                "groups": [g["group"] for g in answer["grants"]],
                "revision": answer["revision"],
            }

        before = answers_from_every_worker(server, lambda: chloe("T1"))
        wanted = {"allowed": True, "code": "ALLOWED", "groups": ["CCAS-ACCUEIL"], "revision": 1}
        assert before == [wanted] * len(before)

        # 1. Close chloe.roux's only membership, today.
        assert write(served.database_url, close_chloes_membership, "e2e: close") == 2
        closed = {"allowed": False, "code": "NO_MEMBERSHIP", "groups": [], "revision": 2}
        wait_for_change(server, lambda: chloe("T1"), closed)
        status, permissions = server.request("GET", "/v1/users/chloe.roux/permissions")
        assert (status, permissions["services"], permissions["revision"]) == (200, [], 2)

        # 2. Open a membership in CCAS-INSTRUCTION, which carries T18.
        assert write(served.database_url, open_chloe_in_instruction, "e2e: open") == 3
        opened = {"allowed": True, "code": "ALLOWED", "groups": ["CCAS-INSTRUCTION"], "revision": 3}
        wait_for_change(server, lambda: chloe("T18"), opened)

        # Past days are decided as they were (R-TIME-2): yesterday chloe.roux had T1, not T18.
        yesterday = (day - dt.timedelta(days=1)).isoformat()
        past = server.check(user="chloe.roux", service="cdap", role="T18", at=yesterday)
        assert (past["allowed"], past["reason"]["code"]) == (False, "ROLE_NOT_GRANTED")
    # `running` has asserted that gunicorn stopped cleanly on SIGTERM.


# -- pdp quickstart ----------------------------------------------------------------------------


def test_quickstart_serves_the_demo_from_a_fresh_file(tmp_path: Path) -> None:
    (tmp_path / "pdp-demo.sqlite3").write_text("not a database: quickstart starts afresh")
    env = server_env(tmp_path)
    with running(["quickstart"], env, tmp_path) as server:
        assert server.request("GET", "/healthz") == (200, {"status": "ok", "revision": 1})
        # The settings for another shell: the same database, the demo key, the address.
        env_file = (tmp_path / "pdp-demo.env").read_text()
        printed = re.search(r"^export PDP_KEY=(pdp_\S+)$", env_file, re.M)
        assert printed, env_file
        assert f"export PDP_DATABASE_URL=sqlite:///{tmp_path}/pdp-demo.sqlite3\n" in env_file
        assert f"export U={server.base_url}\n" in env_file
        assert ". .venv/bin/activate && . ./pdp-demo.env" in server.log()
        assert (
            server.request("POST", "/v1/check", {"user": "bruno.petit", "service": "cdap"})[0]
            == 401
        )  # without the key
        server.api_key = printed.group(1)
        answer = server.check(user="bruno.petit", service="cdap", role="T18")
        assert (answer["allowed"], answer["revision"]) == (True, 1)
        status, answer = server.request("GET", "/v1/services/cdap/users?limit=1000")
        assert status == 200, answer
        logins = [u["login"] for u in answer["users"]]
        assert logins == ["nadia.benali", "bruno.petit", "chloe.roux"]
        # The console's demo sign-in page, as printed.
        assert f"http://127.0.0.1:{server.base_url.rsplit(':', 1)[1]}/console/" in server.log()
        with opener.open(server.base_url + "/console/connexion", timeout=10) as page:
            html = page.read().decode()
        assert "Se connecter en tant que alice.martin" in html
    assert (tmp_path / "pdp-demo.sqlite3").stat().st_size > 0
    assert not (tmp_path / "pdp.sqlite3").exists()  # the default database was not touched
    output = server.log()
    assert f"schema created: {tmp_path / 'pdp-demo.sqlite3'}" in output
    assert "demo data loaded (revision 1)" in output
