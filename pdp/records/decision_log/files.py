"""The decision log's files: whole writes, truncation, directory syncs, and the offset file
beside each segment that says how far it was shipped (replaced atomically)."""

from __future__ import annotations

import os
from pathlib import Path


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _delete(path: Path) -> None:
    for p in (path, _offset_path(path), _offset_path(path, FORWARDED)):
        p.unlink(missing_ok=True)


SHIPPED, FORWARDED = "shipped", "forwarded"  # to the database; to syslog (PDP_DECISION_LOG_SYSLOG)


def _offset_path(path: Path, kind: str = SHIPPED) -> Path:
    return path.with_name(f"{path.name}.{kind}")


def _read_offset(path: Path, kind: str = SHIPPED) -> int:
    try:
        return int(_offset_path(path, kind).read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _write_offset(path: Path, offset: int, kind: str = SHIPPED) -> None:
    tmp = path.with_name(f".{path.name}.{kind}.new")
    tmp.write_text(str(offset))
    os.replace(tmp, _offset_path(path, kind))
