"""What a log has written that is not durable yet, and the fsyncs that make it so.

Tracks the segments written since the last flush (data and indexes), those whose log data
awaits an fsync, and whether the directory changed (a segment created or removed) since its
last fsync. Not thread-safe: the owning :class:`~raftka.common.storage.log.SegmentedLog`
calls it under its lock, and runs the fsyncs of :meth:`UnsyncedWrites.take` without it.
"""

from __future__ import annotations

from pathlib import Path

from raftka.common.files import fsync_dir
from raftka.common.storage.segment import LogSegment


class UnsyncedWrites:
    """The not-yet-durable writes of one log directory."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._unflushed: dict[int, LogSegment] = {}  # written since the last flush()
        self._data_unsynced: dict[int, LogSegment] = {}  # log data written since last fsync
        self.dir_dirty = False
        """Files were created or removed since the directory's last fsync."""

    def wrote(self, segment: LogSegment) -> None:
        """``segment`` took an append."""
        self._unflushed[segment.base_offset] = segment
        self._data_unsynced[segment.base_offset] = segment

    def rolled(self, old: LogSegment) -> None:
        """``old`` stopped being the active segment (its indexes were written) and a new
        segment file was created."""
        self._unflushed[old.base_offset] = old
        self.dir_dirty = True

    def forget(self, segment: LogSegment) -> None:
        """``segment`` is being removed: nothing of it is to be synced."""
        self._unflushed.pop(segment.base_offset, None)
        self._data_unsynced.pop(segment.base_offset, None)

    def sync_dir(self) -> None:
        """fsyncs the directory if it changed."""
        if self.dir_dirty:
            fsync_dir(self._dir)
            self.dir_dirty = False

    def sync_data(self) -> None:
        """fsyncs the log data appended since its last fsync (indexes are rebuilt after a
        crash if needed), and the directory if it changed."""
        for segment in self._data_unsynced.values():
            segment.sync_data()
        self._data_unsynced.clear()
        self.sync_dir()

    def flush_all(self) -> None:
        """Flushes (indexes written, data and indexes fsynced) every segment written since
        the last flush, and the directory if it changed."""
        for segment in self._unflushed.values():
            segment.flush()
        self._unflushed.clear()
        self._data_unsynced.clear()
        self.sync_dir()

    def take(self) -> tuple[list[LogSegment], bool]:
        """Hands the caller what a flush must fsync: the segments written since the last
        flush (their indexes written out now) and whether the directory changed. They
        count as synced from here on; :meth:`give_back` undoes that when the fsyncs fail."""
        segments = list(self._unflushed.values())
        for segment in segments:
            segment.write_indexes()
        self._unflushed.clear()
        self._data_unsynced.clear()
        dir_dirty, self.dir_dirty = self.dir_dirty, False
        return segments, dir_dirty

    def give_back(
        self, segments: list[LogSegment], dir_dirty: bool, live: list[LogSegment]
    ) -> None:
        """What :meth:`take` handed out was not synced: a later flush must sync it (the
        segments still among ``live``)."""
        for segment in segments:
            if any(segment is kept for kept in live):
                self._unflushed.setdefault(segment.base_offset, segment)
        self.dir_dirty = self.dir_dirty or dir_dirty
