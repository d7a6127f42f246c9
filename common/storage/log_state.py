"""What a :class:`~raftka.common.storage.log.SegmentedLog` is made of: its segments, its
offsets and its durable state, with the few operations every role of the log shares (finding
a segment, rolling, checkpointing, discarding a segment).

The roles themselves live in their own modules, as plain functions over this state:
opening (:mod:`.log_loading`), reads (:mod:`.log_reads`), truncation and deletion
(:mod:`.log_truncation`) and the cleaned-segment swap (:mod:`.swap`). Not thread-safe:
``SegmentedLog`` holds its lock around every use.
"""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path

import structlog

from raftka.common.clock import Clock
from raftka.common.files import fsync_dir
from raftka.common.records.batch import BatchHeader
from raftka.common.storage.checkpoint import Checkpoint, write_checkpoint
from raftka.common.storage.config import LogConfig
from raftka.common.storage.deletion import DelayedDeletions
from raftka.common.storage.errors import (
    CorruptLogError,
    LogClosedError,
    LogOffsetOutOfRangeError,
)
from raftka.common.storage.results import DamageReport
from raftka.common.storage.segment import LogSegment
from raftka.common.storage.unsynced import UnsyncedWrites

log = structlog.get_logger(__name__)


class LogState:
    """The segments of one log directory, oldest first (the last one is active), and its
    offsets: log start, log end, recovery point."""

    def __init__(self, directory: Path, config: LogConfig, clock: Clock) -> None:
        self.directory = directory
        self.config = config
        self.clock = clock
        self.segments: list[LogSegment] = []
        self.bases: list[int] = []
        self.log_start = 0
        self.log_end = 0
        self.recovery_point = 0
        self.checkpointed: Checkpoint | None = None
        self.unsynced = UnsyncedWrites(directory)
        self.closed = False
        self.generation = 0  # bumped whenever segments are truncated or removed
        self.damage_on_open: DamageReport | None = None
        self.deletions = DelayedDeletions(directory, clock)

    def check_open(self) -> None:
        if self.closed:
            raise LogClosedError(f"log {self.directory} is closed")

    def check_readable(self, offset: int) -> None:
        if not self.log_start <= offset < self.log_end:
            raise LogOffsetOutOfRangeError(offset, self.log_start, self.log_end)

    def index_of(self, offset: int) -> int:
        """Index (in :attr:`segments`) of the segment whose range holds ``offset``, or -1
        when ``offset`` lies below the first segment."""
        return bisect_right(self.bases, offset) - 1

    def segment_holding(self, offset: int) -> LogSegment:
        return self.segments[self.index_of(offset)]

    def locate(self, offset: int) -> tuple[LogSegment, int, BatchHeader]:
        """The segment, position and header of the batch that holds ``offset``."""
        segment = self.segment_holding(offset)
        found = segment.find(offset)
        if found is None:
            raise CorruptLogError(
                f"offset {offset} is missing from segment {segment.log_path.name}"
            )
        return segment, found[0], found[1]

    def set_segments(self, segments: list[LogSegment]) -> None:
        self.segments = segments
        self.bases = [segment.base_offset for segment in segments]

    def start_empty(self, start_offset: int, now: int) -> None:
        """Makes the log one new, empty segment at ``start_offset``."""
        segment = LogSegment.create(
            self.directory,
            start_offset,
            index_interval_bytes=self.config.index_interval_bytes,
            now_ms=now,
        )
        self.set_segments([segment])
        self.log_end = start_offset
        self.log_start = start_offset
        self.recovery_point = start_offset
        fsync_dir(self.directory)
        self.unsynced.dir_dirty = False

    def roll(self, now: int, reason: str) -> LogSegment:
        """Ends the active segment and starts a new one at the log end offset."""
        old = self.segments[-1]
        old.on_roll()
        new = LogSegment.create(
            self.directory,
            self.log_end,
            index_interval_bytes=self.config.index_interval_bytes,
            now_ms=now,
        )
        self.segments.append(new)
        self.bases.append(new.base_offset)
        self.unsynced.rolled(old)
        log.info(
            "segment_rolled",
            directory=str(self.directory),
            base_offset=new.base_offset,
            previous_base_offset=old.base_offset,
            previous_size=old.size,
            reason=reason,
        )
        return new

    def flush_all(self, *, checkpoint: bool) -> None:
        """Flushes every segment written since the last flush, under the lock."""
        self.unsynced.flush_all()
        self.recovery_point = self.log_end
        if checkpoint:
            self.write_checkpoint()

    def write_checkpoint(self) -> None:
        """Writes (recovery point, log start) unless the file already says exactly that."""
        current = Checkpoint(self.recovery_point, self.log_start)
        if current != self.checkpointed:
            write_checkpoint(self.directory, current)
            self.checkpointed = current

    def discard(self, segment: LogSegment) -> None:
        """Removes a segment that has left the log: nothing of it is synced any more, and its
        files go at once or, with ``file_delete_delay_ms``, after that delay (renamed
        ``*.deleted`` meanwhile, the log file still open for readers that hold the segment)."""
        self.unsynced.forget(segment)
        self.deletions.discard(segment, self.config.file_delete_delay_ms)
