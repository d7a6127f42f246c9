"""A segment's files on disk: the ``.log`` file (a descriptor from the process's pool) and
its offset, time and transaction indexes, with their names through a segment's life (plain,
``*.cleaned`` while written by the cleaner, ``*.swap`` while swapped in, ``*.deleted`` while
waiting for ``file.delete.delay.ms``), their fsyncs and their removal.

What the files hold is :class:`~raftka.common.storage.segment.LogSegment`'s business.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import structlog

from raftka.common.faults import FAULTS
from raftka.common.storage.file_pool import SEGMENT_FILES
from raftka.common.storage.files import DELETED_SUFFIX, segment_paths, txn_index_path
from raftka.common.storage.index import IndexCorruptError, OffsetIndex, TimeIndex
from raftka.common.storage.txn_index import TxnIndex

log = structlog.get_logger(__name__)


class SegmentFiles:
    """The open files of the segment at ``base_offset``, named with ``suffix``."""

    def __init__(self, directory: Path, base_offset: int, fd: int, suffix: str = "") -> None:
        """Use :meth:`create` or :meth:`open`."""
        self._dir = directory
        self.base_offset = base_offset
        self.log_path, index_path, time_index_path = segment_paths(directory, base_offset, suffix)
        self.offset_index = OffsetIndex(index_path, base_offset)
        self.time_index = TimeIndex(time_index_path, base_offset)
        self.txn_index = TxnIndex(txn_index_path(directory, base_offset, suffix), base_offset)
        self._file = SEGMENT_FILES.adopt(self.log_path, fd)
        self._closed = False

    @classmethod
    def create(cls, directory: Path, base_offset: int, suffix: str = "") -> SegmentFiles:
        """Creates the files of an empty segment, replacing any of the same names."""
        log_path = segment_paths(directory, base_offset, suffix)[0]
        fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        files = cls(directory, base_offset, fd, suffix)
        files.write_indexes()
        files.txn_index.create()
        return files

    @classmethod
    def open(cls, directory: Path, base_offset: int) -> tuple[SegmentFiles, os.stat_result]:
        """Opens an existing segment's log file (the indexes are loaded by
        :meth:`load_indexes`, or rebuilt); returns it with the log file's status."""
        log_path = segment_paths(directory, base_offset)[0]
        fd = os.open(log_path, os.O_RDWR)
        try:
            stat = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(directory, base_offset, fd), stat

    def load_indexes(self, log_size: int, end_offset: int | None) -> str | None:
        """Loads both index files; returns why they cannot be used, or None when they can.
        The transaction index is loaded too: one that cannot be used is emptied and left to
        be rebuilt by its owner (:attr:`TxnIndex.needs_rebuild`), the segment is not."""
        txn_problem = self.txn_index.load(end_offset=end_offset)
        if txn_problem is not None:
            log.warning("txn_index_rebuild_needed", path=str(self.log_path), reason=txn_problem)
        try:
            self.offset_index.load(log_size=log_size, end_offset=end_offset)
            self.time_index.load(end_offset=end_offset)
        except IndexCorruptError as exc:
            self.offset_index.reset()
            self.time_index.reset()
            return str(exc)
        return None

    @property
    def _indexes(self) -> tuple[OffsetIndex | TimeIndex | TxnIndex, ...]:
        return (self.offset_index, self.time_index, self.txn_index)

    def use(self) -> contextlib.AbstractContextManager[int]:
        """The log file's descriptor, pinned open for the block."""
        return self._file.use()

    def write_indexes(self) -> None:
        """Writes index entries not yet in their files (no fsync)."""
        self.offset_index.write()
        self.time_index.write()

    def sync(self) -> None:
        """fsyncs the log data and any index file written since its last sync. Safe to call
        without the log's lock (it touches no in-memory state but the indexes' sync flags)."""
        self.sync_data()
        self.offset_index.sync()
        self.time_index.sync()
        self.txn_index.sync()

    def sync_data(self) -> None:
        """fsyncs the log data."""
        FAULTS.before_fsync()
        with self._file.use() as fd:
            os.fdatasync(fd)

    def close(self) -> None:
        """Writes the indexes and closes the log file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.write_indexes()
        finally:
            self._file.close()

    def delete(self) -> None:
        """Closes the log file and removes the files (log first, then indexes). After
        :meth:`rename_for_deletion` these are the ``*.deleted`` files; a log file that is no
        longer this segment's (a later segment of the same base offset renamed over it) is
        left to that segment."""
        ino = -1
        if not self._closed:
            self._closed = True
            ino = self._file.identity[1]
            self._file.close()
        try:
            if ino < 0 or os.stat(self.log_path).st_ino == ino:
                self.log_path.unlink()
        except FileNotFoundError:
            pass
        for index in self._indexes:
            index.delete()

    def rename(self, suffix: str, *, log_first: bool) -> None:
        """Renames the files to their plain names followed by ``suffix`` ("" for the plain
        names), keeping them open. The log file goes first or last (``log_first``), so that
        a crash between the renames leaves the log file's name saying which state the
        segment is in (missing index files are rebuilt on open)."""
        log_path, index_path, time_index_path = segment_paths(self._dir, self.base_offset, suffix)
        txn_path = txn_index_path(self._dir, self.base_offset, suffix)
        if log_first:
            self._move_log(log_path)
        targets = (index_path, time_index_path, txn_path)
        for index, target in zip(self._indexes, targets, strict=True):
            with contextlib.suppress(FileNotFoundError):
                os.replace(index.path, target)
            index.path = target
        if not log_first:
            self._move_log(log_path)

    def rename_for_deletion(self) -> None:
        """Renames the files ``<name>.deleted`` and keeps the log file open, so that a reader
        already holding the segment keeps reading it; :meth:`delete` removes them later.
        ``*.deleted`` files left by a crash are removed when the log is next opened."""
        for index in self._indexes:
            target = index.path.with_name(index.path.name + DELETED_SUFFIX)
            with contextlib.suppress(FileNotFoundError):
                os.replace(index.path, target)
            index.path = target
        self._move_log(self.log_path.with_name(self.log_path.name + DELETED_SUFFIX))

    def _move_log(self, target: Path) -> None:
        os.replace(self.log_path, target)
        self.log_path = self._file.path = target
