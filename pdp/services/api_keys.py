"""The callers of the decision API: front-ends (policy enforcement points) and their API keys.

A key reads ``pdp_<key id>_<secret>``: the key id (12 hex digits) is public and finds the row;
the secret is 32 random bytes. Only the SHA-256 of the whole key is stored. A slow password
hash (bcrypt, Argon2) would add milliseconds to every decision and protect nothing more: the key
has 256 bits of entropy, so its digest cannot be reversed by guessing (the practice of GitHub's
and Stripe's tokens). Each key may ask about the services it was given, no other.

``ClientStore`` creates, lists and revokes keys (the ``pdp clients`` command); every change is
appended to the audit chain in its own transaction. ``ClientRegistry`` authenticates requests
from an in-memory copy of the open keys, read when the app starts (and again in each worker
after the fork), then re-read from the database at most every ``refresh_interval`` seconds, so
a revoked key stops working within that delay. A read that fails keeps the last good copy
(valid keys work through an outage, revoked ones stay revoked); until a first read succeeds, a
key cannot be checked: 503 ``KEYS_UNAVAILABLE``, never 401.

A key may expire (R-OPS-2): from its ``expires_at`` on it is refused (401 ``API_KEY_EXPIRED``),
checked on each request against the copy in memory (a float comparison). The day a key was last
used (R-OPS-3) is noted in memory on the request's path (a dict lookup; a write to the dict once
per key per day) and written to the database with the next periodic re-read of the keys, at
most once per key per day per worker (and by a worker that stops), by an UPDATE that changes
nothing when another worker wrote that day already: no database write per request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from pdp.adapters.sql.database import UnitOfWork
from pdp.adapters.sql.models import ApiClientRecord
from pdp.core.clock import PARIS, unix_now
from pdp.core.errors import BadRequest, NotFound, Unauthorized, Unavailable
from pdp.records.audit_trail import AuditChain, AuditEvent
from pdp.records.audit_trail import now as audit_now
from pdp.records.policy_write import PolicyWriter

log = logging.getLogger("pdp.clients")

KEY_PATTERN = re.compile(r"pdp_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
HEADER = "X-Api-Key"
DEMO_CLIENT = "demo"  # the key ``pdp quickstart`` makes and prints; refused in production


@dataclass(frozen=True)
class ApiClient:
    """One open key: who holds it and what it may ask about."""

    key_id: str
    name: str
    services: frozenset[str]
    key_hash: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    last_used_on: dt.date | None = None

    # expires_at as Unix time, what the request path compares (None: no expiry).
    expiry: float | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        expiry = None if self.expires_at is None else _aware(self.expires_at).timestamp()
        object.__setattr__(self, "expiry", expiry)

    def expired(self, now: float) -> bool:
        """Whether the key is refused at Unix time ``now`` (R-OPS-2)."""
        return self.expiry is not None and now >= self.expiry


def _aware(moment: dt.datetime) -> dt.datetime:
    """A stored instant with its zone (SQLite gives them back naive, in UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _paris_day(now: float) -> tuple[dt.date, float]:
    """The day (Europe/Paris, R-TIME-1) holding Unix time ``now``, and the Unix time it ends."""
    day = dt.datetime.fromtimestamp(now, PARIS).date()
    return day, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), PARIS).timestamp()


def parse_expiry(value: str) -> dt.datetime:
    """``--expires``: a day (the key is refused from its start, Europe/Paris: R-TIME-1) or an
    ISO 8601 date-time with an offset; raise BadRequest (INVALID_EXPIRY) otherwise."""
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime.combine(day, dt.time(), PARIS).astimezone(dt.UTC)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BadRequest(
            f"Date d'expiration invalide : {value!r} (AAAA-MM-JJ, ou date et heure ISO 8601 "
            "avec fuseau).",
            "INVALID_EXPIRY",
        )
    return moment.astimezone(dt.UTC)


def key_digest(key: str) -> str:
    """The stored form of a key: SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its key id."""
    key_id = secrets.token_hex(6)
    return f"pdp_{key_id}_{secrets.token_urlsafe(32)}", key_id


def _client(row: ApiClientRecord) -> ApiClient:
    return ApiClient(
        row.key_id,
        row.name,
        frozenset(s for s in row.services.split(",") if s),
        row.key_hash,
        row.created_at,
        row.revoked_at,
        row.expires_at,
        row.last_used_on,
    )


class ClientStore:
    """Create, list and revoke API keys; every change is in the audit chain."""

    def __init__(self, db: Engine, chain: AuditChain, services: Iterable[str]) -> None:
        self._sessions = sessionmaker(db)
        self._writer = PolicyWriter(UnitOfWork(self._sessions), chain)
        self._known = frozenset(services)

    @property
    def services(self) -> frozenset[str]:
        """The services of the catalogue."""
        return self._known

    def add(
        self,
        name: str,
        services: Iterable[str],
        actor: str,
        expires_at: dt.datetime | None = None,
    ) -> tuple[str, ApiClient]:
        """Create a key for ``name`` limited to ``services``, refused from ``expires_at`` on
        (R-OPS-2; None: no expiry); return (key, client).

        The key is shown once: only its digest is kept.
        """
        if not NAME_PATTERN.fullmatch(name):
            raise BadRequest(
                f"Nom de client invalide : {name!r} (minuscules, chiffres, « . _ - », "
                "64 caractères au plus).",
                "INVALID_CLIENT_NAME",
            )
        wanted = sorted(set(services))
        unknown = [s for s in wanted if s not in self._known]
        if unknown or not wanted:
            known = ", ".join(sorted(self._known))
            raise BadRequest(
                f"Services inconnus : {', '.join(unknown)} (connus : {known})."
                if unknown
                else "Au moins un service est requis.",
                "UNKNOWN_SERVICE",
            )
        if expires_at is not None and _aware(expires_at).timestamp() <= unix_now():
            raise BadRequest(
                f"La date d'expiration {expires_at.isoformat()} est passée : une clé doit "
                "pouvoir servir.",
                "INVALID_EXPIRY",
            )
        key, key_id = new_key()
        row = ApiClientRecord(
            key_id=key_id,
            name=name,
            key_hash=key_digest(key),
            services=",".join(wanted),
            created_at=dt.datetime.now(dt.UTC),
            expires_at=expires_at,
        )
        with self._writer.write("client.add", new_revision=False) as write:
            write.session.add(row)
            write.session.flush()
            write.record(_event(actor, "client.add", row, None, write.revision))
            client = _client(row)
        return key, client

    def revoke(self, name: str, actor: str, key_id: str | None = None) -> list[ApiClient]:
        """Revoke every open key of ``name`` (or only ``key_id``); return those revoked."""
        with self._writer.write("client.revoke", new_revision=False) as write:
            session = write.session
            query = select(ApiClientRecord).where(
                ApiClientRecord.name == name, ApiClientRecord.revoked_at.is_(None)
            )
            if key_id is not None:
                query = query.where(ApiClientRecord.key_id == key_id)
            rows = list(session.scalars(query))
            if not rows:
                raise NotFound(f"Aucune clé ouverte pour le client {name!r}.", "UNKNOWN_CLIENT")
            revoked_at = dt.datetime.now(dt.UTC)
            for row in rows:
                before = _public(row)
                row.revoked_at = revoked_at
                session.flush()
                write.record(_event(actor, "client.revoke", row, before, write.revision))
            return [_client(row) for row in rows]

    def list(self, include_revoked: bool = False) -> list[ApiClient]:
        """Every key (open ones only unless ``include_revoked``), by name then creation."""
        query = select(ApiClientRecord).order_by(ApiClientRecord.name, ApiClientRecord.created_at)
        if not include_revoked:
            query = query.where(ApiClientRecord.revoked_at.is_(None))
        with self._sessions() as session:
            return [_client(row) for row in session.scalars(query)]


def _event(
    actor: str,
    action: str,
    row: ApiClientRecord,
    before: dict[str, object] | None,
    revision: int,
) -> AuditEvent:
    """The audit record of a key's change (the current revision: keys take none)."""
    return AuditEvent(
        actor=actor,
        action=action,
        target=f"client:{row.name}",
        organisation=None,
        before=before,
        after=_public(row),
        revision=revision,
        ts=audit_now(),
    )


def _public(row: ApiClientRecord) -> dict[str, object]:
    """What the audit trail records of a key: never the key, nor its digest."""
    return {
        "name": row.name,
        "key_id": row.key_id,
        "services": row.services.split(","),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
        "expires_at": _aware(row.expires_at).isoformat() if row.expires_at else None,
    }


class ClientRegistry:
    """Authenticates API keys against an in-memory copy of the open keys."""

    def __init__(
        self,
        db: Engine,
        refresh_interval: float,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], dt.date] | None = None,
    ) -> None:
        self._db = db
        self._interval = refresh_interval
        self._clock = clock
        # None until a read succeeds: no key can be told valid or invalid before that.
        self._by_id: dict[str, ApiClient] | None = None
        self._loaded_at: float | None = None  # the last read attempted, successful or not
        self._lock = threading.Lock()
        # R-OPS-3: the last day each key is known used (written, or read from the database),
        # and the days still to write (at the next load).
        # The day (Europe/Paris) and the Unix time it ends: recomputed once a day (each time
        # when the tests give their own ``today``).
        self._day_at: Callable[[float], tuple[dt.date, float]] = (
            _paris_day if today is None else (lambda now: (today(), now))
        )
        self._day: dt.date
        self._day_ends: float
        self._day, self._day_ends = self._day_at(unix_now())
        self._used: dict[str, dt.date] = {}
        self._unwritten: dict[str, dt.date] = {}

    @property
    def loaded(self) -> bool:
        """Whether the keys have been read at least once (else no key can be checked)."""
        return self._by_id is not None

    def load(self) -> bool:
        """Read the open keys now; return whether it worked. On a database error the copy
        held is kept (logged): valid keys keep working, revoked ones stay revoked. The days
        keys were used since the last load are written first (R-OPS-3)."""
        self.write_uses()
        try:
            with self._db.connect() as conn:
                rows = conn.execute(
                    select(
                        ApiClientRecord.key_id,
                        ApiClientRecord.name,
                        ApiClientRecord.services,
                        ApiClientRecord.key_hash,
                        ApiClientRecord.created_at,
                        ApiClientRecord.expires_at,
                        ApiClientRecord.last_used_on,
                    ).where(ApiClientRecord.revoked_at.is_(None))
                ).all()
        except SQLAlchemyError as exc:
            if self._by_id is None:
                log.warning("cannot read the API keys (503 KEYS_UNAVAILABLE until read): %s", exc)
            else:
                log.warning("cannot re-read the API keys, keeping %d: %s", len(self._by_id), exc)
            self._loaded_at = self._clock()
            return False
        self._by_id = {
            r.key_id: ApiClient(
                r.key_id,
                r.name,
                frozenset(s for s in r.services.split(",") if s),
                r.key_hash,
                r.created_at,
                expires_at=r.expires_at,
                last_used_on=r.last_used_on,
            )
            for r in rows
        }
        for r in rows:  # another worker's use of today: nothing left to write for it
            if r.last_used_on is not None and r.last_used_on >= self._used.get(
                r.key_id, r.last_used_on
            ):
                self._used[r.key_id] = r.last_used_on
        self._loaded_at = self._clock()
        return True

    def refresh(self) -> None:
        """Re-read the keys if the last read (or attempt) is ``refresh_interval`` old."""
        loaded = self._loaded_at
        if loaded is not None and self._clock() - loaded < self._interval:
            return
        # One thread re-reads; the others answer from the copy they have (if any).
        if self._lock.acquire(blocking=loaded is None):
            try:
                if self._loaded_at is loaded:
                    self.load()
            finally:
                self._lock.release()

    def write_uses(self) -> None:
        """Write the days keys were last used (one UPDATE per key, changing nothing when the
        row already holds that day or a later one); on failure they wait for the next load.
        Called by each load, and when a worker exits (``pdp.web.server``)."""
        unwritten, self._unwritten = self._unwritten, {}
        if not unwritten:
            return
        try:
            with self._db.begin() as conn:
                for key_id, day in unwritten.items():
                    conn.execute(
                        update(ApiClientRecord)
                        .where(
                            ApiClientRecord.key_id == key_id,
                            or_(
                                ApiClientRecord.last_used_on.is_(None),
                                ApiClientRecord.last_used_on < day,
                            ),
                        )
                        .values(last_used_on=day)
                    )
        except SQLAlchemyError as exc:
            log.warning("cannot write when %d API keys were last used: %s", len(unwritten), exc)
            for key_id, day in unwritten.items():
                self._unwritten.setdefault(key_id, day)

    def named(self, name: str) -> list[ApiClient]:
        """The open keys of ``name`` in the copy held."""
        return [c for c in (self._by_id or {}).values() if c.name == name]

    def authenticate(self, key: str | None) -> ApiClient:
        """The client holding ``key``; raise Unauthorized (401) if it has none, or
        Unavailable (503 KEYS_UNAVAILABLE) while the keys have never been read."""
        if not key:
            raise Unauthorized(
                f"Authentification requise : en-tête {HEADER} absent.", "API_KEY_REQUIRED"
            )
        match = KEY_PATTERN.fullmatch(key)
        if match is None:
            raise Unauthorized("Clé d'API invalide.", "INVALID_API_KEY")
        self.refresh()
        by_id = self._by_id
        if by_id is None:
            raise Unavailable(
                "Les clés d'API ne peuvent pas être vérifiées pour l'instant (base de données "
                "injoignable) ; réessayer.",
                "KEYS_UNAVAILABLE",
            )
        client = by_id.get(match.group(1))
        if client is None or not hmac.compare_digest(client.key_hash, key_digest(key)):
            raise Unauthorized("Clé d'API invalide ou révoquée.", "INVALID_API_KEY")
        now = unix_now()
        expiry = client.expiry
        if expiry is not None and now >= expiry:  # R-OPS-2: a float comparison
            ended = dt.datetime.fromtimestamp(expiry, dt.UTC)
            raise Unauthorized(
                f"Clé d'API expirée depuis le {ended:%Y-%m-%d %H:%M} UTC.",
                "API_KEY_EXPIRED",
            )
        if now >= self._day_ends:  # midnight in Paris passed: a new day of use
            self._day, self._day_ends = self._day_at(now)
        today = self._day
        if self._used.get(client.key_id) != today:  # R-OPS-3: once a day, written later
            self._used[client.key_id] = today
            self._unwritten[client.key_id] = today
        return client
