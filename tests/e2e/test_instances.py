"""End to end: two ``pdp serve`` instances sharing one real PostgreSQL cluster.

The cluster is this module's own: ``initdb`` into a temporary directory (trust authentication,
loopback only, a free port), started and stopped with ``pg_ctl``, deleted at the end. Each
instance is ``pdp serve --workers 2`` with a refresh interval far longer than the module runs, so
that a change written through instance A can reach instance B quickly only by the PostgreSQL
LISTEN/NOTIFY watcher (``PDP_WATCHER``, channel ``pdp_policy``), and a fresh answer on a stale
instance only by ``min_revision``. Everything goes through the real HTTP API.

Without ``initdb`` the module is skipped, unless ``PDP_TEST_POSTGRES_URL`` is set (CI asked for
PostgreSQL): then it fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pwd
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import pytest

from pdp.core.clock import PARIS, paris_today
from pdp.core.config import Settings
from pdp.services.tokens import mint

from support.constants import MAIRIE
from support.constants import PARTNER_ADMIN as ADMIN
from support.servers import Server, add_key, free_port, run_pdp, running, server_env

pytestmark = pytest.mark.e2e

POSTGRES_ENV = "PDP_TEST_POSTGRES_URL"
SECRET = "e2e-instances-" + "k" * 30  # PDP_JWT_SECRET of every instance
REFRESH_INTERVAL = 120.0  # longer than the module runs: only the watcher explains a fast change
MIN_REVISION_WAIT = 0.5  # PDP_MIN_REVISION_WAIT of the instances
PROPAGATION_LIMIT = 1.0  # seconds for a write through A to show on B
REPAIR_LIMIT = 2.0  # seconds, after the watcher's connection was killed
READY_LIMIT = 10.0  # seconds for an instance to be ready again once PostgreSQL is back
WATCHER_MAX_PAUSE = 5.0  # the longest pause of a watcher between two connection attempts
KILL_ROUNDS = 5  # times the watchers' connections are killed in a row
MIDNIGHT_LEAD = 3.0  # seconds of fake clock before midnight, beyond the instance's start-up

# Talk to 127.0.0.1 directly, whatever http_proxy the environment sets.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- a throw-away PostgreSQL cluster -----------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The directory of ``initdb``: on the PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name)],
    )
    return candidates[-1].parent if candidates else None


def unavailable(reason: str) -> NoReturn:
    """Skip for ``reason``; fail instead when CI asked for PostgreSQL."""
    if os.environ.get(POSTGRES_ENV):
        pytest.fail(f"{reason}, but {POSTGRES_ENV} is set: PostgreSQL tests must run")
    pytest.skip(reason)


def as_cluster_owner() -> list[str]:
    """The command prefix that runs the PostgreSQL tools as a user they accept: initdb and
    pg_ctl refuse root, so root runs them as ``postgres``."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        unavailable("running as root and there is no postgres user to run initdb as")
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    return ["su", "postgres", "-s", "/bin/sh", "-c", '"$0" "$@"']


@dataclass
class Cluster:
    """A PostgreSQL cluster of this module: its own directory, port and socket directory."""

    bindir: Path
    root: Path
    port: int
    prefix: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def tool(self, name: str, *args: str) -> None:
        """Run a PostgreSQL tool as the cluster's owner; fail with its output."""
        done = subprocess.run(
            [*self.prefix, str(self.bindir / name), *args],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, f"{name} {' '.join(args)}: {done.stdout}{done.stderr}"

    def initdb(self) -> None:
        self.tool(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        """``pg_ctl start`` on the loopback interface and the cluster's port; wait until up."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off"
        )
        self.tool(
            "pg_ctl", "start", "-w", "-t", "30", "-D", str(self.data),
            "-l", str(self.root / "postgres.log"), "-o", options,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self.tool("pg_ctl", "stop", "-w", "-t", "30", "-D", str(self.data), "-m", mode)

    def sql(self, statement: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement in autocommit as the superuser; return its rows (if any)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database, autocommit=True
        ) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A fresh cluster with a database ``pdp``; stopped and deleted at the end, also on
    failure."""
    bindir = postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        unavailable("initdb/pg_ctl not found (PATH, /usr/lib/postgresql/*/bin)")
    pytest.importorskip("psycopg")
    prefix = as_cluster_owner()
    root = Path(tempfile.mkdtemp(prefix="pdp-pg-"))  # short: the socket path has a size limit
    try:
        if prefix:
            shutil.chown(root, "postgres", "postgres")
        cluster = Cluster(bindir, root, free_port(), prefix)
        cluster.initdb()
        cluster.start()
        cluster.sql("CREATE DATABASE pdp")
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            if (root / "data" / "postmaster.pid").exists():
                Cluster(bindir, root, 0, prefix).stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


# -- two instances against it --------------------------------------------------------------------


def call(
    server: Server, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """Like ``Server.request`` (a new connection each time; status and decoded JSON), with
    extra headers; the API key is sent only when no ``Authorization`` is given."""
    sent = dict(headers or {})
    if server.api_key is not None and "Authorization" not in sent:
        sent["X-Api-Key"] = server.api_key
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    req = urllib.request.Request(server.base_url + path, data, sent, method=method)
    try:
        with _opener.open(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@dataclass
class Deployment:
    """Instances A and B of one database, an API key for decisions, tokens for the admin API."""

    cluster: Cluster
    workdir: Path
    env: dict[str, str]
    key: str
    a: Server
    b: Server
    startup: float  # seconds the slower of A and B took to become ready
    revision: int = 1  # the last revision a write answered
    tokens: dict[str, str] = field(default_factory=dict)

    def admin(
        self, server: Server, method: str, path: str, body: Any = None, actor: str = ADMIN
    ) -> tuple[int, Any]:
        """One administration request as ``actor`` (a JWT signed with the instances' secret)."""
        if actor not in self.tokens:
            self.tokens[actor] = mint(Settings(jwt_secret=SECRET), actor)
        return call(server, method, path, body, {"Authorization": f"Bearer {self.tokens[actor]}"})

    def write(self, method: str, path: str, body: Any = None, status: int = 200) -> int:
        """A write through instance A that must succeed: the revision it answers."""
        code, answer = self.admin(self.a, method, path, body)
        assert code == status, answer
        self.revision = int(answer["revision"])
        return self.revision

    def instance_env(self, name: str, **settings: str) -> tuple[dict[str, str], Path]:
        """The environment and working directory of one more instance ``name``."""
        cwd = self.workdir / name
        cwd.mkdir(exist_ok=True)
        # Each instance its own XDG_RUNTIME_DIR: gunicorn's control socket lives there.
        return {**self.env, "XDG_RUNTIME_DIR": str(cwd), **settings}, cwd

    @contextlib.contextmanager
    def instance(self, name: str, **settings: str) -> Iterator[Server]:
        """One more ``pdp serve --workers 2`` on this database, stopped at the end."""
        env, cwd = self.instance_env(name, **settings)
        with running(["serve", "--workers", "2"], env, cwd) as server:
            server.api_key = self.key
            yield server


@pytest.fixture(scope="module")
def deployment(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The demo in the cluster's database, served by instances A and B."""
    workdir = tmp_path_factory.mktemp("instances")
    env = server_env(
        workdir,
        PDP_DATABASE_URL=cluster.url("pdp"),
        PDP_REFRESH_INTERVAL=str(REFRESH_INTERVAL),
        PDP_MIN_REVISION_WAIT=str(MIN_REVISION_WAIT),
        PDP_JWT_SECRET=SECRET,
        PDP_VERIFY_ORGS="1",
    )
    run_pdp(["db", "upgrade"], env, workdir)
    assert run_pdp(["demo", "load"], env, workdir) == "demo data loaded (revision 1)\n"
    key = add_key(env, workdir)
    with contextlib.ExitStack() as stack:
        d = Deployment(cluster, workdir, env, key, None, None, 0.0)  # type: ignore[arg-type]
        started = time.monotonic()
        d.a = stack.enter_context(d.instance("a"))
        d.startup = time.monotonic() - started
        started = time.monotonic()
        d.b = stack.enter_context(d.instance("b"))
        d.startup = max(d.startup, time.monotonic() - started)
        print(f"\ninstances A and B each ready within {d.startup:.1f} s of their start")
        yield d


# -- helpers -------------------------------------------------------------------------------------


def outcome(server: Server, **query: Any) -> tuple[bool, str, int]:
    """(allowed, reason code, revision) of one ``POST /v1/check``."""
    answer = server.check(**query)
    return answer["allowed"], answer["reason"]["code"], answer["revision"]


def served_revision(server: Server) -> int:
    """The revision ``GET /healthz`` serves (of whichever worker answers)."""
    status, answer = server.request("GET", "/healthz")
    assert status == 200, answer
    return int(answer["revision"])


def readyz(server: Server) -> tuple[int, Any]:
    """``GET /readyz``: status and body."""
    return call(server, "GET", "/readyz")


def ready_status(server: Server) -> int:
    return readyz(server)[0]


def everywhere(server: Server, ask: Callable[[], Any], times: int = 6) -> list[Any]:
    """Ask ``times`` times concurrently, over new connections, so that both workers answer."""
    with ThreadPoolExecutor(max_workers=times) as pool:
        return list(pool.map(lambda _: ask(), range(times)))


def delay_until(server: Server, ask: Callable[[], Any], wanted: Any, limit: float) -> float:
    """Seconds until every one of a few concurrent ``ask()`` on ``server`` (both workers)
    answers ``wanted``, polled without pause; fail past ``limit`` (plus a margin to say how
    late it was)."""
    started = time.monotonic()
    seen: list[Any] = []
    while time.monotonic() - started < limit + 4.0:
        seen = everywhere(server, ask, 4)
        if all(s == wanted for s in seen):
            return time.monotonic() - started
    pytest.fail(f"not visible within {limit + 4.0} s (wanted {wanted!r}): {seen!r}")


def settle(server: Server, revision: int) -> None:
    """Wait until every worker of ``server`` has applied ``revision``. A worker applies what
    its instance learnt lazily, at its next request, and then reads the whole change log: one
    left behind would pick up a later write by itself, without its watcher."""
    deadline = time.monotonic() + 5.0
    while True:
        everywhere(server, partial(outcome, server, user="bruno.petit", service="cdap"), 8)
        # /healthz does not refresh: it shows what each worker holds.
        if set(everywhere(server, partial(served_revision, server), 8)) == {revision}:
            return
        assert time.monotonic() < deadline, f"{server.base_url} not at revision {revision}"


def new_user(login: str, **dates: str) -> dict[str, Any]:
    """The body of ``POST …/users`` for a test user of mairie-montreuil."""
    return {
        "login": login,
        "first_name": "E2e",
        "last_name": login,
        "email": f"{login}@montreuil.example.fr",
        **dates,
    }


# -- 1. propagation ------------------------------------------------------------------------------


def test_a_write_through_a_shows_on_b_within_a_second(deployment: Deployment) -> None:
    """Writes through A (a user created, R-USR-2: no rights yet; then attached to a group
    holding cdap:T1, R-MEM-1, R-DEC-1) show on both workers of B within a second, although B
    polls the change log only every REFRESH_INTERVAL: the watcher woke it."""
    d = deployment
    delays = []
    for i in range(5):
        login = f"prop{i}.e2e"

        def ask(login: str = login) -> tuple[bool, str]:
            allowed, code, _ = outcome(d.b, user=login, service="cdap", role="T1")
            return allowed, code

        assert ask() == (False, "UNKNOWN_USER")
        d.write("POST", f"{MAIRIE}/users", new_user(login), 201)
        delays.append(delay_until(d.b, ask, (False, "NO_MEMBERSHIP"), PROPAGATION_LIMIT))
        d.write("POST", f"{MAIRIE}/users/{login}/memberships", {"group": "CCAS-ACCUEIL"}, 201)
        delays.append(delay_until(d.b, ask, (True, "ALLOWED"), PROPAGATION_LIMIT))
    print(
        f"\npropagation A -> B (both workers), {len(delays)} writes: "
        f"median {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms, "
        f"all {[round(x * 1000) for x in delays]} ms"
    )
    assert max(delays) <= PROPAGATION_LIMIT, delays


# -- 2. read your writes -------------------------------------------------------------------------


def test_min_revision_answers_from_a_state_at_least_that_fresh(deployment: Deployment) -> None:
    """A check or a permissions listing with ``min_revision`` N (the revision a write answered)
    is decided at a revision >= N, the write visible, at once: on B, and on an instance whose
    watcher is off (there nothing else can explain it: its plain answers are still stale)."""
    d = deployment
    with d.instance("no-watcher", PDP_WATCHER="off") as stale:
        for name, server in (("b", d.b), ("no-watcher", stale)):
            login = f"ryw-{name}.e2e"
            n = d.write("POST", f"{MAIRIE}/users", new_user(login), 201)
            if server is stale:
                # Without min_revision, both workers still answer from before the write.
                plain = everywhere(stale, partial(outcome, stale, user=login, service="cdap"))
                assert all(code == "UNKNOWN_USER" and rev < n for _, code, rev in plain), plain
            status, answer = call(
                server, "POST", "/v1/check", {"user": login, "service": "cdap", "min_revision": n}
            )
            assert status == 200, answer
            assert answer["revision"] >= n, answer
            assert (answer["allowed"], answer["reason"]["code"]) == (False, "NO_MEMBERSHIP")

            n = d.write(
                "POST", f"{MAIRIE}/users/{login}/memberships", {"group": "CCAS-ACCUEIL"}, 201
            )
            status, answer = call(server, "GET", f"/v1/users/{login}/permissions?min_revision={n}")
            assert status == 200, answer
            assert answer["revision"] >= n, answer
            assert [(s["service"], s["roles"]) for s in answer["services"]] == [("cdap", ["T1"])]
            status, answer = call(
                server,
                "POST",
                "/v1/check",
                {"user": login, "service": "cdap", "role": "T1", "min_revision": n},
            )
            assert status == 200, answer
            assert (answer["allowed"], answer["revision"] >= n) == (True, True), answer


def min_revision_requests(revision: int) -> list[tuple[str, str, Any]]:
    """A check and a permissions listing that ask to be answered from ``revision`` or later."""
    return [
        ("POST", "/v1/check", {"user": "bruno.petit", "service": "cdap", "min_revision": revision}),
        ("GET", f"/v1/users/bruno.petit/permissions?min_revision={revision}", None),
    ]


def test_a_revision_the_store_never_had_is_refused_at_once(deployment: Deployment) -> None:
    """A ``min_revision`` ahead of the store itself (no write ever answered it) is refused with
    409 REVISION_UNKNOWN once the store has been read, without waiting and never with a
    decision (R-DEC-2). (A revision the store has but this instance cannot read, while the
    database is down, is test 4's 503 REVISION_NOT_REACHED.)"""
    d = deployment
    future = d.revision + 1000
    for method, path, body in min_revision_requests(future):
        started = time.monotonic()
        status, answer = call(d.b, method, path, body)
        waited = time.monotonic() - started
        assert (status, answer["error"]["code"]) == (409, "REVISION_UNKNOWN"), answer
        assert answer["error"]["details"]["wanted"] == future, answer
        assert "allowed" not in answer and "services" not in answer
        assert waited < MIN_REVISION_WAIT, waited


# -- 3. a killed watcher connection --------------------------------------------------------------

LISTENERS = (
    "SELECT pid, application_name, state, query FROM pg_stat_activity"
    " WHERE datname = 'pdp' AND pid <> pg_backend_pid()"
    " AND (application_name = 'pdp-watcher' OR query ILIKE 'LISTEN%')"
)


def listeners(cluster: Cluster) -> dict[int, str]:
    """The watchers' connections (pid: last statement): named ``pdp-watcher``, or whose last
    statement was LISTEN (a watcher's is ``SELECT 1`` between two waits)."""
    return {row[0]: row[3] for row in cluster.sql(LISTENERS, "pdp")}


def kill_listeners(cluster: Cluster) -> set[int]:
    """``pg_terminate_backend`` every watcher connection and wait until their backends are
    gone (a backend still dying could yet deliver a notification); the pids killed."""
    pids = set(listeners(cluster))
    for pid in pids:
        cluster.sql(f"SELECT pg_terminate_backend({pid})")
    alive = ",".join(map(str, pids)) or "0"
    deadline = time.monotonic() + 5.0
    while cluster.sql(f"SELECT pid FROM pg_stat_activity WHERE pid IN ({alive})"):
        assert time.monotonic() < deadline, f"backends {pids} still alive 5 s after the kill"
        time.sleep(0.005)
    return pids


def wait_for_listeners(cluster: Cluster, count: int, dead: set[int]) -> float:
    """Seconds until ``count`` watcher connections, none of the ``dead``, are open; fail past
    WATCHER_MAX_PAUSE and a margin."""
    started = time.monotonic()
    limit = WATCHER_MAX_PAUSE + 2.0
    while len(found := set(listeners(cluster)) - dead) < count:
        if time.monotonic() - started > limit:
            pytest.fail(f"{len(found)} watcher connections after {limit} s, not {count}")
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_killed_watcher_connection_is_repaired(deployment: Deployment) -> None:
    """Kill every watcher connection from SQL, then write (the notification is sent while no
    watcher listens, so it is lost): B still shows the change within REPAIR_LIMIT, because a
    watcher that reconnects re-reads the revision. Again and again: a connection that dies now
    and then (a proxy's idle timeout, a failover) is repaired as fast the fifth time as the
    first (the pause before reconnecting may grow over failures in a row, not over a process's
    life)."""
    d = deployment
    before = listeners(d.cluster)
    print(f"\nwatcher connections (pid: last statement): {before}")
    assert len(before) == 4, "one watcher per worker (LISTEN pdp_policy, application pdp-watcher)"
    delays = []
    for kill in range(1, KILL_ROUNDS + 1):
        settle(d.b, d.revision)
        dead = kill_listeners(d.cluster)
        assert len(dead) == len(before), dead
        login = f"repair{kill}.e2e"
        d.write("POST", f"{MAIRIE}/users", new_user(login), 201)

        def ask(login: str = login) -> tuple[bool, str]:
            allowed, code, _ = outcome(d.b, user=login, service="cdap")
            return allowed, code

        delays.append(delay_until(d.b, ask, (False, "NO_MEMBERSHIP"), REPAIR_LIMIT))
        wait_for_listeners(d.cluster, len(before), dead)
    print(f"write after each kill seen on B after {[round(x, 3) for x in delays]} s")
    assert max(delays) <= REPAIR_LIMIT, (
        f"B saw the write made after kill 1, 2, … after {[round(x, 2) for x in delays]} s: "
        "the watchers reconnect more slowly after every disconnection"
    )


# -- 4. PostgreSQL stopped and restarted ---------------------------------------------------------

QUERIES = [
    {"user": "chloe.roux", "service": "cdap", "role": "T1"},  # allowed
    {"user": "chloe.roux", "service": "cdap", "role": "T18"},  # ROLE_NOT_GRANTED
    {"user": "bruno.petit", "service": "cdap", "role": "T18"},  # allowed
    {"user": "david.leroy", "service": "cdap"},  # USER_CLOSED
    {"user": "nadia.benali", "service": "cdap", "caf": "691"},  # CAF_NOT_SUBSCRIBED
    {"user": "prop0.e2e", "service": "cdap", "role": "T1"},  # allowed since test 1, if it ran
]


def decisions(server: Server) -> list[list[tuple[bool, str, int]]]:
    """Each query's outcomes from several concurrent requests (both workers)."""
    return [everywhere(server, partial(outcome, server, **q)) for q in QUERIES]


def test_postgres_stopped_then_restarted(deployment: Deployment) -> None:
    """While PostgreSQL is down, checks keep answering from memory, as before, at the last
    revision (no wrong answer; the store unreachable for less than PDP_MAX_STALENESS); /readyz
    says the database is unreachable; a write is refused with 503, never 500 nor done; a
    revision that cannot be confirmed is a 503, not an older answer (R-DEC-2). Restarted on the
    same port, both instances are ready again by themselves and a new write propagates again."""
    d = deployment
    servers = {"A": d.a, "B": d.b}
    latest = d.revision
    for server in servers.values():
        settle(server, latest)
    before = {name: decisions(server) for name, server in servers.items()}
    for name, answers in before.items():
        for query, seen in zip(QUERIES, answers, strict=True):
            assert len(set(seen)) == 1 and seen[0][2] == latest, (name, query, seen)

    watchers = len(listeners(d.cluster))
    d.cluster.stop("fast")
    try:
        for name, server in servers.items():
            assert decisions(server) == before[name], name
            for status, ready in everywhere(server, partial(readyz, server)):
                assert status == 503, (name, ready)
                assert (
                    ready["status"] == "not_ready" and ready["checks"]["database"] == "unreachable"
                )
            # Read-your-writes: the revision held is served; a later one (which a write through
            # another instance may have answered just before the stop) cannot be confirmed: 503
            # after PDP_MIN_REVISION_WAIT, never an older answer.
            for method, path, body in min_revision_requests(latest):
                assert call(server, method, path, body)[0] == 200, (name, path)
            for method, path, body in min_revision_requests(latest + 1):
                started = time.monotonic()
                status, answer = call(server, method, path, body)
                waited = time.monotonic() - started
                assert (status, answer["error"]["code"]) == (503, "REVISION_NOT_REACHED"), answer
                assert MIN_REVISION_WAIT * 0.9 <= waited <= MIN_REVISION_WAIT + 1.5, waited
            status, answer = d.admin(
                server, "POST", f"{MAIRIE}/users", new_user(f"down-{name}.e2e")
            )
            assert status == 503, (name, status, answer)
            assert answer["error"]["code"] in ("STORE_UNAVAILABLE", "POLICY_UNAVAILABLE"), answer
            assert decisions(server) == before[name], name  # and still the same afterwards
    finally:
        d.cluster.start()

    started = time.monotonic()
    for server in servers.values():
        delay_until(server, partial(ready_status, server), 200, READY_LIMIT)
    ready = time.monotonic() - started
    login = "restarted.e2e"
    d.write("POST", f"{MAIRIE}/users", new_user(login), 201)

    def ask() -> tuple[bool, str]:
        allowed, code, _ = outcome(d.b, user=login, service="cdap")
        return allowed, code

    # The watchers reconnect after their pause (at most WATCHER_MAX_PAUSE), then re-read the
    # revision: the write shows even if it was notified before they listened again.
    delay = delay_until(d.b, ask, (False, "NO_MEMBERSHIP"), WATCHER_MAX_PAUSE + 1.0)
    back = wait_for_listeners(d.cluster, watchers, set())
    print(
        f"\nready {ready:.2f} s after the restart; a write then showed on B in {delay:.3f} s; "
        f"{watchers} watchers listening again {back + ready + delay:.2f} s after the restart"
    )
    for name, server in servers.items():
        assert all(status == 200 for status, _ in everywhere(server, partial(readyz, server)))
        # The writes refused while the database was down left nothing behind.
        assert outcome(server, user=f"down-{name}.e2e", service="cdap")[1] == "UNKNOWN_USER"


# -- 5. midnight in Europe/Paris -----------------------------------------------------------------


def test_midnight_in_paris_closes_a_user_without_a_write(deployment: Deployment) -> None:
    """A user closing tomorrow (R-USR-4) is allowed until midnight in Europe/Paris and closed
    from midnight on (R-TIME-1), on an instance whose clock (PDP_CLOCK_START) starts a few
    seconds before midnight: no write, no restart in between."""
    d = deployment
    today = paris_today()  # this process's clock is not shifted
    tomorrow = today + dt.timedelta(days=1)
    login = "minuit.e2e"
    d.write("POST", f"{MAIRIE}/users", new_user(login, closes_on=tomorrow.isoformat()), 201)
    n = d.write("POST", f"{MAIRIE}/users/{login}/memberships", {"group": "CCAS-ACCUEIL"}, 201)
    query = {"user": login, "service": "cdap", "role": "T1"}

    # The instance's clock starts some time between its launch and its first answer: a lead of
    # MIDNIGHT_LEAD seconds beyond a start-up as long as A's or B's keeps midnight ahead of the
    # first check.
    lead = MIDNIGHT_LEAD + d.startup
    midnight = dt.datetime.combine(tomorrow, dt.time(), PARIS)
    launched = time.monotonic()
    clock = (midnight - dt.timedelta(seconds=lead)).isoformat()
    with d.instance("midnight", PDP_CLOCK_START=clock) as m:
        ready = time.monotonic()
        first = m.check(**query)
        assert time.monotonic() - launched < lead, "start-up too slow: midnight passed already"
        assert (first["allowed"], first["at"], first["revision"]) == (True, today.isoformat(), n)
        # Past midnight on the instance's clock for sure, plus the 1 s its workers cache today.
        time.sleep(max(0.0, ready + lead + 1.2 - time.monotonic()))
        then = everywhere(m, lambda: m.check(**query))
        for answer in then:
            assert (answer["allowed"], answer["reason"]["code"]) == (False, "USER_CLOSED"), answer
            assert (answer["at"], answer["revision"]) == (tomorrow.isoformat(), n), answer
        closed = time.monotonic() - ready
        print(f"\nPDP_CLOCK_START={clock}: allowed, then closed {closed:.1f} s later")
    # The real clocks agree on both days.
    assert outcome(d.b, **query, at=tomorrow.isoformat())[:2] == (False, "USER_CLOSED")
    if paris_today() == today:
        assert outcome(d.b, **query)[:2] == (True, "ALLOWED")
