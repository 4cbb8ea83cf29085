"""Run the app under gunicorn with production defaults (``pdp serve``)."""

from __future__ import annotations

import queue
import signal
import sys
from typing import Any

import orjson
from flask import Flask
from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from pdp.adapters.sql.database import leave_checkpoints
from pdp.core.config import DEFAULT_BIND, default_workers
from pdp.observability import logs, metrics
from pdp.records.decision_log import ShipperProcess, WalLog, open_shipper
from pdp.web.container import EXTENSION, Services, services

__all__ = ["DEFAULT_BIND", "default_workers", "serve"]

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


class PdpServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application serving an already-built Flask app (preloaded, then forked)."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        """Apply the options over gunicorn's defaults."""
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Return the WSGI app."""
        return self.application

    def run(self) -> None:
        """Serve until stopped, under ``PdpArbiter``."""
        try:
            PdpArbiter(self).run()
        except RuntimeError as exc:  # gunicorn's own way to report a configuration error
            print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
            sys.exit(1)


class PdpArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's master, which also runs the decision log's shipper process: the workers only
    append to their segments (``WalLog.hand_over``), one process ships them all
    (``pdp.records.decision_log.process``). Started before the workers, started again if it
    dies, stopped after them, once it has shipped what they left."""

    log_shipper: ShipperProcess | None = None

    def start(self) -> None:
        """gunicorn's start (sockets, ``on_starting``, ``when_ready``), then the shipper."""
        super().start()
        found = _built(self.app.application)
        if found is None or found.shipper is None or not isinstance(found.decision_log, WalLog):
            return  # no decision log to ship (off, or another WSGI app)
        found.decision_log.hand_over()
        leave_checkpoints(found.db)  # to the shipper process, which writes most of the WAL
        self.log_shipper = ShipperProcess(
            open_shipper(found.settings, found.db), self._close_in_shipper
        )
        self.log_shipper.spawn()

    def _close_in_shipper(self) -> None:
        # The shipper process never serves: the listening sockets stay with the master and
        # its workers.
        for listener in self.LISTENERS:
            listener.close()

    def handle_chld(self) -> None:
        """Reap the shipper process first (by its pid), then the workers."""
        if self.log_shipper is not None:
            self.log_shipper.reap()
        super().handle_chld()

    handle_cld = handle_chld  # the name gunicorn may look SIGCHLD's handler up by

    def manage_workers(self) -> None:
        """Keep the workers' number, and the shipper process running (also if gunicorn's
        ``waitpid(-1)`` reaped it first: then ``reap`` finds it gone)."""
        super().manage_workers()
        if self.log_shipper is not None:
            self.log_shipper.reap()
            self.log_shipper.keep_alive()

    def stop(self, graceful: bool = True) -> None:
        """Stop the workers, then the shipper process once it has shipped what they left."""
        super().stop(graceful)
        if self.log_shipper is not None:
            self.log_shipper.stop(timeout=float(self.cfg.graceful_timeout))


def _stop_on_early_signal(server: Any, worker: Any) -> None:
    """A stop signal reaching a worker before gunicorn installs the worker's own handlers (at
    the end of its boot) runs the master's handler, copied by the fork, and is lost: the worker
    then serves on until the master kills it after ``graceful_timeout``. Until gunicorn's
    handlers replace these, such a signal stops the worker as soon as it has booted."""

    def early_stop(signum: int, frame: Any) -> None:
        worker.alive = False

    for number in _STOP_SIGNALS:
        signal.signal(number, early_stop)
    # A signal that came between the fork and now is in the master's queue, copied too.
    pending = getattr(server, "SIG_QUEUE", None)
    while pending is not None:
        try:
            if pending.get_nowait() in _STOP_SIGNALS:
                worker.alive = False
        except (queue.Empty, AttributeError):
            break


def _built(app: Flask) -> Services | None:
    """The services of an app built by ``create_app``; None for another WSGI app served under
    these same hooks (the benchmark's bare Flask app, ``bench.bare``)."""
    return services(app) if EXTENSION in app.extensions else None


def _pre_fork(server: Any, worker: Any) -> None:
    # In the master, before each worker forks: a worker started long after the master (after
    # a crash, a timeout, max_requests) inherits keys as fresh as the refresh interval, even
    # if the database is down when it starts, never the master's copy from start-up.
    found = _built(server.app.application)
    if found is not None:
        found.api_keys.refresh()


def _post_fork(server: Any, worker: Any) -> None:
    _stop_on_early_signal(server, worker)
    metrics.after_fork()
    found = _built(worker.app.application)
    if found is None:
        return
    # Connections must not cross a fork: each worker opens its own.
    found.db.dispose(close=False)
    # The keys copied from the master are as old as the master: a worker started later (after
    # a crash, max_requests) reads them again before serving; if the database is down, it
    # keeps the master's copy (pdp.services.api_keys).
    found.api_keys.load()
    # The workers only append to the decision log: the master's shipper process ships it.
    if isinstance(server, PdpArbiter) and server.log_shipper is not None:
        server.log_shipper.close_in_worker()
    # Each worker listens for other instances' writes (pdp.adapters.watcher).
    if found.watcher is not None:
        found.watcher.start()
    # Each worker checkpoints the audit chain's head (pdp.records.checkpoints): the same head
    # makes the same file, so several writers are harmless, and one surviving worker is enough.
    if found.checkpoints is not None:
        found.checkpoints.start()
    # Each worker prunes the decision log every PDP_DECISION_LOG_PRUNE_INTERVAL (R-CNIL-11):
    # on PostgreSQL an advisory lock lets one round run at a time; on SQLite rounds are
    # idempotent batches.
    if found.retention is not None:
        found.retention.start()


def _worker_exit(server: Any, worker: Any) -> None:
    # A worker stopping (graceful shutdown, max requests, reload) flushes its decision log and
    # lets go of its segments: the shipper process ships them to their end. A log given by a
    # test may have nothing to close.
    found = _built(worker.app.application)
    close = None if found is None else getattr(found.decision_log, "close", None)
    if close is not None:
        close()
    if found is not None:  # the days keys were used, not written yet (R-OPS-3)
        found.api_keys.write_uses()


def _on_starting(server: Any) -> None:
    # The master, before any worker: what earlier runs left in PROMETHEUS_MULTIPROC_DIR goes.
    metrics.prepare_directory()
    # gunicorn has no hook for the answers it makes itself (its workers call util.write_error):
    # replaced here, in the master, before the workers fork and inherit it.
    gunicorn_util.write_error = write_json_error


# What gunicorn refuses before the app sees the request, as the API's codes and messages.
_REFUSED = {
    400: ("BAD_REQUEST", "Requête HTTP mal formée."),
    403: ("FORBIDDEN", "Requête refusée."),
    414: ("URI_TOO_LONG", "Adresse (URL) trop longue."),
    417: ("EXPECTATION_FAILED", "En-tête Expect non pris en charge."),
    431: ("HEADERS_TOO_LARGE", "En-têtes de requête trop volumineux."),
    501: ("NOT_IMPLEMENTED", "Codage de transfert non pris en charge."),
}


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's answer to a request it refuses itself (a request line over its limit,
    malformed headers, ...): JSON with a stable code, like every other error, instead of its
    HTML page. ``mesg`` (gunicorn's detail, which may echo the request) is not sent."""
    code, message = _REFUSED.get(status_int, ("INTERNAL_ERROR", "Erreur interne du service."))
    body = orjson.dumps({"error": {"code": code, "message": message}}) + b"\n"
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


def _child_exit(server: Any, worker: Any) -> None:
    # In the master, once a worker has exited: its live gauges leave /metrics.
    metrics.process_dead(worker.pid)


def gunicorn_options(bind: str, workers: int, log_format: str = "text") -> dict[str, Any]:
    """The production gunicorn settings of ``pdp serve`` (the benchmark serves its bare Flask
    ceiling with the very same ones); ``log_format`` is text or json
    (``pdp.observability.logs``)."""
    return {
        "bind": bind,
        "workers": workers,
        "worker_class": "gthread",
        "threads": 1,
        "keepalive": 5,
        "timeout": 30,
        "graceful_timeout": 30,
        "preload_app": True,
        "accesslog": None,
        "errorlog": "-",
        "logconfig_dict": logs.gunicorn_logconfig(log_format) or {},
        "on_starting": _on_starting,
        "pre_fork": _pre_fork,
        "post_fork": _post_fork,
        "worker_exit": _worker_exit,
        "child_exit": _child_exit,
        "proc_name": "pdp",
        # gunicorn's control socket (~/.gunicorn/gunicorn.ctl) is shared by every server of one
        # user: a second instance would take it over. pdp does not use it.
        "control_socket_disable": True,
    }


def serve(app: Flask, bind: str, workers: int) -> None:
    """Serve ``app`` until stopped. The index is built once, before the workers fork."""
    log_format = services(app).settings.log_format_of(serving=True)
    PdpServer(app, gunicorn_options(bind, workers, log_format)).run()
