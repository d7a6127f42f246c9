"""The segments a log has deleted whose files wait for ``file.delete.delay.ms``.

A deleted segment leaves the log at once, but with a delay its files are only renamed
``*.deleted`` (the log file kept open for reads already holding the segment) and removed once
the delay has passed, as Kafka does. Not thread-safe: the owning
:class:`~raftka.common.storage.log.SegmentedLog` calls it under its lock.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from raftka.common.clock import Clock
from raftka.common.storage.segment import LogSegment

log = structlog.get_logger(__name__)


class DelayedDeletions:
    """The renamed segments of one log directory, each with the time its files go."""

    def __init__(self, directory: Path, clock: Clock) -> None:
        self._dir = directory
        self._clock = clock
        self._waiting: list[tuple[int, LogSegment]] = []  # (remove at ms, renamed segment)

    def __len__(self) -> int:
        return len(self._waiting)

    def discard(self, segment: LogSegment, delay_ms: int) -> None:
        """Removes a segment's files, at once when ``delay_ms`` <= 0, else renamed
        ``*.deleted`` until :meth:`remove_due` runs ``delay_ms`` from now (the clock's)."""
        if delay_ms <= 0:
            segment.delete()
            return
        segment.rename_for_deletion()
        self._waiting.append((self._clock() + delay_ms, segment))

    def remove_due(self, now_ms: int) -> int:
        """Removes the files of the segments due at ``now_ms``; returns how many went."""
        due = [segment for at, segment in self._waiting if at <= now_ms]
        if not due:
            return 0
        self._waiting = [(at, segment) for at, segment in self._waiting if at > now_ms]
        for segment in due:
            segment.delete()
        log.info(
            "deleted_segment_files_removed",
            directory=str(self._dir),
            base_offsets=[segment.base_offset for segment in due],
        )
        return len(due)

    def remove_all(self) -> None:
        """Removes every waiting segment's files now (the log is closing: no reader is left)."""
        for _at, segment in self._waiting:
            segment.delete()
        self._waiting = []
