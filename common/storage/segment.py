"""One log segment: a ``.log`` file of record batches with its offset and time indexes.

The segment trusts its caller to append only validated, contiguous batches; it keeps per-batch
bookkeeping O(1) (index entries every ``index_interval_bytes``, running max timestamp). Reads
use ``os.pread`` and never load the whole file.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import structlog

from raftka.common.faults import FAULTS
from raftka.common.files import pread_exact, pwrite_all
from raftka.common.records.batch import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    Buffer,
    validate,
)
from raftka.common.records.decoder import decode_batch
from raftka.common.records.errors import RecordError
from raftka.common.storage.batch_scan import BatchScan
from raftka.common.storage.errors import CorruptLogError, DamagedBatchError
from raftka.common.storage.file_pool import SEGMENT_FILES
from raftka.common.storage.files import DELETED_SUFFIX, segment_paths, txn_index_path
from raftka.common.storage.index import IndexCorruptError, OffsetIndex, TimeIndex
from raftka.common.storage.results import DamageReport, ScrubProgress, TimestampOffset
from raftka.common.storage.segment_verify import verify_segment
from raftka.common.storage.txn_index import TxnIndex

_LOCATE_CHUNK_BYTES = 8192
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
        directory: Path,
        base_offset: int,
        fd: int,
        size: int,
        *,
        index_interval_bytes: int,
        created_ms: int,
        last_modified_ms: int,
        suffix: str = "",
    ) -> None:
        self.base_offset = base_offset
        self._dir = directory
        self.log_path, index_path, time_index_path = segment_paths(directory, base_offset, suffix)
        self.offset_index = OffsetIndex(index_path, base_offset)
        self.time_index = TimeIndex(time_index_path, base_offset)
        self.txn_index = TxnIndex(txn_index_path(directory, base_offset, suffix), base_offset)
        self._file = SEGMENT_FILES.adopt(self.log_path, fd)
        self._size = size
        self._interval = index_interval_bytes
        self._next_offset = base_offset
        self._max_timestamp = -1
        self._offset_of_max_timestamp = base_offset
        self._bytes_since_index = 0
        self._created_ms = created_ms
        self._last_modified_ms = last_modified_ms
        self._closed = False

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
        log_path = segment_paths(directory, base_offset, suffix)[0]
        fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        segment = cls(
            directory,
            base_offset,
            fd,
            0,
            index_interval_bytes=index_interval_bytes,
            created_ms=now_ms,
            last_modified_ms=now_ms,
            suffix=suffix,
        )
        segment.write_indexes()
        segment.txn_index.create()
        return segment

    @classmethod
    def open(
        cls, directory: Path, base_offset: int, *, index_interval_bytes: int, now_ms: int
    ) -> LogSegment:
        """Opens an existing segment's log file; call a ``load_*`` or :meth:`recover` next."""
        log_path = segment_paths(directory, base_offset)[0]
        fd = os.open(log_path, os.O_RDWR)
        try:
            stat = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(
            directory,
            base_offset,
            fd,
            stat.st_size,
            index_interval_bytes=index_interval_bytes,
            created_ms=now_ms,
            last_modified_ms=int(stat.st_mtime * 1000),
        )

    def load_indexes(self, end_offset: int | None) -> str | None:
        """Loads both index files; returns why they cannot be used, or None when they can.
        The transaction index is loaded too: one that cannot be used is emptied and left to
        be rebuilt by its owner (:attr:`TxnIndex.needs_rebuild`), the segment is not."""
        txn_problem = self.txn_index.load(end_offset=end_offset)
        if txn_problem is not None:
            log.warning("txn_index_rebuild_needed", path=str(self.log_path), reason=txn_problem)
        try:
            self.offset_index.load(log_size=self._size, end_offset=end_offset)
            self.time_index.load(end_offset=end_offset)
        except IndexCorruptError as exc:
            self.offset_index.reset()
            self.time_index.reset()
            return str(exc)
        return None

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
        reason: str | None = None
        position = start
        with self._file.use() as fd:
            scan = BatchScan(fd, start, self._size)
            for pos, view in scan:
                header = BatchHeader.parse(view)
                if header.base_offset != expected:
                    reason = f"batch has base offset {header.base_offset}, expected {expected}"
                    position = pos
                    break
                expected = header.next_offset
                position = pos + header.size
            else:
                if scan.position != self._size:
                    reason = f"unreadable batch ({self._size - scan.position} bytes to the end)"
                    position = scan.position
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
        with self._file.use() as fd:
            return self._recover(fd, now_ms)

    def _recover(self, fd: int, now_ms: int) -> bool:
        control = False
        file_size = os.fstat(fd).st_size
        expected = self.base_offset
        valid = 0
        reason: str | None = None
        scan = BatchScan(fd, 0, file_size)
        for pos, view in scan:
            try:
                header = validate(view)
            except RecordError as exc:
                reason = f"at byte {pos}: {exc}"
                break
            if header.base_offset != expected:
                reason = (
                    f"batch at byte {pos} has base offset {header.base_offset}, expected {expected}"
                )
                break
            self._track_batch(header.base_offset, pos, header.size, header.max_timestamp)
            control = control or header.is_control
            expected = header.next_offset
            valid = pos + header.size
        if reason is None and valid < file_size:
            reason = f"incomplete batch at byte {valid}"
        self._size = valid
        self._next_offset = expected
        truncated = valid < file_size
        if truncated:
            os.ftruncate(fd, valid)
            log.warning(
                "truncated_torn_tail",
                path=str(self.log_path),
                valid_bytes=valid,
                dropped_bytes=file_size - valid,
                next_offset=expected,
                reason=reason,
            )
        self.time_index.maybe_append(self._max_timestamp, self._offset_of_max_timestamp)
        self.write_indexes()
        self.txn_index.reset(needs_rebuild=control)
        self._init_roll_base(now_ms)
        return truncated

    def _init_roll_base(self, now_ms: int) -> None:
        """After a restart, age is measured from the first batch's max timestamp if it has
        one (as Kafka does), so that restarts do not postpone time-based rolls."""
        self._created_ms = now_ms
        if self._size >= HEADER_SIZE:
            with self._file.use() as fd:
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
        with self._file.use() as fd:
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
        with self._file.use() as fd:
            os.ftruncate(fd, position)
        self._size = position
        self._next_offset = header.base_offset
        self.offset_index.truncate_to(header.base_offset)
        self.time_index.truncate_to(header.base_offset)
        self.txn_index.truncate_to(header.base_offset)
        self._max_timestamp = -1
        self._offset_of_max_timestamp = self.base_offset
        last = self.time_index.last_entry()
        if last is not None:
            self._max_timestamp, self._offset_of_max_timestamp = last
        if not self._scan_tail(verify=False):
            raise CorruptLogError(f"{self.log_path.name}: unreadable batch before byte {position}")
        return True

    def truncate_at(self, position: int, next_offset: int) -> None:
        """Cuts the file at ``position`` (a batch boundary: the end of the last batch to
        keep, whose next offset is ``next_offset``), e.g. where damage begins."""
        with self._file.use() as fd:
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
        if not self._scan_tail(verify=False) or self._next_offset != next_offset:
            raise CorruptLogError(
                f"{self.log_path.name}: the batches before byte {position} do not end at "
                f"offset {next_offset}"
            )

    def _scan_tail(self, *, verify: bool) -> bool:
        """Walks the batches after the last offset-index entry to restore next offset, max
        timestamp and the bytes since that entry. Returns False if they are not clean."""
        expected, start = self.offset_index.last_entry()
        with self._file.use() as fd:
            scan = BatchScan(fd, start, self._size)
            for _pos, view in scan:
                try:
                    header = validate(view) if verify else BatchHeader.parse(view)
                except RecordError:
                    return False
                if header.base_offset != expected:
                    return False
                if header.max_timestamp > self._max_timestamp:
                    self._max_timestamp = header.max_timestamp
                    self._offset_of_max_timestamp = header.base_offset
                expected = header.next_offset
        if scan.position != self._size:
            return False
        self._next_offset = expected
        self._bytes_since_index = self._size - start
        return True

    def flush(self) -> None:
        """Makes the log data and indexes durable."""
        self.write_indexes()
        self.sync()

    def write_indexes(self) -> None:
        """Writes index entries not yet in their files (no fsync)."""
        self.offset_index.write()
        self.time_index.write()

    def sync(self) -> None:
        """fsyncs the log data and any index file written since its last sync. Safe to call
        without the log's lock (it touches no in-memory state but the indexes' sync flags)."""
        FAULTS.before_fsync()
        with self._file.use() as fd:
            os.fdatasync(fd)
        self.offset_index.sync()
        self.time_index.sync()
        self.txn_index.sync()

    def sync_data(self) -> None:
        """Makes the log data durable (indexes are rebuilt after a crash if needed)."""
        FAULTS.before_fsync()
        with self._file.use() as fd:
            os.fdatasync(fd)

    # ------------------------------------------------------------------ reading

    def read(self, position: int, size: int) -> bytes:
        with self._file.use() as fd:
            return pread_exact(fd, min(size, self._size - position), position)

    @contextlib.contextmanager
    def mapped(self, position: int, size: int) -> Iterator[tuple[memoryview, int]]:
        """A read-only view of up to ``size`` bytes at ``position``, mapped from the page
        cache (no copy into Python objects), and the segment's descriptor. The view must not
        outlive the block, nor be touched after a truncation (the caller holds the log's
        lock across it)."""
        size = min(size, self._size - position)
        start = position - position % mmap.ALLOCATIONGRANULARITY
        with self._file.use() as fd:
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
        end = self._size
        buf = b""
        buf_start = pos
        while pos < end:
            off = pos - buf_start
            if off + HEADER_SIZE > len(buf):
                with self._file.use() as fd:
                    buf = pread_exact(fd, min(_LOCATE_CHUNK_BYTES, end - pos), pos)
                buf_start, off = pos, 0
            try:
                header = BatchHeader.parse(buf, off)
            except RecordError as exc:
                raise self._damage(expected, pos, str(exc)) from exc
            if header.batch_length < HEADER_SIZE - LOG_OVERHEAD or header.size > end - pos:
                raise self._damage(expected, pos, f"impossible batch length {header.batch_length}")
            if header.base_offset != expected:
                raise self._damage(
                    expected,
                    pos,
                    f"batch has base offset {header.base_offset}, expected {expected}",
                )
            if header.base_offset + header.last_offset_delta >= offset:
                return pos, header
            pos += header.batch_length + LOG_OVERHEAD
            expected = header.next_offset
        return None

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
        if self._max_timestamp < timestamp or self._next_offset <= start_offset:
            return None
        first = max(start_offset, self.base_offset)
        entry = self.time_index.lookup(timestamp)
        if entry is not None:
            first = max(first, entry[1])
        found = self.find(first)
        if found is None:
            return None
        for _pos, view in self.batches_from(found[0]):
            header = BatchHeader.parse(view)
            if header.max_timestamp < timestamp or header.last_offset < start_offset:
                continue
            for record in decode_batch(view, verify=False).records:
                if record.offset >= start_offset and record.timestamp >= timestamp:
                    return TimestampOffset(
                        record.timestamp, record.offset, header.partition_leader_epoch
                    )
        return None

    def batches_from(self, position: int) -> Iterator[tuple[int, memoryview]]:
        """(position, view) of each stored batch from ``position`` to the current end."""
        end = self._size
        with self._file.use() as fd:
            scan = BatchScan(fd, position, end)
            yield from scan
        if scan.position != end:
            raise CorruptLogError(f"{self.log_path.name}: unreadable batch at byte {scan.position}")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.write_indexes()
        finally:
            self._file.close()

    def delete(self) -> None:
        """Closes the segment and removes its files (log first, then indexes). After
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
        self.offset_index.delete()
        self.time_index.delete()
        self.txn_index.delete()

    def set_last_modified(self, ms: int) -> None:
        """Sets the log file's modification time (what retention falls back on when no batch
        has a timestamp): a cleaned segment takes the one of the segments it replaces."""
        os.utime(self.log_path, ns=(ms * 1_000_000, ms * 1_000_000))
        self._last_modified_ms = ms

    def rename_files(self, suffix: str, *, log_first: bool) -> None:
        """Renames the segment's files to their plain names followed by ``suffix`` ("" for
        the plain names), keeping them open. The log file goes first or last
        (``log_first``), so that a crash between the renames leaves the log file's name
        saying which state the segment is in (missing index files are rebuilt on open)."""
        log_path, index_path, time_index_path = segment_paths(self._dir, self.base_offset, suffix)
        txn_path = txn_index_path(self._dir, self.base_offset, suffix)
        if log_first:
            os.replace(self.log_path, log_path)
            self.log_path = self._file.path = log_path
        indexes: tuple[OffsetIndex | TimeIndex | TxnIndex, ...] = (
            self.offset_index,
            self.time_index,
            self.txn_index,
        )
        for index, target in zip(indexes, (index_path, time_index_path, txn_path), strict=True):
            with contextlib.suppress(FileNotFoundError):
                os.replace(index.path, target)
            index.path = target
        if not log_first:
            os.replace(self.log_path, log_path)
            self.log_path = self._file.path = log_path

    def rename_for_deletion(self) -> None:
        """Renames the segment's files ``<name>.deleted`` and keeps the log file open, so that
        a reader already holding the segment keeps reading it; :meth:`delete` removes them
        later. The segment takes no more writes. ``*.deleted`` files left by a crash are
        removed when the log is next opened."""
        indexes: tuple[OffsetIndex | TimeIndex | TxnIndex, ...] = (
            self.offset_index,
            self.time_index,
            self.txn_index,
        )
        for index in indexes:
            target = index.path.with_name(index.path.name + DELETED_SUFFIX)
            with contextlib.suppress(FileNotFoundError):
                os.replace(index.path, target)
            index.path = target
        target = self.log_path.with_name(self.log_path.name + DELETED_SUFFIX)
        os.replace(self.log_path, target)
        self.log_path = self._file.path = target

    def __repr__(self) -> str:
        return (
            f"LogSegment(base_offset={self.base_offset}, next_offset={self._next_offset}, "
            f"size={self._size})"
        )
