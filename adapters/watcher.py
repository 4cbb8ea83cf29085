"""Propagation between instances: PostgreSQL LISTEN/NOTIFY.

Every writer's transaction sends ``pg_notify('pdp_policy', <revision>)``
(``pdp.adapters.sql.database.bump_revision``); PostgreSQL delivers it to every listener when, and
only if, the transaction commits. Each worker runs a ``PgWatcher`` thread holding one LISTEN
connection (``application_name`` ``pdp-watcher``). A notification only raises the instance's
shared "revision written" number (``PolicyEngine.observe``): the next request of every worker of the
instance then applies the change before answering, incrementally (its organisations only) or
by a full reload when many changed. The thread never touches the index itself.

Missed notifications are repaired by comparing revisions: whenever the watcher (re)connects it
reads the store's current revision and observes it, so whatever was committed while it was
disconnected is applied too; and the engine still polls the change log every
``PDP_REFRESH_INTERVAL`` seconds, whatever the watcher does. With SQLite (one machine) there
is nothing to listen to: workers of one instance share the written revision, and poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.engine import make_url

from pdp.adapters.sql.database import NOTIFY_CHANNEL
from pdp.core.errors import ConfigurationError

log = logging.getLogger("pdp.watcher")

APPLICATION_NAME = "pdp-watcher"


def psycopg_conninfo(database_url: str) -> str:
    """The libpq connection string of a SQLAlchemy ``postgresql+psycopg://`` URL."""
    url = make_url(database_url)
    parts = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
        **{k: v for k, v in url.query.items() if isinstance(v, str)},
    }
    return " ".join(
        f"{k}='{str(v).replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'"
        for k, v in parts.items()
        if v is not None
    )


class PgWatcher:
    """One LISTEN connection in a daemon thread, reconnecting with a growing pause."""

    def __init__(
        self,
        database_url: str,
        observe: Callable[[int], None],
        *,
        on_reconnect: Callable[[], None] | None = None,
        max_pause: float = 5.0,
    ) -> None:
        self._conninfo = psycopg_conninfo(database_url)
        self._observe = observe  # told each revision written (PolicyEngine.observe)
        self._on_reconnect = on_reconnect
        self._max_pause = max_pause
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.connections = 0  # successful connections so far (1 + reconnects)
        self.notifications = 0

    def start(self) -> None:
        """Start listening (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pdp-watcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop listening and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        pause = 0.2
        while not self._stop.is_set():
            before = self.connections
            try:
                self._listen()
            except Exception as exc:  # psycopg raises many kinds; the loop must survive them all
                self.connected.clear()
                if self.connections > before:  # it had connected: a new outage, a short pause
                    pause = 0.2
                log.warning("policy watcher disconnected (%s); retrying in %.1f s", exc, pause)
            if self._stop.wait(pause):
                return
            pause = min(pause * 2, self._max_pause)

    def _listen(self) -> None:
        import psycopg

        with psycopg.connect(
            self._conninfo,
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=5,
        ) as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            # Whatever was committed while not listening: observe the store's revision now.
            row = conn.execute("SELECT revision FROM policy_revision WHERE id = 1").fetchone()
            if row is not None:
                self._observe(int(row[0]))
            self.connections += 1
            if self.connections > 1 and self._on_reconnect is not None:
                self._on_reconnect()
            self.connected.set()
            while not self._stop.is_set():
                for notify in conn.notifies(timeout=1.0):
                    self.notifications += 1
                    try:
                        self._observe(int(notify.payload))
                    except ValueError:
                        log.warning("ignoring a notification without a revision: %r", notify)
                # A dead server does not always end the wait above: ask it something.
                conn.execute("SELECT 1")


def open_watcher(
    setting: str,
    database_url: str,
    observe: Callable[[int], None],
    on_reconnect: Callable[[], None] | None = None,
) -> PgWatcher | None:
    """The watcher ``PDP_WATCHER`` asks for: ``auto`` (PostgreSQL: yes; else none), ``off``."""
    if setting == "off":
        return None
    postgres = make_url(database_url).get_backend_name() == "postgresql"
    if setting == "postgres" and not postgres:
        raise ConfigurationError("PDP_WATCHER=postgres needs a PostgreSQL PDP_DATABASE_URL")
    if not postgres:
        return None
    return PgWatcher(database_url, observe, on_reconnect=on_reconnect)
