"""Values returned by :class:`~raftka.common.storage.log.SegmentedLog`."""

from __future__ import annotations

from dataclasses import dataclass

from raftka.common.storage.region import FileRegion


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
class RegionReadResult:
    """Whole stored batches, verified, as a region of their segment file (for ``sendfile``),
    starting with the batch that holds the read offset."""

    region: FileRegion
    base_offset: int
    last_offset: int
    """Last offset of the last batch in the region."""
    log_start_offset: int
    log_end_offset: int


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


@dataclass(frozen=True, slots=True)
class DamageReport:
    """Where a log's stored data stops being trustworthy: the batch that should hold
    ``offset`` failed its CRC or framing check, or is missing (a hole)."""

    offset: int
    """The first offset that cannot be served: the base offset the damaged batch should have
    (the end of the last intact batch before it)."""
    segment_base_offset: int
    """Base offset of the segment holding the damage."""
    position: int
    """Byte position in that segment where the damaged (or missing) data begins: truncating
    the segment there keeps exactly the intact batches before ``offset``."""
    reason: str
    """What was wrong, e.g. ``CRC-32C mismatch`` or ``offsets 100..199 are missing``."""

    def describe(self) -> str:
        return (
            f"offset {self.offset} (segment {self.segment_base_offset:020d}.log, byte "
            f"{self.position}): {self.reason}"
        )


@dataclass(frozen=True, slots=True)
class ScrubProgress:
    """Answer of :meth:`SegmentedLog.scrub`: how far a verification pass over one segment
    got."""

    next_position: int
    """Where the next call should continue (a batch boundary)."""
    next_offset: int
    """The base offset the batch at ``next_position`` must have."""
    bytes_read: int
    done: bool
    """The segment was verified to its end (or is gone / changed: start over)."""
    damage: DamageReport | None = None
