"""The read path of a partition log: whole stored batches from a fetch offset, never one
that starts at or past the bound (the high watermark, or the caller's), and never at or past
the log's known damage (damage a read meets is recorded and raised as DamagedLogError).

Takes no partition lock: the high watermark is read first, then the segmented log's lock
is held for one ``pread`` (see docs/architecture.md, threads and locks).
"""

from __future__ import annotations

from raftka.broker.log.damage import DamageTracker
from raftka.broker.log.types import DamagedLogError, FetchData
from raftka.common.ids import TopicPartition
from raftka.common.records import read_base_offset, read_batch_size
from raftka.common.storage import LogOffsetOutOfRangeError, SegmentedLog
from raftka.common.storage.errors import DamagedBatchError


def read_batches(
    seg: SegmentedLog,
    damage_tracker: DamageTracker,
    tp: TopicPartition,
    hw: int,
    fetch_offset: int,
    max_bytes: int,
    *,
    max_offset: int | None,
    min_one_batch: bool,
) -> FetchData:
    """:meth:`PartitionLog.read <raftka.broker.log.partition_log.PartitionLog.read>` of
    ``seg`` whose high watermark is ``hw``."""
    bound = hw if max_offset is None else max_offset
    start, end = seg.log_start_offset, seg.log_end_offset
    if not start <= fetch_offset <= end:
        raise LogOffsetOutOfRangeError(fetch_offset, start, end)
    damage = damage_tracker.report
    if damage is not None:
        if fetch_offset >= damage.offset and fetch_offset < end:
            raise DamagedLogError.of(tp, fetch_offset, damage)
        bound = min(bound, damage.offset)
    if fetch_offset >= min(bound, end):
        return FetchData(b"", hw, start, end)
    try:
        result = seg.read(fetch_offset, max(max_bytes, 0))
    except DamagedBatchError as e:
        damage_tracker.mark(e.report, source="read")
        raise DamagedLogError.of(tp, fetch_offset, e.report) from e
    records = result.records
    if result.last_offset >= bound:
        records = _cut_before(records, bound)
    if not min_one_batch and len(records) > max_bytes:
        records = b""  # the first batch alone is larger than max_bytes
    return FetchData(records, hw, result.log_start_offset, result.log_end_offset)


def _cut_before(records: bytes, bound: int) -> bytes:
    """The batches of ``records`` up to (not including) the first one, after the first,
    whose base offset is >= ``bound``."""
    position, end = 0, len(records)
    while position < end:
        if position and read_base_offset(records, position) >= bound:
            return records[:position]
        position += read_batch_size(records, position)
    return records
