"""The read path of a partition log: whole stored batches from a fetch offset, never one
that starts at or past the bound (the high watermark, the last stable offset for
read_committed, or the caller's), and never at or past the log's known damage (damage a read
meets is recorded and raised as DamagedLogError).

Takes no partition lock: the high watermark is read first, then the segmented log's lock
is held for one ``pread`` (see docs/architecture.md, threads and locks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from raftka.broker.log.damage import DamageTracker
from raftka.broker.log.high_watermark import HighWatermark
from raftka.broker.log.types import DamagedLogError, FetchData
from raftka.broker.producers.partition_state import PartitionProducerState
from raftka.common.faults import FAULTS
from raftka.common.ids import TopicPartition
from raftka.common.records import BatchHeader, read_base_offset, read_batch_size
from raftka.common.storage import LogOffsetOutOfRangeError, SegmentedLog, TimestampOffset
from raftka.common.storage.errors import DamagedBatchError
from raftka.common.storage.txn_index import AbortedTxn, TxnIndex


@dataclass(frozen=True, slots=True)
class ReadBounds:
    """Where a read stops, as of its start."""

    high_watermark: int
    last_stable_offset: int
    read_committed: bool = False


class PartitionReader:
    """The reads of one partition's log, and the transactional bounds they stop at
    (:class:`~raftka.broker.log.partition_log.PartitionLog` delegates to them)."""

    def __init__(
        self,
        topic_partition: TopicPartition,
        segmented_log: SegmentedLog,
        high_watermark: HighWatermark,
        producers: PartitionProducerState,
        damage: DamageTracker,
    ) -> None:
        self._tp = topic_partition
        self._log = segmented_log
        self._hw = high_watermark
        self._producers = producers
        self._damage = damage

    @property
    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest transaction open, or completed with its marker not
        yet below the high watermark (at least the log start offset), or None."""
        first = self._producers.table.first_unstable_offset
        return None if first is None else max(first, self._log.log_start_offset)

    @property
    def last_stable_offset(self) -> int:
        """The LSO: the high watermark, or the first unstable offset when that is below it
        (read first: a transaction is released once the high watermark passed its marker).
        read_committed consumers read below it."""
        first_unstable = self.first_unstable_offset
        return stable_offset(self._hw.value, first_unstable)

    def aborted_transactions(self, start: int, end: int) -> list[AbortedTxn]:
        """The aborted transactions with data in [``start``, ``end``) (``.txnindex`` entries
        with marker >= ``start``, first offset < ``end``): a read_committed fetch's list."""
        return collect_aborted(self._log.txn_indexes(), start, end)

    def read(
        self,
        fetch_offset: int,
        max_bytes: int,
        *,
        max_offset: int | None,
        min_one_batch: bool,
        read_committed: bool,
        zero_copy: bool,
    ) -> FetchData:
        """Whole stored batches from the one holding ``fetch_offset``, up to ``max_bytes``
        (at least one batch, however large, if ``min_one_batch``), from one segment. No batch
        starting at or after ``max_offset`` (default: the high watermark) is returned, nor,
        when ``read_committed``, at or after the last stable offset; such a read also lists
        the aborted transactions with data in the returned batches (``FetchData.aborted``).
        With ``zero_copy`` the batches come as a region of their segment file
        (``FetchData.region``, verified from the page cache, for ``sendfile``).

        Empty records when ``fetch_offset`` is at or past that bound but not past the log
        end; LogOffsetOutOfRangeError (with the log start and end) when ``fetch_offset`` is
        below the log start or above the log end.
        """
        first_unstable = self.first_unstable_offset  # first: see last_stable_offset
        hw = self._hw.value
        bounds = ReadBounds(hw, stable_offset(hw, first_unstable), read_committed)
        return read_batches(
            self._log,
            self._damage,
            self._tp,
            bounds,
            fetch_offset,
            max_bytes,
            max_offset=max_offset,
            min_one_batch=min_one_batch,
            zero_copy=zero_copy,
        )

    def offset_for_timestamp(self, timestamp: int) -> TimestampOffset | None:
        """ListOffsets by timestamp: the first record below the high watermark whose
        timestamp is >= ``timestamp`` (found through the time index), or None."""
        hw = self._hw.value
        found = self._log.offset_for_timestamp(timestamp)
        if found is None or found.offset >= hw:
            return None
        return found


def read_batches(
    seg: SegmentedLog,
    damage_tracker: DamageTracker,
    tp: TopicPartition,
    bounds: ReadBounds,
    fetch_offset: int,
    max_bytes: int,
    *,
    max_offset: int | None,
    min_one_batch: bool,
    zero_copy: bool = False,
) -> FetchData:
    """:meth:`PartitionLog.read <raftka.broker.log.partition_log.PartitionLog.read>` of
    ``seg``."""
    hw, lso = bounds.high_watermark, bounds.last_stable_offset
    bound = hw if max_offset is None else max_offset
    if bounds.read_committed:
        bound = min(bound, lso)
    start, end = seg.log_start_offset, seg.log_end_offset
    if not start <= fetch_offset <= end:
        raise LogOffsetOutOfRangeError(fetch_offset, start, end)
    damage = damage_tracker.report
    if damage is not None:
        if fetch_offset >= damage.offset and fetch_offset < end:
            raise DamagedLogError.of(tp, fetch_offset, damage)
        bound = min(bound, damage.offset)
    if fetch_offset >= min(bound, end):
        return FetchData(b"", hw, start, end, lso)
    if zero_copy:
        return _read_region(
            seg, damage_tracker, tp, bounds, fetch_offset, max_bytes, bound, min_one_batch
        )
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
    aborted: tuple[AbortedTxn, ...] = ()
    if bounds.read_committed and records:
        aborted = tuple(collect_aborted(seg.txn_indexes(), fetch_offset, _next_offset(records)))
    return FetchData(records, hw, result.log_start_offset, result.log_end_offset, lso, aborted)


def _read_region(
    seg: SegmentedLog,
    damage_tracker: DamageTracker,
    tp: TopicPartition,
    bounds: ReadBounds,
    fetch_offset: int,
    max_bytes: int,
    bound: int,
    min_one_batch: bool,
) -> FetchData:
    """:func:`read_batches` answering a verified region of the segment file (zero copy)."""
    hw, lso = bounds.high_watermark, bounds.last_stable_offset
    try:
        found = seg.read_region(fetch_offset, max(max_bytes, 0), bound)
    except DamagedBatchError as e:
        damage_tracker.mark(e.report, source="read")
        raise DamagedLogError.of(tp, fetch_offset, e.report) from e
    region = found.region
    if not min_one_batch and region.length > max_bytes:
        region.close()  # the first batch alone is larger than max_bytes
        return FetchData(b"", hw, found.log_start_offset, found.log_end_offset, lso)
    aborted: tuple[AbortedTxn, ...] = ()
    if bounds.read_committed:
        aborted = tuple(collect_aborted(seg.txn_indexes(), fetch_offset, found.last_offset + 1))
    return FetchData(
        b"", hw, found.log_start_offset, found.log_end_offset, lso, aborted, region=region
    )


def stable_offset(high_watermark: int, first_unstable_offset: int | None) -> int:
    """The last stable offset: the high watermark, or the first unstable offset below it.
    (An experiment may plant the bug of ignoring open transactions here, to show that its
    checker catches the aborted reads that follow: ``faults.planted_bugs``.)"""
    if first_unstable_offset is None or FAULTS.planted("lso_ignores_open_transactions"):
        return high_watermark
    return min(high_watermark, first_unstable_offset)


def collect_aborted(
    indexes: Sequence[tuple[int, TxnIndex]], start: int, end: int
) -> list[AbortedTxn]:
    """The entries of ``indexes`` (base offset, index; oldest first) for aborted transactions
    with data in [start, end): marker at or after ``start``, first offset before ``end``.
    Segments before the one holding ``start`` hold no marker at or after it; a transaction
    whose marker lies past ``end`` may still have data below it, so every later segment is
    looked at (their indexes are in memory and small)."""
    found: list[AbortedTxn] = []
    for i, (_base, index) in enumerate(indexes):
        if i + 1 < len(indexes) and indexes[i + 1][0] <= start:
            continue
        found += index.collect(start, end)
    return found


def _next_offset(records: bytes) -> int:
    """The offset after the last of the whole batches in ``records``."""
    position = last = 0
    while position < len(records):
        last = position
        position += read_batch_size(records, position)
    return BatchHeader.parse(records, last).next_offset


def _cut_before(records: bytes, bound: int) -> bytes:
    """The batches of ``records`` up to (not including) the first one, after the first,
    whose base offset is >= ``bound``."""
    position, end = 0, len(records)
    while position < end:
        if position and read_base_offset(records, position) >= bound:
            return records[:position]
        position += read_batch_size(records, position)
    return records
