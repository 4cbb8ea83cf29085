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
    for p in (path, _offset_path(path)):
        p.unlink(missing_ok=True)


def _offset_path(path: Path) -> Path:
    return path.with_name(path.name + ".shipped")


def _read_offset(path: Path) -> int:
    try:
        return int(_offset_path(path).read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _write_offset(path: Path, offset: int) -> None:
    tmp = path.with_name(f".{path.name}.shipped.new")
    tmp.write_text(str(offset))
    os.replace(tmp, _offset_path(path))
