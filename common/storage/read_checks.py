"""What a read of a :class:`~raftka.common.storage.log.SegmentedLog` may return from a chunk
of segment bytes: whole batches only, each one verified (framing, CRC-32C, contiguous
offsets) unless the caller opts out, and where the damage is when there is nothing to return.

Functions over one segment and the bytes read from it; the log calls them under its lock.
O(1) Python work per batch.
"""

from __future__ import annotations

from raftka.common.records.batch import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    read_batch_size,
    validate,
)
from raftka.common.records.errors import RecordError
from raftka.common.storage.errors import CorruptLogError, DamagedBatchError
from raftka.common.storage.results import DamageReport
from raftka.common.storage.segment import LogSegment


def find_or_hole(
    segment: LogSegment, offset: int, known: DamageReport | None, where: str
) -> tuple[int, BatchHeader]:
    """Position and header of the batch of ``segment`` holding ``offset``. A segment that
    ends before ``offset`` has a hole: DamagedBatchError, with ``known`` (the damage found
    on open) when it names this segment."""
    found = segment.find(offset)
    if found is None:  # the segment ends before ``offset``: a hole
        if known is not None and known.segment_base_offset == segment.base_offset:
            raise DamagedBatchError(known, where=where)
        raise DamagedBatchError(
            DamageReport(
                segment.next_offset,
                segment.base_offset,
                segment.size,
                f"offsets from {segment.next_offset} up to at least {offset} are missing",
            ),
            where=where,
        )
    return found


def verified_prefix(
    segment: LogSegment,
    position: int,
    chunk: bytes | memoryview,
    first: BatchHeader,
    offset: int,
    where: str,
) -> tuple[int, int]:
    """(bytes, last offset) of the whole, valid, contiguous batches at the start of
    ``chunk`` (read at ``position``, holding ``offset``); DamagedBatchError when there are
    none. A damaged batch after intact ones ends the prefix: the next read meets it."""
    view = memoryview(chunk)
    size = len(chunk)
    end = 0
    expected = first.base_offset
    last_offset = expected - 1
    while size - end >= LOG_OVERHEAD:
        if end and end + read_batch_size(view, end) > size:
            break  # cut after the last whole batch
        try:
            batch = validate(view, end)
            if batch.base_offset != expected:
                raise CorruptLogError(
                    f"batch has base offset {batch.base_offset}, expected {expected}"
                )
        except (RecordError, CorruptLogError) as exc:
            if end:
                break  # serve the intact batches; the next read meets the damage
            damaged_at = expected if segment.base_offset <= expected <= offset else offset
            raise DamagedBatchError(
                DamageReport(damaged_at, segment.base_offset, position, exc.message),
                where=where,
            ) from exc
        end += batch.size
        expected = batch.next_offset
        last_offset = expected - 1
    if end == 0:
        raise DamagedBatchError(
            DamageReport(offset, segment.base_offset, position, "incomplete batch"),
            where=where,
        )
    return end, last_offset


def whole_batches_prefix(
    segment: LogSegment, position: int, chunk: bytes, first: BatchHeader
) -> tuple[int, int]:
    """(bytes, last offset) of the whole batches at the start of ``chunk`` (read at
    ``position``), unverified. Batch boundaries are known at the index entries, so only the
    batches after the last entry inside the chunk are walked."""
    walk_offset, walk_position = segment.offset_index.lookup_position(position + len(chunk))
    if walk_position <= position:
        walk_offset, walk_position = first.base_offset, position
    end = walk_position - position
    last_offset = walk_offset - 1
    while len(chunk) - end >= HEADER_SIZE:
        batch = BatchHeader.parse(chunk, end)
        size = batch.batch_length + LOG_OVERHEAD
        if size < HEADER_SIZE or end + size > len(chunk):
            break
        last_offset = batch.base_offset + batch.last_offset_delta
        end += size
    if end == 0:
        raise CorruptLogError(f"{segment.log_path.name}: cannot read the batch at byte {position}")
    return end, last_offset


def cut_before(view: memoryview, end: int, bound: int) -> tuple[int, int] | None:
    """(bytes, last offset) of the whole batches in ``view[:end]`` up to (not including) the
    first one, after the first, whose base offset is >= ``bound``; None when none is cut."""
    position = 0
    last = 0
    while position < end:
        if position and BatchHeader.parse(view, position).base_offset >= bound:
            header = BatchHeader.parse(view, last)
            return position, header.base_offset + header.last_offset_delta
        last = position
        position += read_batch_size(view, position)
    return None
