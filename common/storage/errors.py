"""Errors raised by the segmented log (record-level problems raise raftka.common.records errors)."""

from __future__ import annotations

from typing import Self

from raftka.common.errors import RaftkaError
from raftka.common.storage.results import DamageReport
from raftka.v1.common_pb2 import ErrorCode

UNKNOWN_OFFSET = -1
"""The value of an offset attribute on an error rebuilt from the wire (only its message crosses)."""


class StorageError(RaftkaError):
    """Base class for segmented-log errors."""

    code = ErrorCode.KAFKA_STORAGE_ERROR


class LogOffsetOutOfRangeError(StorageError):
    """An offset outside the log's readable range [log_start_offset, log_end_offset)."""

    code = ErrorCode.OFFSET_OUT_OF_RANGE

    def __init__(
        self,
        offset: int,
        log_start_offset: int,
        log_end_offset: int,
        *,
        message: str | None = None,
    ) -> None:
        super().__init__(
            message
            or f"offset {offset} is outside the log range [{log_start_offset}, {log_end_offset})"
        )
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset

    @classmethod
    def from_wire(cls, message: str) -> Self:
        return cls(UNKNOWN_OFFSET, UNKNOWN_OFFSET, UNKNOWN_OFFSET, message=message)


class UnexpectedAppendOffsetError(StorageError):
    """A batch appended with its own offsets does not start at the offset the log expects.

    The caller's offsets do not fit the log (nothing was written), so the wire code is
    INVALID_REQUEST: sending the same batches again fails the same way.
    """

    code = ErrorCode.INVALID_REQUEST

    def __init__(
        self, expected: int, actual: int, batch_index: int, *, message: str | None = None
    ) -> None:
        super().__init__(
            message
            or (
                f"batch {batch_index} has base offset {actual}, the log expects {expected}; "
                "nothing was written"
            )
        )
        self.expected = expected
        self.actual = actual
        self.batch_index = batch_index

    @classmethod
    def from_wire(cls, message: str) -> Self:
        return cls(UNKNOWN_OFFSET, UNKNOWN_OFFSET, batch_index=-1, message=message)


class LogClosedError(StorageError):
    """The log was closed."""


class CorruptLogError(StorageError):
    """Stored data that was trusted turned out to be unreadable (found outside recovery)."""


class DamagedBatchError(CorruptLogError):
    """A stored batch failed its CRC or framing check when read, or the offsets it should
    hold are missing (a hole): ``report`` says where. The bytes are never served.

    CORRUPT_MESSAGE, as Kafka answers a fetch that meets a corrupt stored batch (its
    KAFKA_STORAGE_ERROR means a whole log directory went offline). Retriable: the damaged
    replica gives up leadership or is repaired from an in-sync one.
    """

    code = ErrorCode.CORRUPT_MESSAGE
    retriable = True

    def __init__(
        self, report: DamageReport, *, where: str = "", message: str | None = None
    ) -> None:
        prefix = f"{where}: " if where else ""
        super().__init__(message or f"{prefix}damaged data at {report.describe()}")
        self.report = report

    @classmethod
    def from_wire(cls, message: str) -> Self:
        return cls(
            DamageReport(UNKNOWN_OFFSET, UNKNOWN_OFFSET, UNKNOWN_OFFSET, message), message=message
        )
