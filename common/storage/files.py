"""File naming shared by the log and its segments (durable-write helpers: raftka.common.files)."""

from __future__ import annotations

import re
from pathlib import Path

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
TXN_INDEX_SUFFIX = ".txnindex"
SEGMENT_FILE_RE = re.compile(r"^(\d{20})\.(log|index|timeindex|txnindex)$")
DELETED_SUFFIX = ".deleted"
"""Files of a segment waiting for ``file.delete.delay.ms`` to pass before they are removed."""
TEMP_SUFFIXES = (DELETED_SUFFIX, ".cleaned", ".swap", ".tmp")
"""Suffixes of files removed when a log is opened (``*.log.swap`` files are completed first)."""


def segment_file_stem(base_offset: int) -> str:
    """The 20-digit zero-padded base offset that names a segment's files."""
    return f"{base_offset:020d}"


CLEANED_SUFFIX = ".cleaned"
"""Files of a segment the log cleaner is writing; removed when the log is opened."""
SWAP_SUFFIX = ".swap"
"""Files of a cleaned segment whose swap was decided; completed when the log is opened."""


def segment_paths(directory: Path, base_offset: int, suffix: str = "") -> tuple[Path, Path, Path]:
    """(.log, .index, .timeindex) paths of the segment at ``base_offset``, each name followed
    by ``suffix`` (e.g. ``.cleaned``) when given."""
    stem = segment_file_stem(base_offset)
    return (
        directory / (stem + LOG_SUFFIX + suffix),
        directory / (stem + INDEX_SUFFIX + suffix),
        directory / (stem + TIME_INDEX_SUFFIX + suffix),
    )


def txn_index_path(directory: Path, base_offset: int, suffix: str = "") -> Path:
    """The ``.txnindex`` path of the segment at ``base_offset`` (see :func:`segment_paths`)."""
    return directory / (segment_file_stem(base_offset) + TXN_INDEX_SUFFIX + suffix)
