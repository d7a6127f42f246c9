"""Small durable-file helpers shared by every on-disk structure."""

from __future__ import annotations

import os
from pathlib import Path

from raftka.common.faults import FAULTS


def fsync_dir(path: Path) -> None:
    """Make a directory entry change (create, rename, delete) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new content:
    write a temporary file, fsync it, rename it over the target, fsync the directory. With
    ``durable=False`` no fsync: a crash may leave the old content, the new, or an empty or
    partial file (for files that are rebuilt when found stale or unreadable)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if durable:
            FAULTS.before_fsync()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, position: int) -> None:
    """Writes all of ``data`` at ``position`` (``os.pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written


def pread_exact(fd: int, size: int, position: int) -> bytes:
    """Reads ``size`` bytes at ``position``; fewer only if the file ends first."""
    data = os.pread(fd, size, position)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, position + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)
