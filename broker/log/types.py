"""What a partition log returns and raises: append and fetch results, and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from raftka.common.ids import TopicPartition
from raftka.common.storage import StorageError
from raftka.common.storage.errors import CorruptLogError
from raftka.common.storage.region import FileRegion
from raftka.common.storage.results import DamageReport
from raftka.common.storage.txn_index import AbortedTxn
from raftka.v1.common_pb2 import ErrorCode

NO_TIMESTAMP = -1
"""``log_append_time_ms`` of an append to a CreateTime topic."""


class StaleLeaderEpochError(StorageError):
    """A leader epoch older than the newest one this replica knows: a leader append or epoch
    assignment below the log's latest leader epoch (a newer leader already wrote to this log;
    nothing was written), or a follower's fetch from an older epoch than its leader's. On the
    wire it is Kafka's FENCED_LEADER_EPOCH. (Not the controller's AlterPartition error of the
    same code: this one is about a partition replica's log, not a metadata request.)"""

    code = ErrorCode.FENCED_LEADER_EPOCH


class DivergentAppendError(StorageError):
    """A follower append whose batches' leader epochs go backwards (within the append, or
    below the epoch of the log's last batch): the log diverged from the leader's and must be
    truncated first (:meth:`PartitionLog.divergence_check`). Nothing was written."""


class TruncationBelowHighWatermarkError(StorageError):
    """A truncation that would remove committed offsets (below the high watermark)."""

    def __init__(
        self, offset: int, high_watermark: int, new_end: int, *, message: str | None = None
    ) -> None:
        super().__init__(
            message
            or (
                f"truncating to offset {offset} would end the log at {new_end}, below the high "
                f"watermark {high_watermark}: committed records would be lost; nothing was "
                "truncated"
            )
        )
        self.offset = offset
        self.high_watermark = high_watermark
        self.new_end = new_end

    @classmethod
    def from_wire(cls, message: str) -> Self:
        return cls(-1, -1, -1, message=message)


class DamagedLogError(CorruptLogError):
    """A read met this replica's damaged data (a stored batch that fails its CRC or framing
    check, or offsets missing from the log) at or before ``offset``: nothing at or past the
    damage is served. ``reason`` says what and where.

    On the wire CORRUPT_MESSAGE (as Kafka answers a fetch that meets a corrupt stored batch),
    retriable: a leader with damage gives up leadership to a healthy in-sync replica, and a
    follower truncates and fetches the range again.
    """

    code = ErrorCode.CORRUPT_MESSAGE
    retriable = True

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        reason: str,
        *,
        message: str | None = None,
    ) -> None:
        super().__init__(
            message
            or (
                f"{topic}-{partition}: cannot serve offset {offset}: this replica's data is "
                f"damaged at {reason}; it gives up leadership to a healthy in-sync replica "
                "when there is one: refresh metadata and fetch again (or seek past the damage)"
            )
        )
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.reason = reason

    @classmethod
    def of(cls, tp: TopicPartition, offset: int, report: DamageReport) -> DamagedLogError:
        return cls(tp.topic, tp.partition, offset, report.describe())

    @classmethod
    def from_wire(cls, message: str) -> Self:
        return cls("", -1, -1, "", message=message)


@dataclass(frozen=True, slots=True)
class AppendResult:
    base_offset: int
    """Offset of the first record appended."""
    last_offset: int
    """Offset of the last record appended."""
    log_append_time_ms: int
    """The time stamped into the batches (LogAppendTime topics), else -1."""
    log_start_offset: int


@dataclass(frozen=True, slots=True)
class FetchData:
    records: bytes
    """Whole stored batches, byte-identical to what was appended (empty when none)."""
    high_watermark: int
    log_start_offset: int
    log_end_offset: int
    last_stable_offset: int
    """The partition's LSO as of the read (the high watermark when no transaction is open)."""
    aborted: tuple[AbortedTxn, ...] = ()
    """read_committed reads: the aborted transactions with data in the returned batches."""
    region: FileRegion | None = None
    """Zero-copy reads: the batches as a region of their segment file (``records`` is then
    empty); the reader closes it."""

    @property
    def size(self) -> int:
        """Bytes of batches read, in ``records`` or in ``region``."""
        return len(self.records) if self.region is None else self.region.length
