"""One cleaning pass over a segmented log: map the dirty range, rewrite, swap.

:func:`clean_log` is the storage half of log compaction (the broker's
:mod:`raftka.broker.log.cleaner` decides which log and which range, and keeps the checkpoint):

1. the non-active segments that end at or below ``end_offset`` are taken with the log's
   generation (:meth:`SegmentedLog.cleanable_segments`);
2. an offset map (key -> latest offset) is built over [first_dirty, end) of them; when it
   reaches ``max_keys`` it stops at the end of the segment it is in, and the pass cleans up to
   there (the rest is cleaned next time);
3. the segments below the map's end are copied in groups (each at most ``segment.bytes``)
   into ``*.cleaned`` segments (:mod:`raftka.common.storage.cleaned_segment`), each swapped
   in at once (:meth:`SegmentedLog.replace_segments`).

Nothing holds the log's lock while reading or writing: appends and reads go on. A log that
changed meanwhile (truncated, segments deleted, closed) aborts the pass at its next swap; the
partial output is deleted and the groups already swapped stay (each swap is whole).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from raftka.common.records.batch import BatchHeader
from raftka.common.records.errors import RecordError
from raftka.common.storage.cleaned_segment import (
    CleaningStats,
    Progress,
    group_segments,
    write_cleaned_segment,
)
from raftka.common.storage.compaction import CleaningRules, OffsetMap, add_to_offset_map
from raftka.common.storage.errors import StorageError
from raftka.common.storage.log import SegmentedLog
from raftka.common.storage.segment import LogSegment

log = structlog.get_logger(__name__)

DEFAULT_MAX_KEYS = 4_000_000
"""Keys one pass maps at most (Kafka bounds its map by ``log.cleaner.dedupe.buffer.size``)."""

Swap = Callable[[LogSegment, Sequence[LogSegment], int], int | None]
"""Swaps a cleaned segment in (:meth:`SegmentedLog.replace_segments`, possibly under a
caller's lock): returns the new generation, or None when the log changed."""


@dataclass(slots=True)
class CleanResult:
    """What a pass did."""

    map_end: int
    """The first offset the map did not cover: where the next pass's dirty range begins."""
    completed: bool
    """False when the log changed meanwhile and the pass stopped (nothing half-done stays)."""
    bytes_before: int = 0
    bytes_after: int = 0
    segments_before: int = 0
    segments_after: int = 0
    keys: int = 0
    stats: CleaningStats = field(default_factory=CleaningStats)


_READ_ERRORS = (OSError, StorageError, RecordError)


def _aborted(seg_log: SegmentedLog, base_offset: int, result: CleanResult) -> CleanResult:
    result.completed = False
    log.info(
        "log_cleaning_aborted",
        directory=str(seg_log.directory),
        base_offset=base_offset,
        reason="log_changed",
    )
    return result


def _no_progress(_bytes: int) -> None:
    return None


def build_offset_map(
    segments: Sequence[LogSegment],
    first_dirty: int,
    *,
    max_keys: int,
    progress: Progress,
    skip: Callable[[BatchHeader], bool] = lambda _header: False,
) -> tuple[OffsetMap, int]:
    """The offset map over the offsets >= ``first_dirty`` of ``segments``, and where it ends
    (a segment boundary); batches ``skip`` is true for (aborted transactions') are left out."""
    offset_map: OffsetMap = {}
    end = first_dirty
    for segment in segments:
        if segment.next_offset <= first_dirty:
            continue
        for _pos, view in segment.batches_from(0):
            header = BatchHeader.parse(view)
            if header.last_offset >= first_dirty and not skip(header):
                add_to_offset_map(offset_map, view, first_dirty, segment.next_offset)
            progress(header.size)
        end = segment.next_offset
        if len(offset_map) >= max_keys:
            break
    return offset_map, end


def clean_log(
    seg_log: SegmentedLog,
    *,
    first_dirty: int,
    end_offset: int,
    rules: CleaningRules,
    max_keys: int = DEFAULT_MAX_KEYS,
    progress: Progress = _no_progress,
    swap: Swap | None = None,
) -> CleanResult | None:
    """Cleans ``seg_log`` with a map of [first_dirty, end_offset) (see the module doc);
    None when there is nothing dirty below ``end_offset`` in non-active segments."""
    generation, segments = seg_log.cleanable_segments(end_offset)
    if not segments or segments[-1].next_offset <= first_dirty:
        return None
    try:
        offset_map, map_end = build_offset_map(
            segments, first_dirty, max_keys=max_keys, progress=progress, skip=rules.aborted
        )
    except _READ_ERRORS:
        if seg_log.generation == generation:
            raise
        return _aborted(seg_log, segments[0].base_offset, CleanResult(first_dirty, False))
    to_clean = [s for s in segments if s.next_offset <= map_end]
    result = CleanResult(
        map_end=map_end,
        completed=True,
        bytes_before=sum(s.size for s in to_clean),
        segments_before=len(to_clean),
        keys=len(offset_map),
    )
    do_swap: Swap = swap if swap is not None else seg_log.replace_segments
    config = seg_log.config
    for group in group_segments(to_clean, config.segment_bytes):
        try:
            cleaned, stats = write_cleaned_segment(
                seg_log.directory,
                group,
                offset_map,
                rules,
                index_interval_bytes=config.index_interval_bytes,
                progress=progress,
            )
        except _READ_ERRORS:
            # Segments deleted meanwhile (closed files) read as errors: the log changed.
            if seg_log.generation == generation:
                raise
            return _aborted(seg_log, group[0].base_offset, result)
        swapped = do_swap(cleaned, group, generation)
        if swapped is None:
            cleaned.delete()
            return _aborted(seg_log, group[0].base_offset, result)
        generation = swapped
        result.stats.add(stats)
        result.bytes_after += cleaned.size
        result.segments_after += 1
    return result
