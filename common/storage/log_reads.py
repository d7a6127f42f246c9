"""Reading a segmented log: whole batches (copied, or as a region of a segment file), one
batch's header, sequential replay, the timestamp lookup and a scrubber's bounded step. Plain
functions over a :class:`~raftka.common.storage.log_state.LogState`, called by
:class:`~raftka.common.storage.log.SegmentedLog` under its lock (see its methods of the same
names for what each promises); what a read may return is decided in :mod:`.read_checks`.
"""

from __future__ import annotations

from collections.abc import Iterator

from raftka.common.records.batch import BatchHeader
from raftka.common.storage.log_state import LogState
from raftka.common.storage.read_checks import (
    cut_before,
    find_or_hole,
    verified_prefix,
    whole_batches_prefix,
)
from raftka.common.storage.region import FileRegion
from raftka.common.storage.results import (
    ReadResult,
    RegionReadResult,
    ScrubProgress,
    TimestampOffset,
)
from raftka.common.storage.segment import LogSegment


def read(state: LogState, offset: int, max_bytes: int, *, verify: bool) -> ReadResult:
    """:meth:`SegmentedLog.read <raftka.common.storage.log.SegmentedLog.read>`."""
    state.check_readable(offset)
    segment = state.segment_holding(offset)
    where = state.directory.name
    position, header = find_or_hole(segment, offset, state.damage_on_open, where)
    want = min(max(max_bytes, header.size), segment.size - position)
    chunk = segment.read(position, want)
    if verify:
        end, last_offset = verified_prefix(segment, position, chunk, header, offset, where)
    else:
        end, last_offset = whole_batches_prefix(segment, position, chunk, header)
    return ReadResult(
        records=chunk if end == len(chunk) else chunk[:end],
        base_offset=header.base_offset,
        last_offset=last_offset,
        log_start_offset=state.log_start,
        log_end_offset=state.log_end,
    )


def read_region(state: LogState, offset: int, max_bytes: int, bound: int) -> RegionReadResult:
    """:meth:`SegmentedLog.read_region
    <raftka.common.storage.log.SegmentedLog.read_region>`."""
    state.check_readable(offset)
    segment = state.segment_holding(offset)
    where = state.directory.name
    position, header = find_or_hole(segment, offset, state.damage_on_open, where)
    want = min(max(max_bytes, header.size), segment.size - position)
    with segment.mapped(position, want) as (view, fd):
        end, last_offset = verified_prefix(segment, position, view, header, offset, where)
        if last_offset >= bound:
            cut = cut_before(view, end, bound)
            if cut is not None:
                end, last_offset = cut
        region = FileRegion.duplicate(fd, position, end)
    return RegionReadResult(
        region=region,
        base_offset=header.base_offset,
        last_offset=last_offset,
        log_start_offset=state.log_start,
        log_end_offset=state.log_end,
    )


def scrub(
    state: LogState,
    base_offset: int,
    position: int,
    next_offset: int,
    max_bytes: int,
    generation: int,
) -> ScrubProgress:
    """:meth:`SegmentedLog.scrub <raftka.common.storage.log.SegmentedLog.scrub>`."""
    i = state.index_of(base_offset)
    if generation != state.generation or i < 0 or state.bases[i] != base_offset:
        return ScrubProgress(position, next_offset, 0, True)
    segment = state.segments[i]
    end_offset = state.bases[i + 1] if i + 1 < len(state.bases) else None
    return segment.verify(position, next_offset, max_bytes, end_offset=end_offset)


def batch_header_at(state: LogState, offset: int) -> BatchHeader:
    """Header of the stored batch that holds ``offset``."""
    state.check_readable(offset)
    return state.locate(offset)[2]


def batches_from(state: LogState, from_offset: int) -> Iterator[tuple[int, int, memoryview]]:
    """:meth:`SegmentedLog.iter_batches
    <raftka.common.storage.log.SegmentedLog.iter_batches>`: range errors are raised here,
    under the lock; the iterator returned runs without it."""
    if from_offset == state.log_end:
        return iter(())
    state.check_readable(from_offset)
    segment, position, _ = state.locate(from_offset)
    i = state.bases.index(segment.base_offset)
    return _iter_batches(state.segments[i:], position)


def _iter_batches(
    segments: list[LogSegment], position: int
) -> Iterator[tuple[int, int, memoryview]]:
    for k, segment in enumerate(segments):
        for _pos, view in segment.batches_from(position if k == 0 else 0):
            header = BatchHeader.parse(view)
            yield header.base_offset, header.last_offset, view


def offset_for_timestamp(state: LogState, timestamp: int) -> TimestampOffset | None:
    """:meth:`SegmentedLog.offset_for_timestamp
    <raftka.common.storage.log.SegmentedLog.offset_for_timestamp>`."""
    start = state.log_start
    for segment in state.segments:
        found = segment.find_timestamp(timestamp, start)
        if found is not None:
            return found
    return None
