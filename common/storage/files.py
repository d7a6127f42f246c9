"""File naming shared by the log and its segments (durable-write helpers: raftka.common.files)."""

from __future__ import annotations

import re
from pathlib import Path

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
SEGMENT_FILE_RE = re.compile(r"^(\d{20})\.(log|index|timeindex)$")
DELETED_SUFFIX = ".deleted"
"""Files of a segment waiting for ``file.delete.delay.ms`` to pass before they are removed."""
TEMP_SUFFIXES = (DELETED_SUFFIX, ".cleaned", ".swap", ".tmp")


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
