"""File naming and durable-write helpers shared by the log and its segments."""

from __future__ import annotations

import os
import re
from pathlib import Path

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
SEGMENT_FILE_RE = re.compile(r"^(\d{20})\.(log|index|timeindex)$")
TEMP_SUFFIXES = (".deleted", ".cleaned", ".swap", ".tmp")


def segment_file_stem(base_offset: int) -> str:
    """The 20-digit zero-padded base offset that names a segment's files."""
    return f"{base_offset:020d}"


def segment_paths(directory: Path, base_offset: int) -> tuple[Path, Path, Path]:
    """(.log, .index, .timeindex) paths of the segment at ``base_offset``."""
    stem = segment_file_stem(base_offset)
    return (
        directory / (stem + LOG_SUFFIX),
        directory / (stem + INDEX_SUFFIX),
        directory / (stem + TIME_INDEX_SUFFIX),
    )


def fsync_dir(directory: Path) -> None:
    """Makes creations, renames and deletions in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, position: int) -> None:
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


def atomic_write(path: Path, data: bytes) -> None:
    """Replaces ``path`` with ``data`` atomically and durably (tmp + fsync + rename + dir fsync)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        pwrite_all(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
