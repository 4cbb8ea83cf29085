"""Signed checkpoints of the audit chain's head, kept outside the database.

The chain (``pdp.records.audit_trail``) shows a record edited, inserted or deleted in its middle,
and its head
in ``policy_revision`` shows records cut off its end, unless whoever cuts them also moves the
head back: the database alone cannot show that. A checkpoint is the head as the service saw
it, ``{generation, audit_seq, audit_hash, revision, written_at, host, pid}``, signed with
HMAC-SHA-256 under ``PDP_AUDIT_KEY`` (plain SHA-256 without a key: development only) and
written as one file of ``PDP_AUDIT_CHECKPOINT_DIR``, a directory on another volume (copied to
another host). ``pdp audit verify`` then requires the chain to hold the latest checkpoint's
record with that very hash (``AuditChain.verify``).

Checkpoints of one generation are one history. The writer (``CheckpointWriter.step``: every
``PDP_AUDIT_CHECKPOINT_INTERVAL`` seconds in each worker, and ``pdp audit checkpoint``) writes
the head only if the chain still holds the latest checkpoint; otherwise it refuses and logs an
error, so that a cut chain is never blessed by a newer checkpoint. The latest checkpoint is the
one with the highest (generation, seq): no clock is trusted. A restore from a backup goes
behind the latest checkpoint legitimately; the operator acknowledges it with
``pdp audit checkpoint --after-restore``, which starts the next generation and names the
checkpoint it supersedes.

A file's name is its generation, seq and hash; it is written to a temporary file, synced, then
renamed: two workers checkpointing the same head write the same name, and a reader never sees
half a file.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select

from pdp.adapters.sql.models import AuditRecord, PolicyRevision
from pdp.core.config import Settings, weak_secret
from pdp.core.errors import ConfigurationError
from pdp.observability import metrics
from pdp.records.audit_trail import GENESIS, missing, record_digest

log = logging.getLogger("pdp.audit")

FORMAT = "pdp-audit-checkpoint/1"
_NAME = re.compile(r"^audit-g(\d{4,})-(\d{12,})-([0-9a-f]{16})\.json$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = {
    "format": str,
    "generation": int,
    "audit_seq": int,
    "audit_hash": str,
    "revision": int,
    "written_at": str,
    "host": str,
    "pid": int,
}


class CheckpointError(Exception):
    """A checkpoint cannot be read, is not signed with this key, or the chain lacks it."""


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head as the service saw it; ``supersedes`` names (seq, hash) of the latest
    checkpoint of the previous generation when this one acknowledges a restore."""

    generation: int
    seq: int
    hash: str
    revision: int
    written_at: str
    host: str
    pid: int
    supersedes: tuple[int, str] | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """The file name: sorted by name is sorted by (generation, seq)."""
        return f"audit-g{self.generation:04d}-{self.seq:012d}-{self.hash[:16]}.json"

    def fields(self) -> dict[str, Any]:
        """What is signed (everything in the file but the signature)."""
        return {
            "format": FORMAT,
            "generation": self.generation,
            "audit_seq": self.seq,
            "audit_hash": self.hash,
            "revision": self.revision,
            "written_at": self.written_at,
            "host": self.host,
            "pid": self.pid,
            "supersedes": (
                None
                if self.supersedes is None
                else {"audit_seq": self.supersedes[0], "audit_hash": self.supersedes[1]}
            ),
        }

    def describe(self) -> str:
        """For messages: which checkpoint, when and where it was written."""
        where = self.path.name if self.path is not None else self.name
        return f"checkpoint {where} (written {self.written_at} by {self.host} pid {self.pid})"


def sign(key: bytes | None, fields: dict[str, Any]) -> str:
    """The signature of a checkpoint's fields: HMAC-SHA-256 with ``key``, else SHA-256. (The
    fields' ``format`` keeps it apart from any audit record's hash.)"""
    return record_digest(key, fields)


def encode(checkpoint: Checkpoint, key: bytes | None) -> bytes:
    """The file's content: the fields and their signature, one JSON object and a newline."""
    fields = checkpoint.fields()
    return orjson.dumps(
        {**fields, "signature": sign(key, fields)},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE,
    )


def load(path: Path, key: bytes | None) -> Checkpoint:
    """Read and check one checkpoint file; raise CheckpointError saying what is wrong."""
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise CheckpointError(f"{path.name}: unreadable ({exc.strerror or exc})") from None
    except orjson.JSONDecodeError:
        raise CheckpointError(f"{path.name}: not a JSON checkpoint") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path.name}: not a {FORMAT} file")
    for name, kind in _FIELDS.items():
        value = data.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(f"{path.name}: field {name} missing or not a {kind.__name__}")
    if not _HEX64.match(data["audit_hash"]):
        raise CheckpointError(f"{path.name}: malformed hash")
    signature = data.pop("signature", None)
    if not isinstance(signature, str):
        raise CheckpointError(f"{path.name}: not signed")
    if not _same(sign(key, data), signature):
        raise CheckpointError(
            f"{path.name}: the signature does not match (forged or edited, or written with "
            "another PDP_AUDIT_KEY)"
        )
    superseded = data.get("supersedes")
    if superseded is not None and not (
        isinstance(superseded, dict)
        and isinstance(superseded.get("audit_seq"), int)
        and isinstance(superseded.get("audit_hash"), str)
    ):
        raise CheckpointError(f"{path.name}: field supersedes malformed")
    return Checkpoint(
        generation=data["generation"],
        seq=data["audit_seq"],
        hash=data["audit_hash"],
        revision=data["revision"],
        written_at=data["written_at"],
        host=data["host"],
        pid=data["pid"],
        supersedes=(superseded["audit_seq"], superseded["audit_hash"]) if superseded else None,
        path=path,
    )


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass
class Scan:
    """What a checkpoint directory holds: the latest valid checkpoint, the number of files
    read, and one problem per file that is not a valid checkpoint."""

    latest: Checkpoint | None = None
    read: int = 0
    problems: list[str] = field(default_factory=list)


def scan(directory: str | Path, key: bytes | None, *, everything: bool = True) -> Scan:
    """Read the directory's checkpoints, latest first; stop at the first valid one unless
    ``everything`` (verify reads every file, so that a forged one is reported wherever it is)."""
    found = Scan()
    try:
        names = [p for p in Path(directory).iterdir() if p.name.startswith("audit-")]
    except OSError as exc:
        raise CheckpointError(
            f"PDP_AUDIT_CHECKPOINT_DIR {directory}: unreadable ({exc.strerror or exc})"
        ) from None
    ranked: list[tuple[tuple[int, int], Path]] = []
    for path in names:
        m = _NAME.match(path.name)
        if m is None:
            found.problems.append(f"{path.name}: not a checkpoint file name")
            continue
        ranked.append(((int(m.group(1)), int(m.group(2))), path))
    for _, path in sorted(ranked, reverse=True):
        found.read += 1
        try:
            checkpoint = load(path, key)
        except CheckpointError as exc:
            found.problems.append(str(exc))
            continue
        if path.name != checkpoint.name:
            found.problems.append(f"{path.name}: its name does not match its content")
            continue
        if found.latest is None:
            found.latest = checkpoint
            if not everything:
                break
    return found


def write(directory: str | Path, checkpoint: Checkpoint, key: bytes | None) -> Path:
    """Write ``checkpoint`` atomically (temporary file, fsync, rename, fsync of the directory);
    return its path. A file of the same name already there is the same head: left as it is."""
    folder = Path(directory)
    final = folder / checkpoint.name
    if final.exists():
        return final
    # Hidden (a leading dot): a reader skips it; per process and thread: writers never share one.
    temporary = folder / f".{checkpoint.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(temporary, "wb") as out:
            out.write(encode(checkpoint, key))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return final


# -- comparing a chain with a checkpoint -------------------------------------------------------


AFTER_RESTORE = (
    "if the database was restored from a backup, check the restored chain against the "
    "checkpoint taken before the backup (pdp audit verify --checkpoint FILE), then acknowledge "
    "the restore (pdp audit checkpoint --after-restore)"
)


# -- the writer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    """The chain's head and the policy revision, read together."""

    seq: int
    hash: str
    revision: int


def read_head(conn: Connection) -> Head:
    """The head (``policy_revision``'s audit_seq, audit_hash, revision)."""
    row = conn.execute(
        select(PolicyRevision.audit_seq, PolicyRevision.audit_hash, PolicyRevision.revision).where(
            PolicyRevision.id == 1
        )
    ).one()
    return Head(int(row.audit_seq), str(row.audit_hash), int(row.revision))


def hash_at(conn: Connection, seq: int) -> str | None:
    """The hash of record ``seq``, None if there is none (seq 0: the genesis)."""
    if seq == 0:
        return GENESIS
    found = conn.execute(select(AuditRecord.hash).where(AuditRecord.seq == seq)).scalar()
    return None if found is None else str(found)


class CheckpointWriter:
    """Writes checkpoints of the chain's head into a directory (``step``), every ``interval``
    seconds from a daemon thread once started."""

    def __init__(
        self,
        db: Engine,
        directory: str | Path,
        key: str,
        *,
        interval: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.directory = Path(directory)
        self.key = key.encode() if key else None
        self.interval = interval
        self.clock = clock
        self._stop = threading.Event()
        self._thread_pid: int | None = None
        self._lock = threading.Lock()

    def step(self, after_restore: bool = False) -> Checkpoint:
        """Checkpoint the head now; return the new checkpoint, or the latest if the head has
        not moved since. Raise CheckpointError if the chain lacks the latest checkpoint (or,
        with ``after_restore``, if there is no restore to acknowledge)."""
        # The directory first, then the database: a checkpoint another worker writes in
        # between is then of a head this snapshot holds too (the chain only grows), never of
        # one it has not seen yet, which would look like missing records.
        latest = scan(self.directory, self.key, everything=False).latest
        with self.db.connect() as conn:
            if conn.dialect.name == "postgresql":
                # The head and the record compared in one snapshot (see AuditChain.verify).
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            head = read_head(conn)
            lacking = None
            if latest is not None:
                lacking = missing(latest, head.seq, hash_at(conn, latest.seq))
        if after_restore:
            if latest is None or lacking is None:
                raise CheckpointError(
                    "nothing to acknowledge: the chain holds the latest checkpoint"
                    if latest is not None
                    else f"no checkpoint in {self.directory}: nothing to acknowledge"
                )
            return self._write(head, latest.generation + 1, (latest.seq, latest.hash))
        if latest is not None:
            if lacking is not None:
                raise CheckpointError(f"{lacking}; not checkpointing ({AFTER_RESTORE})")
            if (latest.seq, latest.hash) == (head.seq, head.hash):
                return latest
        return self._write(head, latest.generation if latest else 0, None)

    def _write(self, head: Head, generation: int, supersedes: tuple[int, str] | None) -> Checkpoint:
        checkpoint = Checkpoint(
            generation=generation,
            seq=head.seq,
            hash=head.hash,
            revision=head.revision,
            written_at=dt.datetime.fromtimestamp(self.clock(), dt.UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            host=socket.gethostname(),
            pid=os.getpid(),
            supersedes=supersedes,
        )
        path = write(self.directory, checkpoint, self.key)
        return replace(checkpoint, path=path)

    def start(self) -> None:
        """Checkpoint every ``interval`` seconds from a daemon thread of this process (once per
        process, like ``pdp.records.decision_log.Shipper.start``)."""
        with self._lock:
            if self._thread_pid == os.getpid():
                return
            self._thread_pid = os.getpid()
        threading.Thread(target=self._run, name="pdp-audit-checkpoint", daemon=True).start()

    def stop(self) -> None:
        """Stop the thread after its current step."""
        self._stop.set()

    def _run(self) -> None:
        # At once, then every interval: a server started on a chain that lacks the latest
        # checkpoint (a restore not acknowledged, a cut) says so from the start.
        self.step_logged()
        while not self._stop.wait(self.interval):
            self.step_logged()

    def step_logged(self) -> Checkpoint | None:
        """``step``, its failure logged and counted instead of raised (the thread's round)."""
        try:
            checkpoint = self.step()
        except CheckpointError as exc:
            metrics.AUDIT_CHECKPOINT_ERRORS.inc()
            log.error("audit checkpoint refused: %s", exc)
            return None
        except Exception as exc:  # the database or the disk failing: try again next round
            metrics.AUDIT_CHECKPOINT_ERRORS.inc()
            log.warning("audit checkpoint failed, will retry: %s", exc)
            return None
        metrics.AUDIT_CHECKPOINT_OK.set(self.clock())
        return checkpoint


# -- from the settings -------------------------------------------------------------------------


def checkpoint_key(settings: Settings) -> str:
    """The key checkpoints are signed with: ``PDP_AUDIT_KEY``. In production a missing or weak
    key is refused (ConfigurationError), as ``refuse_defaults`` refuses it at start-up."""
    if settings.production:
        why = weak_secret(settings.audit_key.get_secret_value())
        if why:
            raise ConfigurationError(
                f"PDP_ENV=production refuses unsigned audit checkpoints: PDP_AUDIT_KEY: {why}"
            )
    return settings.audit_key.get_secret_value()


def checkpoint_dir(settings: Settings) -> Path:
    """``PDP_AUDIT_CHECKPOINT_DIR``, which must be an existing, writable directory (it is not
    created: a volume that is not mounted must not be replaced by a directory of the root
    volume)."""
    directory = Path(settings.audit_checkpoint_dir)
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigurationError(
            f"PDP_AUDIT_CHECKPOINT_DIR {directory}: not an existing directory this process "
            "may write (is its volume mounted?)"
        )
    return directory


def open_writer(settings: Settings, db: Engine) -> CheckpointWriter | None:
    """The service's checkpoint writer, None without ``PDP_AUDIT_CHECKPOINT_DIR``."""
    if not settings.audit_checkpoint_dir:
        if settings.production:
            log.warning(
                "PDP_AUDIT_CHECKPOINT_DIR is not set: no checkpoint of the audit chain is "
                "written, and records cut off its end with the head moved back go unnoticed"
            )
        return None
    return CheckpointWriter(
        db,
        checkpoint_dir(settings),
        checkpoint_key(settings),
        interval=settings.audit_checkpoint_interval,
    )


@dataclass(frozen=True)
class TrailReport:
    """``verify_trail``'s outcome: ``lines`` to print, the first one the verdict."""

    ok: bool
    lines: list[str]


def verify_trail(settings: Settings, db: Engine, checkpoint_file: str | None = None) -> TrailReport:
    """The chain (``AuditChain.verify``) against ``checkpoint_file``, or the latest checkpoint
    of ``PDP_AUDIT_CHECKPOINT_DIR``; every invalid checkpoint file of the directory is a
    failure too."""
    from pdp.records.audit_trail import AuditChain

    key = checkpoint_key(settings)
    raw_key = key.encode() if key else None
    problems: list[str] = []
    checkpoint: Checkpoint | None = None
    if checkpoint_file is not None:
        try:
            checkpoint = load(Path(checkpoint_file), raw_key)
        except CheckpointError as exc:
            return TrailReport(False, [f"BROKEN: checkpoint {exc}"])
        compared = f"it holds the {checkpoint.describe()}"
    elif settings.audit_checkpoint_dir:
        found = scan(settings.audit_checkpoint_dir, raw_key)
        problems = [f"checkpoint {p}" for p in found.problems]
        checkpoint = found.latest
        compared = (
            f"it holds the latest {checkpoint.describe()}"
            if checkpoint is not None
            else f"no checkpoint in {settings.audit_checkpoint_dir} yet: none compared"
        )
    else:
        compared = "no checkpoint compared (PDP_AUDIT_CHECKPOINT_DIR is not set)"
    report = AuditChain(key).verify(db, checkpoint=checkpoint)
    if report.ok and not problems:
        return TrailReport(True, [f"ok: {report.message}; {compared}"])
    lines = [] if report.ok else [f"BROKEN: {report.message}"]
    lines += [f"BROKEN: {p}" for p in problems]
    if report.lacks_checkpoint and checkpoint_file is None:
        lines.append(f"({AFTER_RESTORE})")
    return TrailReport(False, lines)
