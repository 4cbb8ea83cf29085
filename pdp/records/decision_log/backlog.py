"""What waits in a decision log directory: the bytes of its segments not shipped (or not
delivered to syslog) yet, and the entries set aside in its ``rejected.jsonl``."""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pdp.records.decision_log import files
from pdp.records.decision_log.wal import REJECTED, SEGMENT_SUFFIX


@dataclass
class Backlog:
    """What waits in a decision log directory (``pdp logs status``)."""

    segments: int
    pending_bytes: int
    rejected_path: Path
    rejected: int
    last_rejected: dict[str, Any] | None


def backlog(directory: str | Path) -> Backlog:
    """The segments of ``directory`` not fully shipped (and their bytes left), and the entries
    set aside in its rejected.jsonl (how many, and the last one)."""
    directory = Path(directory)
    pending = []
    for path in directory.glob(f"*{SEGMENT_SUFFIX}"):
        try:
            pending.append(path.stat().st_size - files._read_offset(path))
        except FileNotFoundError:
            continue  # shipped and deleted meanwhile
    target = directory / REJECTED
    try:
        records = target.read_bytes().splitlines()
    except FileNotFoundError:
        records = []
    last = None
    if records:  # a line edited by hand, or being written, is counted, not shown
        with contextlib.suppress(orjson.JSONDecodeError):
            last = orjson.loads(records[-1])
    return Backlog(len(pending), sum(pending), target, len(records), last)


def directory_pending(directory: Path) -> tuple[int, int]:
    """The bytes of the directory's segments not shipped to the database yet, and not
    delivered to syslog yet."""
    pending = unforwarded = 0
    for path in directory.glob(f"*{SEGMENT_SUFFIX}"):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue  # shipped and deleted meanwhile
        pending += max(0, size - files._read_offset(path))
        unforwarded += max(0, size - files._read_offset(path, files.FORWARDED))
    return pending, unforwarded


def append_rejected(directory: Path, data: bytes) -> None:
    """Append whole lines to the directory's rejected.jsonl and fsync it. It stays JSON Lines:
    a line torn by a crash is cut off first (the entries it held were not set aside yet, so
    they come again), and so is a write that fails (disk full)."""
    target = directory / REJECTED
    created = not target.exists()
    fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the shippers of every process append here
        end = whole_lines_end(fd)
        os.ftruncate(fd, end)
        try:
            files._write_all(fd, data)
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)  # and with it the lock
    if created:
        files._fsync_dir(directory)


def whole_lines_end(fd: int, block: int = 1 << 16) -> int:
    """The offset just after the last newline of the file (0 if it has none)."""
    end = os.fstat(fd).st_size
    while end > 0:
        start = max(0, end - block)
        cut = os.pread(fd, end - start, start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0
