"""Swapping a cleaned segment into a log for the segments it replaces, and finishing, when
a log is opened, a swap that a crash interrupted.

A swap (:func:`replace_segments`, through :meth:`SegmentedLog.replace_segments
<raftka.common.storage.log.SegmentedLog.replace_segments>`) renames the cleaned segment's
files ``*.cleaned`` -> ``*.swap`` (log file last), then takes the old segments out of the log
(``*.deleted``), then strips ``.swap`` (log file first). So on disk:

- ``<base>.log.cleaned``: the swap was not decided; the old segments are the log (the
  ``*.cleaned`` files are deleted with the other temporary files);
- ``<base>.log.swap``: the swap was decided; every old segment in its offset range is deleted
  and the ``.swap`` files take the plain names (a missing index is rebuilt on load).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import structlog

from raftka.common.files import fsync_dir
from raftka.common.records.batch import BatchHeader
from raftka.common.storage.batch_scan import BatchScan
from raftka.common.storage.files import (
    SEGMENT_FILE_RE,
    SWAP_SUFFIX,
    segment_paths,
    txn_index_path,
)
from raftka.common.storage.log_state import LogState
from raftka.common.storage.segment import LogSegment

log = structlog.get_logger(__name__)

_SWAP_LOG_RE = re.compile(r"^(\d{20})\.log\.swap$")


def _swap_end_offset(path: Path, base: int) -> int | None:
    """The offset after the last whole batch of the swap file, or None if it has none."""
    fd = os.open(path, os.O_RDONLY)
    try:
        scan = BatchScan(fd, 0, os.fstat(fd).st_size)
        end: int | None = None
        for _pos, view in scan:
            end = BatchHeader.parse(view).next_offset
        return end if end is not None and end > base else None
    finally:
        os.close(fd)


def complete_swaps(directory: Path) -> bool:
    """Completes every decided swap in ``directory``; returns whether files changed."""
    names = os.listdir(directory)
    swaps = sorted(int(m.group(1)) for n in names if (m := _SWAP_LOG_RE.match(n)) is not None)
    if not swaps:
        return False
    bases = sorted({int(m.group(1)) for n in names if (m := SEGMENT_FILE_RE.match(n)) is not None})
    for base in swaps:
        swap_log, swap_index, swap_time_index = segment_paths(directory, base, SWAP_SUFFIX)
        swap_txn_index = txn_index_path(directory, base, SWAP_SUFFIX)
        end = _swap_end_offset(swap_log, base)
        if end is None:
            log.warning("swap_file_unreadable_deleted", path=str(swap_log))
            for path in (swap_log, swap_index, swap_time_index, swap_txn_index):
                path.unlink(missing_ok=True)
            continue
        replaced = [old for old in bases if base <= old < end]
        for old in replaced:
            for path in (*segment_paths(directory, old), txn_index_path(directory, old)):
                path.unlink(missing_ok=True)
        final_log, final_index, final_time_index = segment_paths(directory, base)
        os.replace(swap_log, final_log)
        for source, target in (
            (swap_index, final_index),
            (swap_time_index, final_time_index),
            (swap_txn_index, txn_index_path(directory, base)),
        ):
            with contextlib.suppress(FileNotFoundError):
                os.replace(source, target)
        log.info(
            "segment_swap_completed",
            directory=str(directory),
            base_offset=base,
            end_offset=end,
            replaced_base_offsets=replaced,
        )
    return True


def cleanable_segments(state: LogState, end_offset: int) -> tuple[int, tuple[LogSegment, ...]]:
    """:meth:`SegmentedLog.cleanable_segments
    <raftka.common.storage.log.SegmentedLog.cleanable_segments>`."""
    found = tuple(s for s in state.segments[:-1] if s.next_offset <= end_offset)
    return state.generation, found


def replace_segments(
    state: LogState, cleaned: LogSegment, old: Sequence[LogSegment], generation: int
) -> int | None:
    """:meth:`SegmentedLog.replace_segments
    <raftka.common.storage.log.SegmentedLog.replace_segments>`."""
    if state.closed or generation != state.generation:
        return None
    i = state.index_of(old[0].base_offset)
    current = state.segments[i : i + len(old)]
    if (
        i < 0
        or i + len(old) >= len(state.segments)
        or len(current) != len(old)
        or any(a is not b for a, b in zip(current, old, strict=True))
        or cleaned.base_offset != old[0].base_offset
        or cleaned.next_offset != old[-1].next_offset
    ):
        return None
    cleaned.rename_files(SWAP_SUFFIX, log_first=False)
    fsync_dir(state.directory)
    state.segments[i : i + len(old)] = [cleaned]
    state.bases[i : i + len(old)] = [cleaned.base_offset]
    state.generation += 1
    for segment in old:
        state.discard(segment)
    cleaned.rename_files("", log_first=True)
    fsync_dir(state.directory)
    return state.generation
