"""Values returned by :class:`~raftka.common.storage.log.SegmentedLog`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AppendInfo:
    """Where an append went."""

    base_offset: int
    """Base offset of the first appended batch."""
    last_offset: int
    """Last offset of the last appended batch."""
    position: int
    """File position of the first batch in its segment."""
    max_timestamp: int
    """Largest batch max timestamp of the append (-1 if none)."""
    batch_count: int
    size: int
    """Bytes appended."""


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Whole stored batches, as bytes, starting with the batch that holds the read offset."""

    records: bytes
    base_offset: int
    """Base offset of the first batch (may be below the offset asked for)."""
    last_offset: int
    """Last offset of the last batch."""
    log_start_offset: int
    log_end_offset: int

    @property
    def next_offset(self) -> int:
        """Offset to read from next."""
        return self.last_offset + 1


@dataclass(frozen=True, slots=True)
class TimestampOffset:
    """Answer of :meth:`SegmentedLog.offset_for_timestamp`."""

    timestamp: int
    offset: int
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One segment of a log, as :meth:`SegmentedLog.segments` describes it."""

    base_offset: int
    size: int
    """Bytes of batches in the segment."""
    largest_timestamp: int
    """Largest batch max timestamp in the segment (its last-modified time when it holds none)."""
