"""One log segment: a ``.log`` file of record batches with its offset and time indexes.

The segment trusts its caller to append only validated, contiguous batches; it keeps per-batch
bookkeeping O(1) (index entries every ``index_interval_bytes``, running max timestamp). Reads
use ``os.pread`` and never load the whole file. The files themselves (names, renames, fsyncs,
removal) are :mod:`.segment_files`'; the walks over stored batches that loading, recovery and
lookups make are :mod:`.segment_scan`'s.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import structlog

from raftka.common.files import pread_exact, pwrite_all
from raftka.common.records.batch import HEADER_SIZE, BatchHeader, Buffer
from raftka.common.storage.batch_scan import BatchScan
from raftka.common.storage.errors import CorruptLogError, DamagedBatchError
from raftka.common.storage.results import DamageReport, ScrubProgress, TimestampOffset
from raftka.common.storage.segment_files import SegmentFiles
from raftka.common.storage.segment_scan import (
    find_timestamp,
    locate_batch,
    scan_for_recovery,
    scan_tail,
    walk_headers,
)
from raftka.common.storage.segment_verify import verify_segment

INT32_MAX = (1 << 31) - 1

log = structlog.get_logger(__name__)


class SegmentEntry(NamedTuple):
    """One batch of an append: where it sits in the appended bytes, and what it holds."""

    position: int
    size: int
    base_offset: int
    max_timestamp: int


class LogSegment:
    """A segment named by its base offset; the last segment of a log is the active one."""

    def __init__(
        self,
        files: SegmentFiles,
        size: int,
        *,
        index_interval_bytes: int,
        created_ms: int,
        last_modified_ms: int,
    ) -> None:
        self.base_offset = files.base_offset
        self._files = files
        self.offset_index = files.offset_index
        self.time_index = files.time_index
        self.txn_index = files.txn_index
        self._size = size
        self._interval = index_interval_bytes
        self._next_offset = self.base_offset
        self._max_timestamp = -1
        self._offset_of_max_timestamp = self.base_offset
        self._bytes_since_index = 0
        self._created_ms = created_ms
        self._last_modified_ms = last_modified_ms

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(
        cls,
        directory: Path,
        base_offset: int,
        *,
        index_interval_bytes: int,
        now_ms: int,
        suffix: str = "",
    ) -> LogSegment:
        """Creates an empty segment (replacing any files of the same name); with ``suffix``
        its files are named ``<name><suffix>`` (a cleaned segment being written)."""
        return cls(
            SegmentFiles.create(directory, base_offset, suffix),
            0,
            index_interval_bytes=index_interval_bytes,
            created_ms=now_ms,
            last_modified_ms=now_ms,
        )

    @classmethod
    def open(
        cls, directory: Path, base_offset: int, *, index_interval_bytes: int, now_ms: int
    ) -> LogSegment:
        """Opens an existing segment's log file; call a ``load_*`` or :meth:`recover` next."""
        files, stat = SegmentFiles.open(directory, base_offset)
        return cls(
            files,
            stat.st_size,
            index_interval_bytes=index_interval_bytes,
            created_ms=now_ms,
            last_modified_ms=int(stat.st_mtime * 1000),
        )

    def load_indexes(self, end_offset: int | None) -> str | None:
        """See :meth:`SegmentFiles.load_indexes
        <raftka.common.storage.segment_files.SegmentFiles.load_indexes>`."""
        return self._files.load_indexes(self._size, end_offset)

    def load_as_inactive(self, end_offset: int) -> DamageReport | None:
        """Finishes loading a trusted segment that is followed by another one, whose base
        offset is ``end_offset``. The batches after the last offset-index entry are walked
        (headers only: at most an index interval and one batch) to find where the segment
        really ends: a segment that does not end at ``end_offset`` (the next segment's
        predecessor was deleted, or its tail is unreadable) is reported as damage, and its
        next offset is where its data ends."""
        last = self.time_index.last_entry()
        if last is not None:
            self._max_timestamp, self._offset_of_max_timestamp = last
        expected, start = self.offset_index.last_entry()
        with self._files.use() as fd:
            expected, position, reason = walk_headers(fd, start, self._size, expected)
        self._next_offset = expected
        if reason is None and expected != end_offset:
            reason = (
                f"offsets {expected}..{end_offset - 1} are missing: the segment ends at "
                f"{expected} but the next one starts at {end_offset}"
            )
        if reason is None:
            return None
        return DamageReport(expected, self.base_offset, position, reason)

    def load_as_active(self, now_ms: int) -> bool:
        """Finishes loading a trusted last segment by validating the bytes after its last
        index entry. Returns False when they are not clean (the caller then recovers)."""
        last = self.time_index.last_entry()
        if last is not None:
            self._max_timestamp, self._offset_of_max_timestamp = last
        ok = self._scan_tail(verify=True)
        self._init_roll_base(now_ms)
        return ok

    def recover(self, now_ms: int) -> bool:
        """Validates every batch, rebuilds both indexes, and truncates the file at the first
        invalid or incomplete batch (the transaction index is emptied, to be rebuilt by its
        owner if the segment holds a control batch). Returns True if bytes were dropped."""
        self.offset_index.reset()
        self.time_index.reset()
        self._max_timestamp = -1
        self._offset_of_max_timestamp = self.base_offset
        self._bytes_since_index = 0
        with self._files.use() as fd:
            file_size = os.fstat(fd).st_size
            found = scan_for_recovery(fd, self.base_offset, file_size, self._track_batch)
            valid = found.valid_bytes
            self._size = valid
            self._next_offset = found.next_offset
            truncated = valid < file_size
            if truncated:
                os.ftruncate(fd, valid)
                log.warning(
                    "truncated_torn_tail",
                    path=str(self.log_path),
                    valid_bytes=valid,
                    dropped_bytes=file_size - valid,
                    next_offset=found.next_offset,
                    reason=found.reason,
                )
        self.time_index.maybe_append(self._max_timestamp, self._offset_of_max_timestamp)
        self.write_indexes()
        self.txn_index.reset(needs_rebuild=found.control)
        self._init_roll_base(now_ms)
        return truncated

    def _init_roll_base(self, now_ms: int) -> None:
        """After a restart, age is measured from the first batch's max timestamp if it has
        one (as Kafka does), so that restarts do not postpone time-based rolls."""
        self._created_ms = now_ms
        if self._size >= HEADER_SIZE:
            with self._files.use() as fd:
                first = BatchHeader.parse(pread_exact(fd, HEADER_SIZE, 0))
            if first.max_timestamp >= 0:
                self._created_ms = first.max_timestamp

    # ------------------------------------------------------------------ properties

    @property
    def size(self) -> int:
        return self._size

    @property
    def next_offset(self) -> int:
        """Offset after the last batch (the base offset when empty)."""
        return self._next_offset

    @property
    def is_empty(self) -> bool:
        return self._size == 0

    @property
    def max_timestamp(self) -> int:
        """Largest batch max timestamp in the segment; -1 if none has a timestamp."""
        return self._max_timestamp

    @property
    def offset_of_max_timestamp(self) -> int:
        return self._offset_of_max_timestamp

    @property
    def created_ms(self) -> int:
        """Time the segment's age is measured from: its first append in this process or,
        after a restart, its first batch's max timestamp (see :meth:`_init_roll_base`)."""
        return self._created_ms

    @property
    def last_modified_ms(self) -> int:
        return self._last_modified_ms

    @property
    def largest_timestamp(self) -> int:
        """What retention compares: the max timestamp, or the last-modified time if none."""
        return self._max_timestamp if self._max_timestamp >= 0 else self._last_modified_ms

    # ------------------------------------------------------------------ writing

    def append(
        self, data: Buffer, entries: Sequence[SegmentEntry], next_offset: int, now_ms: int
    ) -> int:
        """Writes validated batches at the end; returns the file position of the first.

        On a write error the file is cut back to its previous size and the error re-raised.
        """
        start = self._size
        with self._files.use() as fd:
            try:
                pwrite_all(fd, data, start)
            except OSError:
                os.ftruncate(fd, start)
                raise
        if start == 0:
            self._created_ms = now_ms
        for position, size, base_offset, max_timestamp in entries:
            self._track_batch(base_offset, start + position, size, max_timestamp)
        self._size = start + len(data)
        self._next_offset = next_offset
        self._last_modified_ms = now_ms
        return start

    def _track_batch(self, base_offset: int, position: int, size: int, max_timestamp: int) -> None:
        if max_timestamp > self._max_timestamp:
            self._max_timestamp = max_timestamp
            self._offset_of_max_timestamp = base_offset
        if self._bytes_since_index > self._interval:
            self.offset_index.append(base_offset, position)
            self.time_index.maybe_append(self._max_timestamp, self._offset_of_max_timestamp)
            self._bytes_since_index = 0
        self._bytes_since_index += size

    def on_roll(self) -> None:
        """The segment stops being active: record its final max timestamp, write indexes."""
        self.time_index.maybe_append(self._max_timestamp, self._offset_of_max_timestamp)
        self.write_indexes()

    def truncate_to(self, offset: int) -> bool:
        """Removes the batch containing ``offset`` and every later one. Returns whether
        anything was removed; :attr:`next_offset` is then the removed batch's base offset."""
        found = self.find(offset)
        if found is None:
            return False
        position, header = found
        if not self._cut(position, header.base_offset):
            raise CorruptLogError(f"{self.log_path.name}: unreadable batch before byte {position}")
        return True

    def truncate_at(self, position: int, next_offset: int) -> None:
        """Cuts the file at ``position`` (a batch boundary: the end of the last batch to
        keep, whose next offset is ``next_offset``), e.g. where damage begins."""
        if not self._cut(position, next_offset) or self._next_offset != next_offset:
            raise CorruptLogError(
                f"{self.log_path.name}: the batches before byte {position} do not end at "
                f"offset {next_offset}"
            )

    def _cut(self, position: int, next_offset: int) -> bool:
        """Cuts the file and its indexes at ``position``, where offset ``next_offset``
        begins, and restores the bookkeeping from what is left; False if the batches after
        the last index entry are not clean."""
        with self._files.use() as fd:
            os.ftruncate(fd, position)
        self._size = position
        self._next_offset = next_offset
        self.offset_index.truncate_to(next_offset)
        self.time_index.truncate_to(next_offset)
        self.txn_index.truncate_to(next_offset)
        self._max_timestamp = -1
        self._offset_of_max_timestamp = self.base_offset
        last = self.time_index.last_entry()
        if last is not None:
            self._max_timestamp, self._offset_of_max_timestamp = last
        return self._scan_tail(verify=False)

    def _scan_tail(self, *, verify: bool) -> bool:
        """Walks the batches after the last offset-index entry to restore next offset, max
        timestamp and the bytes since that entry. Returns False if they are not clean."""
        expected, start = self.offset_index.last_entry()
        with self._files.use() as fd:
            tail = scan_tail(
                fd,
                start,
                self._size,
                expected,
                self._max_timestamp,
                self._offset_of_max_timestamp,
                verify=verify,
            )
        self._max_timestamp = tail.max_timestamp
        self._offset_of_max_timestamp = tail.offset_of_max_timestamp
        if not tail.clean:
            return False
        self._next_offset = tail.next_offset
        self._bytes_since_index = self._size - start
        return True

    def flush(self) -> None:
        """Makes the log data and indexes durable."""
        self.write_indexes()
        self.sync()

    def write_indexes(self) -> None:
        """Writes index entries not yet in their files (no fsync)."""
        self._files.write_indexes()

    def sync(self) -> None:
        """See :meth:`SegmentFiles.sync <raftka.common.storage.segment_files.SegmentFiles.sync>`."""
        self._files.sync()

    def sync_data(self) -> None:
        """Makes the log data durable (indexes are rebuilt after a crash if needed)."""
        self._files.sync_data()

    # ------------------------------------------------------------------ reading

    def read(self, position: int, size: int) -> bytes:
        with self._files.use() as fd:
            return pread_exact(fd, min(size, self._size - position), position)

    @contextlib.contextmanager
    def mapped(self, position: int, size: int) -> Iterator[tuple[memoryview, int]]:
        """A read-only view of up to ``size`` bytes at ``position``, mapped from the page
        cache (no copy into Python objects), and the segment's descriptor. The view must not
        outlive the block, nor be touched after a truncation (the caller holds the log's
        lock across it)."""
        size = min(size, self._size - position)
        start = position - position % mmap.ALLOCATIONGRANULARITY
        with self._files.use() as fd:
            mapping = mmap.mmap(fd, size + position - start, access=mmap.ACCESS_READ, offset=start)
            view = memoryview(mapping)[position - start :]
            try:
                yield view, fd
            finally:
                view.release()
                with contextlib.suppress(BufferError):  # a view still exported: GC unmaps
                    mapping.close()

    def find(self, offset: int) -> tuple[int, BatchHeader] | None:
        """Position and header of the batch containing ``offset`` (the first batch whose last
        offset is >= ``offset``), or None if the segment ends before it."""
        if offset >= self._next_offset:
            return None
        expected, pos = self.offset_index.lookup(offset)
        return locate_batch(self._files, offset, expected, pos, self._size, self._damage)

    def _damage(self, offset: int, position: int, reason: str) -> DamagedBatchError:
        return DamagedBatchError(
            DamageReport(offset, self.base_offset, position, reason),
            where=self.log_path.parent.name,
        )

    def verify(
        self, position: int, next_offset: int, max_bytes: int, *, end_offset: int | None
    ) -> ScrubProgress:
        """See :func:`~raftka.common.storage.segment_verify.verify_segment`."""
        return verify_segment(self, position, next_offset, max_bytes, end_offset=end_offset)

    def find_timestamp(self, timestamp: int, start_offset: int) -> TimestampOffset | None:
        """The first record at or after ``start_offset`` with a timestamp >= ``timestamp``.

        The time index gives where to start (every batch before its entry is older); batches
        are then skipped by their max timestamp and only the matching one is decoded.
        """
        return find_timestamp(self, timestamp, start_offset)

    def batches_from(self, position: int) -> Iterator[tuple[int, memoryview]]:
        """(position, view) of each stored batch from ``position`` to the current end."""
        end = self._size
        with self._files.use() as fd:
            scan = BatchScan(fd, position, end)
            yield from scan
        if scan.position != end:
            raise CorruptLogError(f"{self.log_path.name}: unreadable batch at byte {scan.position}")

    # ------------------------------------------------------------------ files

    @property
    def log_path(self) -> Path:
        return self._files.log_path

    def close(self) -> None:
        self._files.close()

    def delete(self) -> None:
        """See :meth:`SegmentFiles.delete
        <raftka.common.storage.segment_files.SegmentFiles.delete>`."""
        self._files.delete()

    def set_last_modified(self, ms: int) -> None:
        """Sets the log file's modification time (what retention falls back on when no batch
        has a timestamp): a cleaned segment takes the one of the segments it replaces."""
        os.utime(self.log_path, ns=(ms * 1_000_000, ms * 1_000_000))
        self._last_modified_ms = ms

    def rename_files(self, suffix: str, *, log_first: bool) -> None:
        """See :meth:`SegmentFiles.rename
        <raftka.common.storage.segment_files.SegmentFiles.rename>`."""
        self._files.rename(suffix, log_first=log_first)

    def rename_for_deletion(self) -> None:
        """See :meth:`SegmentFiles.rename_for_deletion
        <raftka.common.storage.segment_files.SegmentFiles.rename_for_deletion>`. The segment
        takes no more writes."""
        self._files.rename_for_deletion()

    def __repr__(self) -> str:
        return (
            f"LogSegment(base_offset={self.base_offset}, next_offset={self._next_offset}, "
            f"size={self._size})"
        )
