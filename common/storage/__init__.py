"""The segmented log shared by the Raft metadata log and partition logs."""

from raftka.common.clock import Clock, wall_clock_ms
from raftka.common.storage.config import LogConfig
from raftka.common.storage.errors import (
    CorruptLogError,
    LogClosedError,
    LogOffsetOutOfRangeError,
    StorageError,
    UnexpectedAppendOffsetError,
)
from raftka.common.storage.index import OffsetIndex, TimeIndex
from raftka.common.storage.log import SegmentedLog
from raftka.common.storage.results import AppendInfo, ReadResult, SegmentInfo, TimestampOffset
from raftka.common.storage.segment import LogSegment

__all__ = [
    "AppendInfo",
    "Clock",
    "CorruptLogError",
    "LogClosedError",
    "LogConfig",
    "LogOffsetOutOfRangeError",
    "LogSegment",
    "OffsetIndex",
    "ReadResult",
    "SegmentInfo",
    "SegmentedLog",
    "StorageError",
    "TimeIndex",
    "TimestampOffset",
    "UnexpectedAppendOffsetError",
    "wall_clock_ms",
]
