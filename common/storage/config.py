"""Configuration of one segmented log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raftka.common.storage.segment import LogSegment

_INT32_MAX = (1 << 31) - 1


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Settings of a :class:`~raftka.common.storage.log.SegmentedLog` (defaults as Kafka's)."""

    segment_bytes: int = 1 << 30
    """Roll to a new segment before an append that would make the active one exceed this."""
    segment_ms: int = 7 * 24 * 60 * 60 * 1000
    """Roll to a new segment before an append once the active one is older than this."""
    index_interval_bytes: int = 4096
    """Bytes of batches between two offset-index entries."""
    max_batch_bytes: int = 1048588
    """Largest accepted batch, header included (Kafka's ``message.max.bytes``)."""
    initial_start_offset: int = 0
    """Log start offset of a new, empty log (the Raft log starts at 1, partitions at 0)."""
    flush_every_batch: bool = False
    """fsync the log data after every append (otherwise only on :meth:`flush`)."""
    file_delete_delay_ms: int = 0
    """How long a segment removed by retention, truncation or a reset keeps its files, renamed
    ``*.deleted`` and still open, before they are removed (Kafka's ``file.delete.delay.ms``):
    a reader holding the segment finishes undisturbed. 0 removes them at once."""

    def __post_init__(self) -> None:
        if not 0 < self.segment_bytes <= _INT32_MAX:
            raise ValueError(
                f"segment_bytes must be in [1, {_INT32_MAX}], got {self.segment_bytes}"
            )
        if self.segment_ms <= 0:
            raise ValueError(f"segment_ms must be positive, got {self.segment_ms}")
        if self.index_interval_bytes < 0:
            raise ValueError(
                f"index_interval_bytes must be non-negative, got {self.index_interval_bytes}"
            )
        if self.max_batch_bytes < 61:
            raise ValueError(f"max_batch_bytes must be at least 61, got {self.max_batch_bytes}")
        if self.file_delete_delay_ms < 0:
            raise ValueError(
                f"file_delete_delay_ms must be non-negative, got {self.file_delete_delay_ms}"
            )
        if self.initial_start_offset < 0:
            raise ValueError(
                f"initial_start_offset must be non-negative, got {self.initial_start_offset}"
            )

    def roll_reason(
        self, segment: LogSegment, incoming: int, last_offset: int, now: int
    ) -> str | None:
        """Why the active ``segment`` must be rolled before an append of ``incoming`` bytes
        ending at ``last_offset`` at ``now`` (None: it takes the append)."""
        if segment.is_empty:
            return None
        if segment.size + incoming > self.segment_bytes:
            return "size"
        if now - segment.created_ms > self.segment_ms:
            return "age"
        if last_offset - segment.base_offset > _INT32_MAX:
            return "relative_offset_overflow"
        return None
