"""The console's sessions, kept in the database (table ``console_sessions``).

The browser's cookie carries a random session id (256 bits); the database keeps only its
SHA-256, with the login, the sign-in mode and the session's times. A session is live while it
has not been ended and is within both lifetimes: idle (``PDP_CONSOLE_SESSION_IDLE`` seconds
without a page) and absolute (``PDP_CONSOLE_SESSION_MAX`` seconds since sign-in). Every worker
of every instance reads the same rows, so signing out on one ends the session on all of them,
and a copy of the cookie taken before is refused afterwards.

``last_seen_at`` is written at most once a minute (a quarter of the idle lifetime if that is
shorter), not at every page: the idle lifetime therefore counts from a moment up to that much
before the last page, which errs on the side of ending early. Records are deleted a week after
they can last have been live (``PURGE_AFTER``), whenever a session starts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from pdp.adapters.sql.models import ConsoleSessionRecord as Record
from pdp.core.clock import utc_now
from pdp.core.errors import Unavailable
from pdp.services.admin.service import STORE_UNAVAILABLE

SID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
TOUCH_EVERY = dt.timedelta(seconds=60)
PURGE_AFTER = dt.timedelta(days=7)
PURGE_EVERY = dt.timedelta(minutes=10)  # how often one process deletes old records

# Why a session ended (``end_reason``).
SIGNED_OUT = "signed_out"
REPLACED = "replaced"  # another sign-in in the same browser, another person behind the proxy
REFUSED = "refused"  # the user is no longer open (closed, R-USR-4)
IDLE = "idle"
EXPIRED = "expired"  # the absolute lifetime


@dataclass(frozen=True)
class LiveSession:
    """A session that may be used now: its id (as the cookie has it), login and mode."""

    sid: str
    login: str
    mode: str


def sid_digest(sid: str) -> str:
    """The stored form of a session id: SHA-256, hex (the id has 256 random bits)."""
    return hashlib.sha256(sid.encode()).hexdigest()


def _utc(moment: dt.datetime) -> dt.datetime:
    # SQLite gives back the UTC instants it was given without their zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class SessionStore:
    """Start, resume and end console sessions, in the database."""

    def __init__(
        self,
        db: Engine,
        idle_seconds: int,
        max_seconds: int,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._db = db
        self.idle = dt.timedelta(seconds=idle_seconds)
        self.lifetime = dt.timedelta(seconds=max_seconds)
        self._touch_every = min(TOUCH_EVERY, self.idle / 4)
        self._clock = clock
        self._purged: dt.datetime | None = None  # this process's last purge

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction; a database failure is Unavailable (503), nothing written (the
        console's pages answer it with their error page, never a 500)."""
        try:
            with self._db.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise Unavailable(STORE_UNAVAILABLE, code="STORE_UNAVAILABLE") from exc

    def start(self, login: str, mode: str) -> str:
        """Record a new session of ``login`` signed in by ``mode``; return its id (for the
        cookie only: it is stored hashed). Records over for a week are deleted meanwhile."""
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        with self._transaction() as conn:
            self._purge(conn, now)
            conn.execute(
                insert(Record).values(
                    id_hash=sid_digest(sid),
                    login=login,
                    mode=mode,
                    created_at=now,
                    last_seen_at=now,
                )
            )
        return sid

    def resume(self, sid: object, mode: str) -> LiveSession | None:
        """The live session whose id is ``sid`` (whatever a cookie held) in ``mode``, or None:
        no such session, ended, from another sign-in mode, or past a lifetime (then it is
        ended now). Notes the activity at most every ``TOUCH_EVERY``."""
        if not isinstance(sid, str) or not SID_PATTERN.fullmatch(sid):
            return None
        digest = sid_digest(sid)
        now = self._clock()
        # Read, then write in a transaction of its own if need be: a SQLite read transaction
        # cannot always become a writer once another process has written.
        with self._transaction() as conn:
            row = conn.execute(
                select(
                    Record.login,
                    Record.mode,
                    Record.created_at,
                    Record.last_seen_at,
                    Record.ended_at,
                ).where(Record.id_hash == digest)
            ).first()
        if row is None or row.ended_at is not None or row.mode != mode:
            return None
        seen = _utc(row.last_seen_at)
        why = self._over(now, _utc(row.created_at), seen)
        if why is not None:
            with self._transaction() as conn:
                self._end(conn, digest, why, now)
            return None
        if now - seen >= self._touch_every:
            with self._transaction() as conn:
                conn.execute(
                    update(Record)
                    .where(Record.id_hash == digest, Record.ended_at.is_(None))
                    .values(last_seen_at=now)
                )
        return LiveSession(sid, row.login, row.mode)

    def _over(self, now: dt.datetime, created: dt.datetime, seen: dt.datetime) -> str | None:
        """Which lifetime a session created and last seen then is past at ``now``, if any."""
        if now - created >= self.lifetime:
            return EXPIRED
        if now - seen >= self.idle:
            return IDLE
        return None

    def end(self, sid: str, reason: str) -> None:
        """End the session ``sid`` (if live) for ``reason``: its cookie signs nobody in."""
        with self._transaction() as conn:
            self._end(conn, sid_digest(sid), reason, self._clock())

    @staticmethod
    def _end(conn: Connection, digest: str, reason: str, now: dt.datetime) -> None:
        conn.execute(
            update(Record)
            .where(Record.id_hash == digest, Record.ended_at.is_(None))
            .values(ended_at=now, end_reason=reason)
        )

    def _purge(self, conn: Connection, now: dt.datetime) -> None:
        """Delete the records of sessions that cannot have been live for ``PURGE_AFTER``; at
        most once every ``PURGE_EVERY`` per process (a client that keeps no cookie behind the
        proxy starts a session on every request)."""
        if self._purged is not None and now - self._purged < PURGE_EVERY:
            return
        self._purged = now
        conn.execute(delete(Record).where(Record.created_at < now - self.lifetime - PURGE_AFTER))
