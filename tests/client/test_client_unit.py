"""The Python client (``pdp.client``): against a fake ``Transport``, tiny socket servers, and the
real app served over HTTP on the loopback interface.

R-DEC-2: the client fails closed, every failed call is a denial (or an empty listing).
R-DEC-3: every denial carries a stable reason code and a French message."""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

import pytest
from flask import Flask

from pdp.client import (
    BAD_RESPONSE,
    CLIENT_ERROR,
    TIMEOUT,
    UNAVAILABLE,
    CheckQuery,
    Client,
    Grant,
    PdpBadResponse,
    PdpError,
    PdpResponseError,
    PdpTimeout,
    PdpUnavailable,
    RawResponse,
    Reason,
    RevisionCache,
)
from pdp.client.cache import paris_today
from pdp.client.errors import MESSAGES

from support.constants import API_KEY

Answer = RawResponse | Exception | Callable[[Any], RawResponse]
TODAY = paris_today()


def ok(data: Any, status: int = 200) -> RawResponse:
    return RawResponse(status, "application/json", json.dumps(data).encode())


def error(status: int, code: str, message: str) -> RawResponse:
    return ok({"error": {"code": code, "message": message}}, status)


def decided(
    allowed: Any = True, revision: int = 1, did: str = "d1", **extra: Any
) -> dict[str, Any]:
    code, message = ("ALLOWED", "Accès autorisé.") if allowed else ("ROLE_NOT_GRANTED", "Non.")
    grants = (
        [{"group": "G", "service": "cdap", "role": "T18", "source": "group"}] if allowed else []
    )
    body = {"allowed": allowed, "reason": {"code": code, "message": message}, "grants": grants}
    return {**body, "decision_id": did, "revision": revision, "at": TODAY, **extra}


LISTING = {
    "user": "nadia.benali",
    "at": TODAY,
    "revision": 1,
    "decision_id": "p1",
    "services": [{"service": "cdap", "roles": ["T1"], "cafs": ["751", "931"], "grants": []}],
}


class FakeTransport:
    """Answers the scripted answers in order (a callable gets the request's JSON body)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, Any]] = []
        self.closed = False

    def send(self, method: str, path: str, body: bytes | None) -> RawResponse:
        sent = None if body is None else json.loads(body)
        self.calls.append((method, path, sent))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, RawResponse) else answer(sent)

    def close(self) -> None:
        self.closed = True


def fake(*answers: Answer, **options: Any) -> tuple[Client, FakeTransport]:
    transport = FakeTransport(*answers)
    return Client("http://pdp.invalid", "key", transport=transport, **options), transport


# -- answers parsed -------------------------------------------------------------------------


def test_check_sends_the_question_and_parses_an_allow() -> None:
    client, transport = fake(ok(decided(did="abc", revision=4)))
    decision = client.check("bruno.petit", "cdap", role="T18", caf="931", min_revision=3)
    question = {"user": "bruno.petit", "service": "cdap", "role": "T18", "caf": "931"}
    assert transport.calls == [("POST", "/v1/check", {**question, "min_revision": 3})]
    assert decision and decision.allowed and not decision.failed and not decision.cached
    assert (decision.reason.code, decision.decision_id, decision.revision) == ("ALLOWED", "abc", 4)
    assert decision.grants == (Grant("G", "cdap", "T18", "group"),)
    assert decision.at == TODAY


def test_admin_check_and_permissions_are_parsed() -> None:
    admin = decided(did="a1")
    del admin["at"], admin["grants"]
    client, transport = fake(ok(admin), ok(LISTING))
    decision = client.admin_check("bruno.petit", "group.roles.edit", "group:m/CCAS")
    listing = client.permissions("nadia benali/x", at="2026-01-15")
    asked = {"actor": "bruno.petit", "action": "group.roles.edit", "target": "group:m/CCAS"}
    path = "/v1/users/nadia%20benali%2Fx/permissions?at=2026-01-15"
    assert transport.calls == [("POST", "/v1/admin/check", asked), ("GET", path, None)]
    assert decision.allowed and decision.decision_id == "a1" and decision.grants == ()
    assert (listing.error, listing.decision_id, listing.revision) == (None, "p1", 1)
    assert listing.service_names() == ("cdap",) and listing.allows("cdap", caf="931")
    assert listing.allows("cdap") and listing.allows("cdap", "T1", "751")
    assert not any(listing.allows(*a) for a in [("cdap", "T18"), ("cdap", "T1", "691"), ("afas",)])


# -- failing closed (R-DEC-2) ---------------------------------------------------------------

FAILURES: list[tuple[str, Answer, str]] = [
    ("refused", PdpUnavailable("refused"), UNAVAILABLE),
    ("timeout", PdpTimeout("read"), TIMEOUT),
    ("html-502", RawResponse(502, "text/html", b"<html>Bad Gateway</html>"), BAD_RESPONSE),
    ("bad-key", error(401, "INVALID_API_KEY", "Clé d'API invalide."), "INVALID_API_KEY"),
    ("rate", error(429, "RATE_LIMITED", "Trop de requêtes."), "RATE_LIMITED"),
    ("stale", error(503, "POLICY_UNAVAILABLE", "Politique indisponible."), "POLICY_UNAVAILABLE"),
    ("allowed-str", ok(decided(allowed="true")), BAD_RESPONSE),
    ("allowed-1", ok(decided(allowed=1)), BAD_RESPONSE),
    ("revision-str", ok({**decided(), "revision": "1"}), BAD_RESPONSE),
    ("cut-json", RawResponse(200, "application/json", b'{"allowed": tr'), BAD_RESPONSE),
    ("text-200", RawResponse(200, "text/plain", b"true"), BAD_RESPONSE),
    ("json-500", ok({"oops": 1}, 500), BAD_RESPONSE),
    ("bug", RuntimeError("boom"), CLIENT_ERROR),
]
FAILURE_IDS = [f[0] for f in FAILURES]


def expected_message(code: str, answer: Answer) -> str:
    if isinstance(answer, RawResponse) and code not in MESSAGES:
        return str(json.loads(answer.body)["error"]["message"])
    return MESSAGES[code]


@pytest.mark.parametrize(("name", "answer", "code"), FAILURES, ids=FAILURE_IDS)
@pytest.mark.parametrize("method", ["check", "admin_check", "batch"])
def test_any_failure_denies_with_its_reason_rdec2_rdec3(
    name: str, answer: Answer, code: str, method: str
) -> None:
    if method == "batch" and name.startswith(("allowed", "revision")):  # the item is bad
        answer = ok({"results": [json.loads(answer.body)]})  # type: ignore[union-attr]
    client, transport = fake(answer)
    if method == "check":
        decision = client.check("bruno.petit", "cdap", role="T18")
    elif method == "admin_check":
        decision = client.admin_check("bruno.petit", "group.edit", "group:m/CCAS")
    else:
        decision = client.check_batch([{"user": "bruno.petit", "service": "cdap"}])[0]
    assert len(transport.calls) == 1
    assert decision.allowed is False and not decision and decision.failed
    assert decision.decision_id is None and decision.revision is None
    assert decision.reason == Reason(code, expected_message(code, answer))


@pytest.mark.parametrize(("name", "answer", "code"), FAILURES, ids=FAILURE_IDS)
def test_a_failed_listing_is_empty_and_says_why_rdec2(name: str, answer: Answer, code: str) -> None:
    if name.startswith("allowed"):  # a listing with a bad revision type instead
        answer, code = ok({**LISTING, "revision": "1"}), BAD_RESPONSE
    client, _ = fake(answer)
    listing = client.permissions("nadia.benali")
    assert listing.services == () and listing.error is not None
    assert listing.error.code == code
    assert not listing.allows("cdap") and listing.decision_id is None


STRICT: list[tuple[Answer, type[PdpError], str, int | None]] = [
    (PdpUnavailable("x"), PdpUnavailable, UNAVAILABLE, None),
    (PdpTimeout("x"), PdpTimeout, TIMEOUT, None),
    (RawResponse(502, "text/html", b"<html/>"), PdpBadResponse, BAD_RESPONSE, 502),
    (error(401, "INVALID_API_KEY", "Clé."), PdpResponseError, "INVALID_API_KEY", 401),
    (error(429, "RATE_LIMITED", "Trop."), PdpResponseError, "RATE_LIMITED", 429),
    (ok(decided(allowed="true")), PdpBadResponse, BAD_RESPONSE, 200),
    (RuntimeError("boom"), PdpError, CLIENT_ERROR, None),
]


@pytest.mark.parametrize(("answer", "kind", "code", "status"), STRICT)
@pytest.mark.parametrize("method", ["check", "batch", "permissions"])
def test_strict_mode_raises_the_matching_error(
    answer: Answer, kind: type[PdpError], code: str, status: int | None, method: str
) -> None:
    if method == "permissions" and kind is PdpBadResponse and status == 200:
        answer = ok({**LISTING, "services": "cdap"})
    client, _ = fake(answer, strict=True)
    with pytest.raises(kind) as raised:
        if method == "check":
            client.check("bruno.petit", "cdap")
        elif method == "batch":
            client.check_batch([CheckQuery("bruno.petit", "cdap")])
        else:
            client.permissions("bruno.petit")
    assert (raised.value.code, raised.value.status) == (code, status)
    if kind is PdpResponseError:
        assert not isinstance(raised.value, PdpBadResponse)
    if code == CLIENT_ERROR:
        assert isinstance(raised.value.__cause__, RuntimeError)


@pytest.mark.parametrize("strict", [False, True])
def test_a_rules_denial_is_an_answer_not_a_failure_rdec3(strict: bool) -> None:
    client, _ = fake(ok(decided(False)), ok({"results": [decided(False)]}), strict=strict)
    decision = client.check("chloe.roux", "cdap", role="T18")
    assert not decision and decision.reason.code == "ROLE_NOT_GRANTED" and not decision.failed
    assert client.check_batch([CheckQuery("chloe.roux", "cdap")])[0].allowed is False


def test_constructor_refuses_nonsense() -> None:
    bad: list[dict[str, Any]] = [{"timeout": 0}, {"retries": -1}, {"batch_max": 0}]
    for options in bad:
        with pytest.raises(ValueError):
            Client("http://pdp.invalid", "key", **options)
    with pytest.raises(ValueError):
        Client("ftp://pdp.invalid", "key")


# -- batches --------------------------------------------------------------------------------


def echo(body: Any) -> RawResponse:
    """A batch answer deciding each check, its decision id naming the user."""
    return ok({"results": [decided(did=c["user"]) for c in body["checks"]]})


def test_batch_item_errors_answer_per_item() -> None:
    unknown = {"error": {"code": "UNKNOWN_ROLE", "message": "Rôle inconnu : 'T99'."}}
    client, transport = fake(ok({"results": [decided(did="a"), unknown, decided(False)]}))
    asked = [{"user": "c", "service": "cdap", "role": "T99"}, {"user": "e", "service": "cdap"}]
    out = client.check_batch([CheckQuery("lea", "afas", at="2026-01-15"), *asked], min_revision=2)
    first = {"user": "lea", "service": "afas", "at": "2026-01-15"}
    assert transport.calls[0][2] == {"checks": [first, *asked], "min_revision": 2}
    assert [d.allowed for d in out] == [True, False, False]
    assert [d.reason.code for d in out] == ["ALLOWED", "UNKNOWN_ROLE", "ROLE_NOT_GRANTED"]
    assert out[1].failed and out[1].reason.message == "Rôle inconnu : 'T99'."
    assert not out[2].failed


def test_a_malformed_batch_answer_denies_every_item_rdec2() -> None:
    client, _ = fake(ok({"results": [decided()]}), ok({"results": [decided(), {"error": "X"}]}))
    two = [CheckQuery("a", "cdap"), CheckQuery("b", "cdap")]
    assert [(d.allowed, d.reason.code) for d in client.check_batch(two)] == [
        (False, BAD_RESPONSE)
    ] * 2
    out = client.check_batch(two)  # an item's error that is no {code, message}
    assert [d.allowed for d in out] == [False, False] and all(d.failed for d in out)


def test_large_batches_are_split_in_order_and_a_failed_chunk_denies_only_its_items() -> None:
    client, transport = fake(echo, PdpUnavailable("reset"), echo, batch_max=2)
    out = client.check_batch([CheckQuery(f"u{i}", "cdap") for i in range(5)])
    sent = [[c["user"] for c in call[2]["checks"]] for call in transport.calls]
    assert sent == [["u0", "u1"], ["u2", "u3"], ["u4"]]
    assert [d.decision_id for d in out] == ["u0", "u1", None, None, "u4"]
    assert [d.reason.code for d in out[2:4]] == [UNAVAILABLE, UNAVAILABLE]


# -- the cache ------------------------------------------------------------------------------


def test_revision_cache_expires_by_its_clock_and_bounds_its_size() -> None:
    now = [100.0]
    cache: RevisionCache[str] = RevisionCache(5, 2, clock=lambda: now[0], today=lambda: "D")
    cache.put("a", "A", 1, "D")
    now[0] = 104.9
    assert cache.get("a", min_revision=None, asked_day=None) == "A"
    now[0] = 105.0
    assert cache.get("a", min_revision=None, asked_day=None) is None and len(cache) == 0
    for key in "abc":  # LRU: "a" read after "b" was put, so "b" goes
        cache.put(key, key.upper(), 1, "D")
        if key == "b":
            assert cache.get("a", min_revision=None, asked_day=None) == "A"
    assert [cache.get(k, min_revision=None, asked_day=None) for k in "abc"] == ["A", None, "C"]
    assert (cache.hits, cache.misses) == (4, 2)
    with pytest.raises(ValueError):
        RevisionCache(0)


def test_revision_cache_drops_answers_older_than_a_revision_seen_or_asked() -> None:
    day = ["2026-03-01"]
    cache: RevisionCache[str] = RevisionCache(60, clock=lambda: 0.0, today=lambda: day[0])
    cache.put("old", "O", 3, "2026-03-01")
    cache.saw(None)
    cache.saw(2)
    assert cache.get("old", min_revision=3, asked_day=None) == "O"
    assert cache.get("old", min_revision=4, asked_day=None) is None
    cache.put("old", "O", 3, "2026-03-01")
    cache.put("new", "N", 4, "2026-03-01")  # an answer at a newer revision
    assert cache.get("old", min_revision=None, asked_day=None) is None
    assert cache.latest_revision == 4
    cache.put("dated", "X", 4, "2026-03-01")
    day[0] = "2026-03-02"  # midnight: "today" answers go, answers about a named day stay
    assert cache.get("new", min_revision=None, asked_day=None) is None
    assert cache.get("dated", min_revision=None, asked_day="2026-03-01") == "X"


def test_client_cache_hits_keep_the_decision_id_and_make_no_call() -> None:
    client, transport = fake(ok(decided(did="first")), ok(decided(did="other")), cache_ttl=30)
    first = client.check("bruno.petit", "cdap", role="T18", caf="931")
    again = client.check("bruno.petit", "cdap", role="T18", caf="931")
    assert len(transport.calls) == 1 and not first.cached
    assert again.cached and again.decision_id == "first" and again.allowed
    assert client.check("bruno.petit", "cdap", role="T18", caf="751").decision_id == "other"
    assert len(transport.calls) == 2


def test_client_cache_never_keeps_failures() -> None:
    answers: list[Answer] = [PdpUnavailable("x"), ok(decided("true")), ok(decided(did="ok"))]
    client, transport = fake(*answers, cache_ttl=30)
    codes = [client.check("u", "cdap").reason.code for _ in range(4)]
    assert codes == [UNAVAILABLE, BAD_RESPONSE, "ALLOWED", "ALLOWED"]
    assert len(transport.calls) == 3


def test_client_cache_follows_revisions_and_min_revision() -> None:
    client, transport = fake(
        ok(decided(did="a1")),
        ok(decided(did="b2", revision=2)),
        ok(decided(did="a2", revision=2)),
        cache_ttl=30,
    )
    client.check("a", "cdap")
    client.check("b", "cdap")  # reports revision 2: the answer about "a" (revision 1) is stale
    assert client.latest_revision == 2
    assert client.check("a", "cdap").decision_id == "a2"
    assert client.check("a", "cdap", min_revision=2).cached  # revision 2 is new enough
    assert len(transport.calls) == 3
    client2, transport2 = fake(ok(decided(did="x")), ok(decided(did="y", revision=5)), cache_ttl=9)
    client2.check("a", "cdap")
    assert client2.check("a", "cdap", min_revision=5).decision_id == "y"
    assert transport2.calls[1][2]["min_revision"] == 5


def test_client_cache_only_serves_a_today_answer_for_the_same_day() -> None:
    client, transport = fake(*[ok(decided(at="2000-01-01"))] * 2, ok(decided()), cache_ttl=30)
    client.check("a", "cdap")  # the server decided for a day that is not today here
    client.check("a", "cdap")
    assert client.check("a", "cdap", at="2000-01-01").cached is False
    assert client.check("a", "cdap", at="2000-01-01").cached is True
    assert len(transport.calls) == 3


def test_client_cache_serves_batches_and_listings() -> None:
    client, transport = fake(ok(decided(did="a")), echo, ok(LISTING), cache_ttl=30)
    client.check("a", "cdap")
    out = client.check_batch([CheckQuery("a", "cdap"), CheckQuery("b", "cdap")])
    assert transport.calls[1][2] == {"checks": [{"user": "b", "service": "cdap"}]}
    assert [(d.decision_id, d.cached) for d in out] == [("a", True), ("b", False)]
    assert client.check_batch([CheckQuery("b", "cdap")])[0].cached
    assert client.permissions("nadia.benali") == client.permissions("nadia.benali")
    assert len(transport.calls) == 3


def test_without_a_ttl_nothing_is_cached() -> None:
    client, transport = fake(*[ok(decided())] * 3, ok(LISTING), ok(LISTING), cache_ttl=0)
    assert not any(client.check("a", "cdap").cached for _ in range(3))
    client.permissions("n")
    client.permissions("n")
    assert len(transport.calls) == 5


# -- real sockets ---------------------------------------------------------------------------


class TinyServer:
    """A listening socket on 127.0.0.1 handing each accepted connection to ``handle``."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.handle, self.accepted = handle, 0
        self.held: list[socket.socket] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.02)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            self.held.append(conn)
            self.handle(conn)

    def __enter__(self) -> TinyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.sock.close()


def answer_500(conn: socket.socket) -> None:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    body = json.dumps({"error": {"code": "ENGINE_ERROR", "message": "Erreur."}}).encode()
    head = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
    conn.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)


def test_a_refused_connection_denies_unavailable_rdec2() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]  # closed on leaving: nothing listens there any more
    decision = Client(f"http://127.0.0.1:{port}", "key", retries=1).check("a", "cdap")
    assert (decision.allowed, decision.reason.code, decision.failed) == (False, UNAVAILABLE, True)


@pytest.mark.parametrize("retries", [0, 2])
def test_connections_closed_unanswered_are_tried_retries_plus_one_times(retries: int) -> None:
    server = TinyServer(lambda conn: conn.close())  # accepts, then closes unanswered
    with server, Client(server.url, "key", retries=retries, timeout=2) as client:
        decision = client.check("a", "cdap")
    assert (decision.allowed, decision.reason.code) == (False, UNAVAILABLE)
    assert server.accepted == retries + 1


def test_a_silent_server_times_out_once_without_retry() -> None:
    timeout = 0.3
    server = TinyServer(lambda conn: None)  # accepts, never reads nor answers
    with server, Client(server.url, "key", timeout=timeout, retries=3) as client:
        started = time.monotonic()
        decision = client.check("a", "cdap")
        elapsed = time.monotonic() - started
    assert (decision.allowed, decision.reason.code) == (False, TIMEOUT)
    assert elapsed < timeout * 3 + 1 and server.accepted == 1


@pytest.mark.parametrize("strict", [False, True])
def test_an_http_500_is_not_retried(strict: bool) -> None:
    with TinyServer(answer_500) as server, Client(server.url, "k", retries=3, strict=strict) as c:
        if strict:
            with pytest.raises(PdpResponseError) as raised:
                c.check("a", "cdap")
            assert (raised.value.status, raised.value.code) == (500, "ENGINE_ERROR")
        else:
            assert c.check("a", "cdap").reason == Reason("ENGINE_ERROR", "Erreur.")
    assert server.accepted == 1


# -- the real app over HTTP (every backend) -------------------------------------------------


class Threaded(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class KeepAlive(WSGIRequestHandler):
    """A WSGI handler keeping HTTP/1.1 connections alive, so that reuse can be seen: werkzeug's
    development server closes every connection (``Connection: close``), as does wsgiref's."""

    protocol_version = "HTTP/1.1"

    def handle(self) -> None:
        BaseHTTPRequestHandler.handle(self)  # request after request, until the client closes

    def handle_one_request(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or not self.parse_request():
            self.close_connection = True
            return
        body = io.BytesIO(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        environ = {**self.get_environ(), "REMOTE_PORT": str(self.client_address[1])}
        handler = ServerHandler(body, self.wfile, self.get_stderr(), environ, multithread=True)  # type: ignore[arg-type]
        handler.http_version = "1.1"
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def served(app: Flask) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """The real app served on 127.0.0.1 in a thread; the (address, port) of each request."""
    peers: list[tuple[str, int]] = []

    def counted(environ: dict[str, Any], start_response: Any) -> Any:
        peers.append((environ["REMOTE_ADDR"], int(environ["REMOTE_PORT"])))
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, counted, Threaded, KeepAlive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", peers
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def real(served: tuple[str, list[tuple[str, int]]]) -> Iterator[Client]:
    with Client(served[0], API_KEY) as client:
        yield client


def test_real_server_allows_with_grants(real: Client, today: dt.date) -> None:
    decision = real.check("bruno.petit", "cdap", role="T18", caf="931")
    assert decision.allowed and decision.reason.code == "ALLOWED" and not decision.failed
    assert Grant("CCAS-INSTRUCTION", "cdap", "T18", "group") in decision.grants
    assert decision.decision_id and decision.revision == 1 and decision.at == today.isoformat()


def test_real_server_denials_carry_their_reason_rdec3(real: Client) -> None:
    role = real.check("chloe.roux", "cdap", role="T18")
    assert (role.allowed, role.reason.code, role.failed) == (False, "ROLE_NOT_GRANTED", False)
    assert role.reason.message == (
        "Aucun groupe de l'utilisateur ne porte ce rôle pour ce service à cette date."
    )
    caf = real.check("nadia.benali", "cdap", caf="691")
    assert (caf.allowed, caf.reason.code) == (False, "CAF_NOT_SUBSCRIBED")
    closed = real.check("david.leroy", "cdap")
    assert (closed.allowed, closed.reason.code) == (False, "USER_CLOSED")


def test_real_server_batch_and_listing(real: Client) -> None:
    out = real.check_batch(
        [
            {"user": "lea.fontaine", "service": "afas"},
            {"user": "chloe.roux", "service": "cdap", "role": "T99"},
            {"user": "chloe.roux", "service": "cdap", "role": "T18"},
        ]
    )
    assert [d.reason.code for d in out] == ["ALLOWED", "UNKNOWN_ROLE", "ROLE_NOT_GRANTED"]
    assert out[1].failed and not out[2].failed and out[0].decision_id != out[2].decision_id
    listing = real.permissions("nadia.benali")
    assert listing.error is None and listing.service_names() == ("cdap",)
    assert (listing.services[0].roles, listing.services[0].cafs) == (("T1",), ("751", "931"))
    assert listing.allows("cdap", "T1", "931") and not listing.allows("cdap", "T18")


def test_real_server_admin_check(real: Client) -> None:
    target = "group:mairie-montreuil/CCAS-INSTRUCTION"
    manager = real.admin_check("bruno.petit", "group.roles.edit", target)
    assert manager.allowed and manager.decision_id
    member = real.admin_check("chloe.roux", "group.roles.edit", target)
    assert not member.allowed and not member.failed and member.reason.code != "ALLOWED"


def test_real_server_refuses_a_bad_key_rdec2(served: tuple[str, list[Any]]) -> None:
    with Client(served[0], "pdp_000000000009_" + "x" * 43) as client:
        decision = client.check("bruno.petit", "cdap", role="T18")
        assert (decision.allowed, decision.reason.code) == (False, "INVALID_API_KEY")
        assert decision.failed and decision.reason.message
    with Client(served[0], "nope", strict=True) as client, pytest.raises(PdpResponseError) as err:
        client.permissions("bruno.petit")
    assert (err.value.status, err.value.code) == (401, "INVALID_API_KEY")


def test_real_server_connections_are_reused(
    served: tuple[str, list[tuple[str, int]]], real: Client
) -> None:
    for _ in range(20):
        assert real.check("bruno.petit", "cdap", role="T18")
    pool = real._transport._pool  # type: ignore[attr-defined]
    assert (pool.num_connections, pool.num_requests) == (1, 20)
    assert len(served[1]) == 20 and len(set(served[1])) == 1


def test_real_server_cached_answers_make_no_request(served: tuple[str, list[Any]]) -> None:
    with Client(served[0], API_KEY, cache_ttl=30) as client:
        first = client.check("bruno.petit", "cdap", role="T18")
        second = client.check("bruno.petit", "cdap", role="T18")
    assert second.cached and second.decision_id == first.decision_id and len(served[1]) == 1


def test_latest_revision_is_kept_without_a_cache() -> None:
    """``latest_revision`` is the newest revision reported, cache or not."""
    client, _ = fake(ok(decided(revision=3)), ok(decided(revision=2)))
    assert client.latest_revision == 0
    client.check("bruno.petit", "cdap")
    client.check("bruno.petit", "cdap")
    assert client.latest_revision == 3


@pytest.mark.parametrize("item", [{"error": "X"}, {"error": ["X"]}])
def test_a_batch_item_error_that_is_not_an_object_is_a_bad_response(item: Any) -> None:
    """R-DEC-2: denied with PDP_BAD_RESPONSE (not a client error), and strict mode raises it."""
    client, _ = fake(ok({"results": [item]}))
    [decision] = client.check_batch([CheckQuery("bruno.petit", "cdap")])
    assert not decision.allowed and decision.reason.code == "PDP_BAD_RESPONSE"
    strict, _ = fake(ok({"results": [item]}), strict=True)
    with pytest.raises(PdpBadResponse):
        strict.check_batch([CheckQuery("bruno.petit", "cdap")])


def test_a_boolean_revision_is_a_bad_response() -> None:
    client, _ = fake(ok(decided(revision=True)))  # type: ignore[arg-type]
    assert client.check("bruno.petit", "cdap").reason.code == "PDP_BAD_RESPONSE"


def test_real_server_features_r_dec_1_r_dec_4(real: Client) -> None:
    # A check may ask for a feature of a service (a tab of a Cdap file) instead of a role.
    payments = real.check("bruno.petit", "cdap", feature="paiements", caf="931")
    assert payments.allowed and {g.role for g in payments.grants} == {"T18"}
    denied = real.check("chloe.roux", "cdap", feature="paiements")
    assert (denied.allowed, denied.reason.code, denied.failed) == (
        False,
        "FEATURE_NOT_GRANTED",
        False,
    )
    refused = real.check("chloe.roux", "cdap", role="T1", feature="paiements")
    assert (refused.allowed, refused.reason.code, refused.failed) == (
        False,
        "ROLE_AND_FEATURE",
        True,
    )
    batch = real.check_batch(
        [
            {"user": "chloe.roux", "service": "cdap", "feature": "synthese"},
            {"user": "chloe.roux", "service": "cdap", "feature": "rsa"},
        ]
    )
    assert [d.reason.code for d in batch] == ["ALLOWED", "FEATURE_NOT_GRANTED"]
    # The listing names the features the user's roles open: one call renders every tab.
    listing = real.permissions("chloe.roux")
    assert listing.allows("cdap", feature="synthese") and not listing.allows("cdap", feature="rsa")
    assert listing.services[0].features == ("synthese", "resume")
    afas = real.permissions("lea.fontaine")
    assert afas.services[0].features is None  # Afas declares none: its roles open all of it
    assert not afas.allows("afas", feature="synthese")  # nothing to open: denied
