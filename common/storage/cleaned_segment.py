"""Writing the cleaned copy of a group of segments: ``<base>.log.cleaned`` and its indexes.

A group of consecutive, non-active segments (:func:`group_segments`: together at most
``segment.bytes`` and an int32 of relative offsets) is copied into one new segment that takes
the group's first base offset and ends where the group ended. Each batch goes through
:func:`~raftka.common.storage.compaction.filter_batch`.

Offsets stay contiguous from batch to batch, as every read, recovery and follower check of
this log expects (a gap is how damage shows): where Kafka leaves a gap for the batches it
dropped, a run of dropped batches is replaced by one header-only *filler* batch (no records,
no producer id, 61 bytes) spanning their offsets, with their partition leader epoch (a run is
split where the epoch changes, so a follower's leader-epoch cache still learns each epoch's
first offset) and their largest timestamp (retention by time sees the same timestamps).
Consumers skip empty batches and move to the offset after them, as after any batch.

The old segments are only read (they are immutable): no log lock is held meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from raftka.common.records.batch import NO_TIMESTAMP, BatchHeader
from raftka.common.records.builder import build_empty_batch
from raftka.common.storage.compaction import CleaningRules, OffsetMap, Outcome, filter_batch
from raftka.common.storage.errors import CorruptLogError
from raftka.common.storage.files import CLEANED_SUFFIX
from raftka.common.storage.segment import INT32_MAX, LogSegment, SegmentEntry

_WRITE_CHUNK_BYTES = 1 << 20

Progress = Callable[[int], None]
"""Called with the bytes read so far of each batch: throttles, and raises to abort."""


def group_segments(segments: Sequence[LogSegment], max_bytes: int) -> list[list[LogSegment]]:
    """Consecutive ``segments`` in groups that each fit ``max_bytes`` (as they are now: a
    cleaned group is never larger) and an int32 of offsets; a segment alone is a group."""
    groups: list[list[LogSegment]] = []
    current: list[LogSegment] = []
    size = 0
    for segment in segments:
        if current and (
            size + segment.size > max_bytes
            or segment.next_offset - current[0].base_offset > INT32_MAX
        ):
            groups.append(current)
            current, size = [], 0
        current.append(segment)
        size += segment.size
    if current:
        groups.append(current)
    return groups


@dataclass(slots=True)
class CleaningStats:
    """What one cleaned segment took and gave."""

    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_kept: int = 0
    batches_read: int = 0
    batches_written: int = 0
    fillers: int = 0
    rebuilt: int = 0

    def add(self, other: CleaningStats) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class _Gap:
    """A run of dropped batches of one leader epoch, not written yet."""

    start: int
    end: int
    epoch: int
    max_timestamp: int


@dataclass(slots=True)
class _Output:
    segment: LogSegment
    now_ms: int
    stats: CleaningStats
    data: bytearray = field(default_factory=bytearray)
    entries: list[SegmentEntry] = field(default_factory=list)
    next_offset: int = 0
    gap: _Gap | None = None

    def add(self, batch: bytes | bytearray | memoryview, header: BatchHeader) -> None:
        self.close_gap()
        self._write(batch, header.base_offset, header.next_offset, header.max_timestamp)

    def drop(self, header: BatchHeader) -> None:
        gap = self.gap
        if gap is not None and gap.epoch == header.partition_leader_epoch:
            gap.end = header.next_offset
            gap.max_timestamp = max(gap.max_timestamp, header.max_timestamp)
            return
        self.close_gap()
        self.gap = _Gap(
            header.base_offset,
            header.next_offset,
            header.partition_leader_epoch,
            header.max_timestamp,
        )

    def close_gap(self) -> None:
        gap, self.gap = self.gap, None
        if gap is None:
            return
        timestamp = gap.max_timestamp if gap.max_timestamp >= 0 else NO_TIMESTAMP
        filler = build_empty_batch(
            base_offset=gap.start,
            last_offset_delta=gap.end - gap.start - 1,
            partition_leader_epoch=gap.epoch,
            base_timestamp=timestamp,
            max_timestamp=timestamp,
        )
        self.stats.fillers += 1
        self._write(filler, gap.start, gap.end, timestamp)

    def _write(
        self, batch: bytes | bytearray | memoryview, base: int, next_offset: int, max_ts: int
    ) -> None:
        self.entries.append(SegmentEntry(len(self.data), len(batch), base, max_ts))
        self.data += batch
        self.next_offset = next_offset
        self.stats.batches_written += 1
        self.stats.bytes_written += len(batch)
        if len(self.data) >= _WRITE_CHUNK_BYTES:
            self.flush_chunk()

    def flush_chunk(self) -> None:
        if self.entries:
            self.segment.append(self.data, self.entries, self.next_offset, self.now_ms)
            self.data = bytearray()
            self.entries = []


def write_cleaned_segment(
    directory: Path,
    group: Sequence[LogSegment],
    offset_map: OffsetMap,
    rules: CleaningRules,
    *,
    index_interval_bytes: int,
    progress: Progress,
) -> tuple[LogSegment, CleaningStats]:
    """Writes the cleaned copy of ``group`` as ``<first base>.{log,index,timeindex}.cleaned``,
    flushed (data and indexes fsynced) with the last old segment's modification time, and
    returns it open with what it took. The old segments must end where the next begins
    (CorruptLogError otherwise). On any error the partial files are deleted."""
    base = group[0].base_offset
    segment = LogSegment.create(
        directory,
        base,
        index_interval_bytes=index_interval_bytes,
        now_ms=rules.now_ms,
        suffix=CLEANED_SUFFIX,
    )
    stats = CleaningStats()
    out = _Output(segment, rules.now_ms, stats, next_offset=base)
    try:
        expected = base
        for old in group:
            if old.base_offset != expected:
                raise CorruptLogError(
                    f"{old.log_path.name}: starts at {old.base_offset}, but the segment "
                    f"before it ends at {expected}: not cleaned"
                )
            for _pos, view in old.batches_from(0):
                filtered = filter_batch(view, offset_map, rules)
                header = filtered.header
                if header.base_offset != expected:
                    raise CorruptLogError(
                        f"{old.log_path.name}: batch at offset {header.base_offset}, expected "
                        f"{expected}: not cleaned"
                    )
                expected = header.next_offset
                stats.bytes_read += header.size
                stats.batches_read += 1
                stats.records_read += filtered.records_before
                stats.records_kept += filtered.records_after
                if filtered.outcome is Outcome.DROPPED:
                    out.drop(header)
                else:
                    if filtered.outcome is not Outcome.UNCHANGED:
                        stats.rebuilt += 1
                    out.add(filtered.data, header)
                progress(header.size)
            if expected != old.next_offset:
                raise CorruptLogError(
                    f"{old.log_path.name}: batches end at {expected}, the segment at "
                    f"{old.next_offset}: not cleaned"
                )
        out.close_gap()
        out.flush_chunk()
        # Markers are kept as they are: so are the aborted transactions they end.
        segment.txn_index.rebuilt(e for old in group for e in old.txn_index.entries)
        segment.on_roll()
        segment.flush()
        segment.set_last_modified(group[-1].last_modified_ms)
    except BaseException:
        segment.delete()
        raise
    return segment, stats
