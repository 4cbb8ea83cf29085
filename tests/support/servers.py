"""A real ``pdp serve`` (gunicorn) for the end-to-end tests: its command, its environment, a
free port, starting and stopping it, and one on the demo data; spoken to over real HTTP on the
loopback interface."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pdp.core.catalogue import load_catalogue

STARTUP_TIMEOUT = 30.0  # seconds for a server to answer /healthz
CHANGE_TIMEOUT = 10.0  # seconds for a committed write to show through HTTP
REFRESH_INTERVAL = 0.2  # PDP_REFRESH_INTERVAL of the servers started here
WORKERS = 2
ALL = ",".join(sorted(load_catalogue().services))  # every service: the e2e key asks about all

# Talk to 127.0.0.1 directly, whatever http_proxy the environment sets.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def pdp_command() -> list[str]:
    """The ``pdp`` console script of this environment, or the same entry point through -c."""
    script = Path(sys.executable).with_name("pdp")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "from pdp.cli import main; main()"]


def server_env(workdir: Path, **settings: str) -> dict[str, str]:
    """The environment of a pdp process: no PDP_* of the caller's shell, decision log off.

    XDG_RUNTIME_DIR keeps gunicorn's control socket (gunicorn >= 25) in ``workdir`` instead of
    the shared ~/.gunicorn/gunicorn.ctl of any other server on the machine.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDP_")}
    env.update(
        PDP_DECISION_LOG="off",
        PDP_RATE_LIMIT="off",
        PDP_REFRESH_INTERVAL=str(REFRESH_INTERVAL),
        XDG_RUNTIME_DIR=str(workdir),
    )
    env.update(settings)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running pdp server process and where to reach it."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    api_key: str | None = None  # sent as X-Api-Key when set

    def log(self) -> str:
        """What the server printed so far (gunicorn and pdp log to stderr)."""
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request (a new connection each time); return (status, decoded JSON)."""
        data = None
        headers = {}
        if self.api_key is not None:
            headers["X-Api-Key"] = self.api_key
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data, headers, method=method)
        try:
            with opener.open(req, timeout=10) as resp:
                assert resp.headers.get_content_type() == "application/json"
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                assert exc.headers.get_content_type() == "application/json", exc.read()
                return exc.code, json.loads(exc.read())

    def check(self, **body: Any) -> dict[str, Any]:
        status, answer = self.request("POST", "/v1/check", body)
        assert status == 200, answer
        assert isinstance(answer, dict)
        return answer

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Wait until GET /readyz answers 200; fail with the server's output otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"the server exited with status {self.process.returncode} before it was "
                    f"healthy; its output:\n{self.log()}"
                )
            with contextlib.suppress(OSError, ValueError):
                status, _ = self.request("GET", "/readyz")
                if status == 200:
                    return
            time.sleep(0.1)
        pytest.fail(f"the server was not healthy within {timeout} s; its output:\n{self.log()}")

    def stop(self) -> int:
        """SIGTERM (gunicorn's graceful shutdown), wait; kill the process group if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # Workers left behind by a master that died badly belong to the same process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode


def add_key(env: dict[str, str], cwd: Path, name: str = "e2e", services: str = ALL) -> str:
    """``pdp clients add NAME --services SERVICES``: the new API key."""
    key = run_pdp(["clients", "add", name, "--services", services], env, cwd).strip()
    assert key.startswith("pdp_"), key
    return key


def run_pdp(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run a short ``pdp`` command to completion; return its output, fail on an error."""
    done = subprocess.run(
        [*pdp_command(), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"pdp {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[Server]:
    """Start ``pdp ARGS --bind 127.0.0.1:<free port>``, wait until healthy, stop it cleanly."""
    port = free_port()
    log_path = cwd / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*pdp_command(), *args, "--bind", f"127.0.0.1:{port}"],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the finalizer can reap the workers
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        server.wait_healthy()
        yield server
    finally:
        status = server.stop()
    assert status == 0, f"the server did not stop cleanly ({status}); its output:\n{server.log()}"


@dataclass
class Served:
    server: Server
    database_url: str


@contextlib.contextmanager
def demo_server(workdir: Path) -> Iterator[Served]:
    """``pdp serve --workers 2`` on a fresh SQLite file with the demo data, checkpointing the
    audit chain into ``workdir/checkpoints``."""
    url = f"sqlite:///{workdir / 'pdp.sqlite3'}"
    checkpoints = workdir / "checkpoints"
    checkpoints.mkdir()
    env = server_env(workdir, PDP_DATABASE_URL=url, PDP_AUDIT_CHECKPOINT_DIR=str(checkpoints))
    run_pdp(["db", "upgrade"], env, workdir)
    assert run_pdp(["demo", "load"], env, workdir) == "demo data loaded (revision 1)\n"
    key = add_key(env, workdir)
    with running(["serve", "--workers", str(WORKERS)], env, workdir) as server:
        server.api_key = key
        yield Served(server, url)


def answers_from_every_worker(server: Server, ask: Callable[[], dict[str, Any]]) -> list[Any]:
    """Ask many times, concurrently, over new connections, so that every worker answers."""
    with ThreadPoolExecutor(max_workers=2 * WORKERS) as pool:
        return list(pool.map(lambda _: ask(), range(12 * WORKERS)))
