"""Errors raised by the segmented log (record-level problems raise raftka.common.records errors)."""

from __future__ import annotations


class StorageError(Exception):
    """Base class for segmented-log errors."""

    retriable: bool = False


class OffsetOutOfRangeError(StorageError):
    """An offset outside the log's readable range [log_start_offset, log_end_offset)."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(
            f"offset {offset} is outside the log range [{log_start_offset}, {log_end_offset})"
        )
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class UnexpectedAppendOffsetError(StorageError):
    """A batch appended with its own offsets does not start at the offset the log expects."""

    def __init__(self, expected: int, actual: int, batch_index: int) -> None:
        super().__init__(
            f"batch {batch_index} has base offset {actual}, the log expects {expected}; "
            "nothing was written"
        )
        self.expected = expected
        self.actual = actual
        self.batch_index = batch_index


class LogClosedError(StorageError):
    """The log was closed."""


class CorruptLogError(StorageError):
    """Stored data that was trusted turned out to be unreadable (found outside recovery)."""
