"""A segmented log of v2 record batches in one directory.

Shared by the Raft metadata log and partition logs. Appends validate every batch's header and
CRC (O(1) Python work per batch), optionally assign offsets by rewriting 8 bytes per batch,
and write all batches of a call with one ``pwrite``. Reads return stored bytes via ``pread``.

Durability: :meth:`SegmentedLog.flush` fsyncs what was written and records a recovery point
(``recovery-point`` checkpoint, written atomically). On open, segments that may hold data
past the recovery point are rescanned; the first invalid or incomplete batch and everything
after it is dropped. :meth:`SegmentedLog.close` leaves a ``clean-shutdown`` marker that lets
the next open skip the scan.

Methods are thread-safe (one lock); file I/O blocks, so asyncio callers run them off the loop.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import structlog

from raftka.common.clock import Clock, wall_clock_ms
from raftka.common.files import atomic_write, fsync_dir
from raftka.common.records.batch import (
    BatchHeader,
    Buffer,
    CheckedBatches,
)
from raftka.common.storage.checkpoint import (
    CLEAN_SHUTDOWN_FILE,
    Checkpoint,
    read_checkpoint,
    write_checkpoint,
)
from raftka.common.storage.config import LogConfig
from raftka.common.storage.deletion import DelayedDeletions
from raftka.common.storage.errors import (
    CorruptLogError,
    LogClosedError,
    LogOffsetOutOfRangeError,
)
from raftka.common.storage.files import SWAP_SUFFIX
from raftka.common.storage.prepare import prepare_append
from raftka.common.storage.read_checks import (
    cut_before,
    find_or_hole,
    verified_prefix,
    whole_batches_prefix,
)
from raftka.common.storage.recovery import load_segments, log_start_on_open, tidy_directory
from raftka.common.storage.region import FileRegion
from raftka.common.storage.results import (
    AppendInfo,
    DamageReport,
    ReadResult,
    RegionReadResult,
    ScrubProgress,
    SegmentInfo,
    TimestampOffset,
)
from raftka.common.storage.segment import LogSegment
from raftka.common.storage.txn_index import TxnIndex
from raftka.common.storage.unsynced import UnsyncedWrites

log = structlog.get_logger(__name__)


class SegmentedLog:
    """One directory of segments ``<20-digit base offset>.log/.index/.timeindex``.

    Offsets are plain ints here: the Raft log calls them indexes, partitions call them
    offsets, and each caller wraps them in its own NewType.
    """

    def __init__(self, directory: Path, config: LogConfig, clock: Clock) -> None:
        """Use :meth:`open`."""
        self._dir = directory
        self._config = config
        self._clock = clock
        self._lock = threading.RLock()
        self._segments: list[LogSegment] = []
        self._bases: list[int] = []
        self._log_start = 0
        self._leo = 0
        self._recovery_point = 0
        self._checkpointed: Checkpoint | None = None
        self._unsynced = UnsyncedWrites(directory)
        self._closed = False
        self._generation = 0  # bumped whenever segments are truncated or removed
        self._damage_on_open: DamageReport | None = None
        self._deletions = DelayedDeletions(directory, clock)

    # ================================================================== opening

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        config: LogConfig | None = None,
        *,
        clock: Clock | None = None,
    ) -> SegmentedLog:
        """Opens (creating if needed) the log in ``directory``, recovering it if needed."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        instance = cls(path, config if config is not None else LogConfig(), clock or wall_clock_ms)
        instance._load()
        return instance

    def _load(self) -> None:
        directory = self._dir
        now = self._clock()
        bases, self._unsynced.dir_dirty = tidy_directory(directory)
        checkpoint = read_checkpoint(directory)
        self._checkpointed = checkpoint
        clean_marker = directory / CLEAN_SHUTDOWN_FILE
        clean = clean_marker.exists()
        if not bases:
            start = (
                checkpoint.log_start_offset
                if checkpoint is not None
                else self._config.initial_start_offset
            )
            self._start_empty(start, now)
            if checkpoint is None:
                # A new, empty log: with no checkpoint the next open finds the same (its
                # first segment's base is the start), so none is written yet; the first
                # flush writes it. Creating many partitions then costs no checkpoint fsyncs.
                self._checkpointed = Checkpoint(start, start)
            self._finish_load(clean_marker, clean, recovered=0, created=True)
            return
        loaded = load_segments(
            directory,
            bases,
            index_interval_bytes=self._config.index_interval_bytes,
            checkpoint=checkpoint,
            clean=clean,
            now_ms=now,
        )
        self._unsynced.dir_dirty = self._unsynced.dir_dirty or loaded.directory_changed
        self._damage_on_open = loaded.damage
        self._set_segments(loaded.segments)
        self._leo = self._segments[-1].next_offset
        self._log_start = log_start_on_open(directory, checkpoint, self._bases[0], self._leo)
        self._delete_leading_segments(self._log_start, reason="below_log_start")
        # Recovered bytes may exist only in the page cache: make them durable before the
        # recovery point claims them.
        for segment in loaded.recovered:
            if any(segment is live for live in self._segments):
                segment.flush()
        self._unsynced.sync_dir()
        self._recovery_point = self._leo
        self._finish_load(clean_marker, clean, recovered=len(loaded.recovered), created=False)

    def _finish_load(
        self, clean_marker: Path, clean: bool, *, recovered: int, created: bool
    ) -> None:
        self._write_checkpoint()
        if clean:
            clean_marker.unlink(missing_ok=True)
            fsync_dir(self._dir)
        # A new log is told by whoever created it (a broker creates thousands at once).
        (log.debug if created else log.info)(
            "log_opened",
            directory=str(self._dir),
            segments=len(self._segments),
            log_start_offset=self._log_start,
            log_end_offset=self._leo,
            recovered_segments=recovered,
            clean_shutdown=clean,
            created=created,
        )

    def _start_empty(self, start_offset: int, now: int) -> None:
        segment = LogSegment.create(
            self._dir,
            start_offset,
            index_interval_bytes=self._config.index_interval_bytes,
            now_ms=now,
        )
        self._set_segments([segment])
        self._leo = start_offset
        self._log_start = start_offset
        self._recovery_point = start_offset
        fsync_dir(self._dir)
        self._unsynced.dir_dirty = False

    # ================================================================== properties

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def config(self) -> LogConfig:
        return self._config

    @property
    def log_start_offset(self) -> int:
        """First readable offset."""
        return self._log_start

    @property
    def log_end_offset(self) -> int:
        """Offset the next appended record gets."""
        return self._leo

    @property
    def recovery_point(self) -> int:
        """Offsets below this are durable (as of the last flush)."""
        return self._recovery_point

    @property
    def size_bytes(self) -> int:
        return sum(segment.size for segment in self._segments)

    @property
    def segment_base_offsets(self) -> tuple[int, ...]:
        return tuple(self._bases)

    @property
    def generation(self) -> int:
        """Changes whenever segments are truncated or removed (positions may then be stale)."""
        return self._generation

    @property
    def damage_found_on_open(self) -> DamageReport | None:
        """Damage found while opening a cleanly closed log: a segment that does not end where
        the next one starts (a segment deleted from the middle) or whose tail is unreadable.
        The segments are kept (what is intact stays readable); the caller decides the repair
        (:meth:`truncate_at_damage`)."""
        return self._damage_on_open

    def segments(self) -> tuple[SegmentInfo, ...]:
        """Base offset, size and largest timestamp of every segment, oldest first (the last
        one is the active segment): what a retention policy decides on."""
        with self._lock:
            return tuple(
                SegmentInfo(segment.base_offset, segment.size, segment.largest_timestamp)
                for segment in self._segments
            )

    # ================================================================== configuration

    def update_config(self, config: LogConfig) -> None:
        """Takes a new configuration without reopening (as Kafka's ``UnifiedLog.updateConfig``):
        rolling, batch-size limits and fsync policy follow it from the next append; segments
        already open keep their index interval (new segments get the new one).
        ``initial_start_offset`` only matters when a log is created, so it is ignored."""
        with self._lock:
            self._check_open()
            self._config = config

    # ================================================================== appending

    def append(
        self,
        batch: Buffer | CheckedBatches,
        *,
        assign_offsets: bool = True,
        leader_epoch: int | None = None,
    ) -> AppendInfo:
        """Appends one or more concatenated batches; all or nothing.

        Every batch is validated (length, magic, CRC, ``max_batch_bytes``) before anything is
        written; :class:`~raftka.common.records.batch.CheckedBatches` were validated by the
        caller, so only their sizes are checked again. With ``assign_offsets`` each batch's base offset is rewritten to the next
        offset (batches must be dense: records_count == last_offset_delta + 1 >= 1); without
        it the batches must already carry consecutive offsets starting at
        :attr:`log_end_offset`, else UnexpectedAppendOffsetError. ``leader_epoch``, when
        given, is stamped into every batch's partition leader epoch. The caller's buffer is
        never modified.
        """
        with self._lock:
            self._check_open()
            prepared = prepare_append(
                batch,
                self._leo,
                assign_offsets=assign_offsets,
                leader_epoch=leader_epoch,
                max_batch_bytes=self._config.max_batch_bytes,
            )
            data, entries, next_offset = prepared.data, prepared.entries, prepared.next_offset
            base_offset = self._leo
            last_offset = next_offset - 1
            now = self._clock()
            segment = self._segments[-1]
            reason = self._config.roll_reason(segment, len(data), last_offset, now)
            if reason is not None:
                segment = self._roll(now, reason)
            position = segment.append(data, entries, next_offset, now)
            self._leo = next_offset
            self._unsynced.wrote(segment)
            if self._config.flush_every_batch:
                self._unsynced.sync_data()
            return AppendInfo(
                base_offset=base_offset,
                last_offset=last_offset,
                position=position,
                max_timestamp=prepared.max_timestamp,
                batch_count=len(entries),
                size=len(data),
            )

    def _roll(self, now: int, reason: str) -> LogSegment:
        old = self._segments[-1]
        old.on_roll()
        new = LogSegment.create(
            self._dir,
            self._leo,
            index_interval_bytes=self._config.index_interval_bytes,
            now_ms=now,
        )
        self._segments.append(new)
        self._bases.append(new.base_offset)
        self._unsynced.rolled(old)
        log.info(
            "segment_rolled",
            directory=str(self._dir),
            base_offset=new.base_offset,
            previous_base_offset=old.base_offset,
            previous_size=old.size,
            reason=reason,
        )
        return new

    def flush(self, *, checkpoint: bool = True) -> None:
        """fsyncs every segment written since the last flush (data and indexes), advances the
        recovery point to the log end offset as of the call and, if ``checkpoint``, writes it.

        The fsyncs run without the lock, so appends (and reads) proceed meanwhile and the next
        flush covers them: one fsync serves a whole group of appends.
        """
        with self._lock:
            self._check_open()
            segments, dir_dirty = self._unsynced.take()
            target = self._leo
            generation = self._generation
        try:
            for segment in segments:
                segment.sync()
            if dir_dirty:
                fsync_dir(self._dir)
        except OSError:
            with self._lock:
                # Whatever was not synced must be synced by a later flush.
                self._unsynced.give_back(segments, dir_dirty, self._segments)
                if self._generation != generation:
                    return  # segments were removed meanwhile (closed fds): not an I/O error
            raise
        with self._lock:
            if self._generation != generation or self._closed:
                return  # truncated, reset or closed meanwhile: the recovery point stays
            if target > self._recovery_point:
                self._recovery_point = target
            if checkpoint:
                self._write_checkpoint()

    def _flush_locked(self, *, checkpoint: bool) -> None:
        self._unsynced.flush_all()
        self._recovery_point = self._leo
        if checkpoint:
            self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        """Writes (recovery point, log start) unless the file already says exactly that."""
        current = Checkpoint(self._recovery_point, self._log_start)
        if current != self._checkpointed:
            write_checkpoint(self._dir, current)
            self._checkpointed = current

    # ================================================================== reading

    def read(self, offset: int, max_bytes: int, *, verify: bool = True) -> ReadResult:
        """Whole batches from the one holding ``offset``, up to ``max_bytes`` (but at least
        one batch), from a single segment. Raises LogOffsetOutOfRangeError unless
        log_start_offset <= offset < log_end_offset.

        With ``verify`` (the default) every returned batch was checked (framing, CRC-32C,
        contiguous offsets) as it was read: damaged data is never returned. When the first
        batch is damaged (or its offsets are missing) DamagedBatchError says where; when a
        later one is, the intact batches before it are returned, and the next read meets it.
        """
        with self._lock:
            self._check_open()
            self._check_readable(offset)
            segment = self._segments[bisect_right(self._bases, offset) - 1]
            where = self._dir.name
            position, header = find_or_hole(segment, offset, self._damage_on_open, where)
            want = min(max(max_bytes, header.size), segment.size - position)
            chunk = segment.read(position, want)
            if verify:
                end, last_offset = verified_prefix(segment, position, chunk, header, offset, where)
            else:
                end, last_offset = whole_batches_prefix(segment, position, chunk, header)
            return ReadResult(
                records=chunk if end == len(chunk) else chunk[:end],
                base_offset=header.base_offset,
                last_offset=last_offset,
                log_start_offset=self._log_start,
                log_end_offset=self._leo,
            )

    def read_region(self, offset: int, max_bytes: int, bound: int) -> RegionReadResult:
        """As :meth:`read` (verified), but the batches are answered as a region of their
        segment file for a zero-copy send, and none from the first one after the first whose
        base offset is >= ``bound``. They are verified from a mapping of the page cache,
        under the lock (no truncation meanwhile), without copying them into Python objects;
        the region holds its own descriptor (close it when sent)."""
        with self._lock:
            self._check_open()
            self._check_readable(offset)
            segment = self._segments[bisect_right(self._bases, offset) - 1]
            where = self._dir.name
            position, header = find_or_hole(segment, offset, self._damage_on_open, where)
            want = min(max(max_bytes, header.size), segment.size - position)
            with segment.mapped(position, want) as (view, fd):
                end, last_offset = verified_prefix(segment, position, view, header, offset, where)
                if last_offset >= bound:
                    cut = cut_before(view, end, bound)
                    if cut is not None:
                        end, last_offset = cut
                region = FileRegion.duplicate(fd, position, end)
            return RegionReadResult(
                region=region,
                base_offset=header.base_offset,
                last_offset=last_offset,
                log_start_offset=self._log_start,
                log_end_offset=self._leo,
            )

    def scrub(
        self, base_offset: int, position: int, next_offset: int, max_bytes: int, generation: int
    ) -> ScrubProgress:
        """Verifies about ``max_bytes`` of the segment at ``base_offset`` from ``position``
        (a batch boundary whose batch must start at ``next_offset``; 0 and the base offset to
        begin), as :meth:`LogSegment.verify` does, for a background scrubber. A segment that
        is gone, or a log whose :attr:`generation` is no longer ``generation`` (truncated
        meanwhile: positions may be stale), answers done without reading."""
        with self._lock:
            self._check_open()
            i = bisect_right(self._bases, base_offset) - 1
            if generation != self._generation or i < 0 or self._bases[i] != base_offset:
                return ScrubProgress(position, next_offset, 0, True)
            segment = self._segments[i]
            end_offset = self._bases[i + 1] if i + 1 < len(self._bases) else None
            return segment.verify(position, next_offset, max_bytes, end_offset=end_offset)

    def batch_header_at(self, offset: int) -> BatchHeader:
        """Header of the stored batch that holds ``offset``."""
        with self._lock:
            self._check_open()
            self._check_readable(offset)
            return self._locate(offset)[2]

    def iter_batches(self, from_offset: int) -> Iterator[tuple[int, int, memoryview]]:
        """(base offset, last offset, view) of every batch from the one holding
        ``from_offset`` to the current end, for sequential replay. Range errors are raised
        here, not on the first ``next``. Do not truncate or delete while iterating."""
        with self._lock:
            self._check_open()
            if from_offset == self._leo:
                return iter(())
            self._check_readable(from_offset)
            segment, position, _ = self._locate(from_offset)
            i = self._bases.index(segment.base_offset)
            segments = self._segments[i:]
        return self._iter_batches(segments, position)

    @staticmethod
    def _iter_batches(
        segments: list[LogSegment], position: int
    ) -> Iterator[tuple[int, int, memoryview]]:
        for k, segment in enumerate(segments):
            for _pos, view in segment.batches_from(position if k == 0 else 0):
                header = BatchHeader.parse(view)
                yield header.base_offset, header.last_offset, view

    def txn_indexes(self) -> list[tuple[int, TxnIndex]]:
        """(base offset, transaction index) of every segment, oldest first."""
        with self._lock:
            return [(segment.base_offset, segment.txn_index) for segment in self._segments]

    def offset_for_timestamp(self, timestamp: int) -> TimestampOffset | None:
        """The first record at or after the log start whose timestamp is >= ``timestamp``
        (found through the time indexes; only the matching batch is decoded), or None."""
        with self._lock:
            self._check_open()
            start = self._log_start
            for segment in self._segments:
                found = segment.find_timestamp(timestamp, start)
                if found is not None:
                    return found
            return None

    def _check_readable(self, offset: int) -> None:
        if not self._log_start <= offset < self._leo:
            raise LogOffsetOutOfRangeError(offset, self._log_start, self._leo)

    def _locate(self, offset: int) -> tuple[LogSegment, int, BatchHeader]:
        segment = self._segments[bisect_right(self._bases, offset) - 1]
        found = segment.find(offset)
        if found is None:
            raise CorruptLogError(
                f"offset {offset} is missing from segment {segment.log_path.name}"
            )
        return segment, found[0], found[1]

    # ================================================================== compaction

    def cleanable_segments(self, end_offset: int) -> tuple[int, tuple[LogSegment, ...]]:
        """(generation, segments) for a cleaner: the non-active segments that end at or
        below ``end_offset``, oldest first. They are immutable: the cleaner reads them
        without the lock and hands the generation back to :meth:`replace_segments`."""
        with self._lock:
            self._check_open()
            found = tuple(s for s in self._segments[:-1] if s.next_offset <= end_offset)
            return self._generation, found

    def replace_segments(
        self, cleaned: LogSegment, old: Sequence[LogSegment], generation: int
    ) -> int | None:
        """Swaps the flushed ``*.cleaned`` segment ``cleaned`` in for the consecutive
        segments ``old`` (which it must span exactly) and returns the new generation; or,
        when the log changed since ``generation`` (truncated, segments deleted) or closed,
        changes nothing and returns None (the caller deletes ``cleaned``).

        Crash-safe (see :mod:`raftka.common.storage.swap`): ``*.cleaned`` -> ``*.swap``, the
        old segments leave the log (renamed ``*.deleted``, still readable by a read holding
        them, until ``file.delete.delay.ms``), then ``.swap`` is stripped."""
        with self._lock:
            if self._closed or generation != self._generation:
                return None
            i = bisect_right(self._bases, old[0].base_offset) - 1
            current = self._segments[i : i + len(old)]
            if (
                i < 0
                or i + len(old) >= len(self._segments)
                or len(current) != len(old)
                or any(a is not b for a, b in zip(current, old, strict=True))
                or cleaned.base_offset != old[0].base_offset
                or cleaned.next_offset != old[-1].next_offset
            ):
                return None
            cleaned.rename_files(SWAP_SUFFIX, log_first=False)
            fsync_dir(self._dir)
            self._segments[i : i + len(old)] = [cleaned]
            self._bases[i : i + len(old)] = [cleaned.base_offset]
            self._generation += 1
            for segment in old:
                self._unsynced.forget(segment)
                self._discard(segment)
            cleaned.rename_files("", log_first=True)
            fsync_dir(self._dir)
            return self._generation

    # ================================================================== removing

    def truncate_to(self, offset: int) -> int:
        """Removes every batch holding an offset >= ``offset`` (a batch that straddles
        ``offset`` goes whole) and returns the new log end offset. Truncating to or below
        the log start empties the log, which then starts at ``offset``."""
        with self._lock:
            self._check_open()
            if offset < 0:
                raise ValueError(f"cannot truncate to negative offset {offset}")
            if offset >= self._leo:
                return self._leo
            if offset <= self._log_start:
                self._reset_locked(offset, reason="truncate_to_log_start")
                return offset
            i = bisect_right(self._bases, offset) - 1
            segment, _, header = self._locate(offset)
            self._cut_after(
                i, lambda: segment.truncate_to(offset), header.base_offset, requested=offset
            )
            return header.base_offset

    def _cut_after(
        self, i: int, cut_segment: Callable[[], object], new_leo: int, *, requested: int
    ) -> None:
        """Deletes the segments after the ``i``-th, cuts that one (``cut_segment``) and ends
        the log at ``new_leo``."""
        segment = self._segments[i]
        self._generation += 1
        old_leo = self._leo
        self._recovery_point = min(self._recovery_point, new_leo)
        self._log_start = min(self._log_start, new_leo)
        self._write_checkpoint()
        later = self._segments[i + 1 :]
        for dropped in reversed(later):
            self._unsynced.forget(dropped)
            self._discard(dropped)
        if later:
            del self._segments[i + 1 :]
            del self._bases[i + 1 :]
            fsync_dir(self._dir)
        cut_segment()
        segment.flush()
        self._leo = new_leo
        log.info(
            "log_truncated",
            directory=str(self._dir),
            requested_offset=requested,
            log_end_offset=new_leo,
            previous_log_end_offset=old_leo,
            deleted_segments=len(later),
        )

    def truncate_at_damage(self, report: DamageReport) -> int:
        """Removes the damaged data ``report`` describes and everything after it, keeping
        the intact batches before ``report.offset``; returns the new log end offset. Unlike
        :meth:`truncate_to`, no batch header at or after the damage is read: the segment is
        cut at ``report.position``."""
        with self._lock:
            self._check_open()
            if report.offset >= self._leo:
                return self._leo
            if report.offset <= self._log_start:
                self._reset_locked(report.offset, reason="damage_at_log_start")
                return report.offset
            i = bisect_right(self._bases, report.segment_base_offset) - 1
            if i < 0 or self._bases[i] != report.segment_base_offset:
                raise CorruptLogError(
                    f"{self._dir.name}: segment {report.segment_base_offset} of the damage at "
                    f"offset {report.offset} is gone; nothing was truncated"
                )
            segment = self._segments[i]
            self._cut_after(
                i,
                lambda: segment.truncate_at(report.position, report.offset),
                report.offset,
                requested=report.offset,
            )
            self._damage_on_open = None
            return report.offset

    def delete_before(self, offset: int, *, reason: str = "delete_before") -> int:
        """Advances the log start offset to ``offset`` (<= log end offset) and deletes the
        segments wholly below it (rolling first if that includes the active segment).
        Returns how many segments were deleted; ``reason`` is logged."""
        with self._lock:
            self._check_open()
            if offset <= self._log_start:
                return 0
            if offset > self._leo:
                raise LogOffsetOutOfRangeError(offset, self._log_start, self._leo)
            if offset == self._leo and not self._segments[-1].is_empty:
                self._roll(self._clock(), "delete_before")
            self._log_start = offset
            self._write_checkpoint()
            return self._delete_leading_segments(offset, reason=reason)

    def reset(self, start_offset: int) -> None:
        """Deletes every segment and restarts the log, empty, at ``start_offset`` (used when
        a snapshot is installed)."""
        with self._lock:
            self._check_open()
            if start_offset < 0:
                raise ValueError(f"cannot reset to negative offset {start_offset}")
            self._reset_locked(start_offset, reason="reset")

    def _reset_locked(self, start_offset: int, *, reason: str) -> None:
        old_start, old_end = self._log_start, self._leo
        self._generation += 1
        for segment in reversed(self._segments):
            self._unsynced.forget(segment)
            self._discard(segment)
        self._segments = []
        self._bases = []
        fsync_dir(self._dir)
        self._start_empty(start_offset, self._clock())
        self._write_checkpoint()
        log.info(
            "log_reset",
            directory=str(self._dir),
            start_offset=start_offset,
            previous_log_start_offset=old_start,
            previous_log_end_offset=old_end,
            reason=reason,
        )

    def _delete_leading_segments(self, offset: int, *, reason: str) -> int:
        """Deletes non-active segments whose offsets all lie below ``offset``, oldest first."""
        count = 0
        while count + 1 < len(self._segments) and self._bases[count + 1] <= offset:
            count += 1
        if count == 0:
            return 0
        doomed = self._segments[:count]
        self._generation += 1
        for segment in doomed:
            self._unsynced.forget(segment)
            self._discard(segment)
        del self._segments[:count]
        del self._bases[:count]
        self._unsynced.dir_dirty = True
        log.info(
            "segments_deleted",
            directory=str(self._dir),
            base_offsets=[segment.base_offset for segment in doomed],
            log_start_offset=self._log_start,
            reason=reason,
        )
        return count

    def _discard(self, segment: LogSegment) -> None:
        """Removes a segment's files, at once or, with ``file_delete_delay_ms``, after that
        delay (:meth:`remove_deleted_segments`): renamed ``*.deleted`` meanwhile, the log
        file still open for readers that hold the segment."""
        self._deletions.discard(segment, self._config.file_delete_delay_ms)

    def remove_deleted_segments(self, now_ms: int | None = None) -> int:
        """Removes the files of segments deleted at least ``file_delete_delay_ms`` before
        ``now_ms`` (default: this log's clock); returns how many segments went."""
        with self._lock:
            if not self._deletions:
                return 0
            return self._deletions.remove_due(self._clock() if now_ms is None else now_ms)

    @property
    def pending_deletions(self) -> int:
        """Segments deleted whose files wait for ``file_delete_delay_ms``."""
        return len(self._deletions)

    def _set_segments(self, segments: list[LogSegment]) -> None:
        self._segments = segments
        self._bases = [segment.base_offset for segment in segments]

    # ================================================================== closing

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"log {self._dir} is closed")

    def close(self) -> None:
        """Flushes, closes every segment and marks the shutdown clean. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._generation += 1
            try:
                self._flush_locked(checkpoint=True)
            finally:
                for segment in self._segments:
                    segment.close()
                # A closed log has no readers left: waiting files go now.
                self._deletions.remove_all()
            atomic_write(self._dir / CLEAN_SHUTDOWN_FILE, b"")
            log.info("log_closed", directory=str(self._dir), log_end_offset=self._leo)

    def __enter__(self) -> SegmentedLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"SegmentedLog({str(self._dir)!r}, log_start_offset={self._log_start}, "
            f"log_end_offset={self._leo}, segments={len(self._segments)})"
        )
