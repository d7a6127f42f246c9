"""A segmented log of v2 record batches in one directory.

Shared by the Raft metadata log and partition logs. Appends validate every batch's header and
CRC (O(1) Python work per batch), optionally assign offsets by rewriting 8 bytes per batch,
and write all batches of a call with one ``pwrite``. Reads return stored bytes via ``pread``.

Durability: :meth:`SegmentedLog.flush` fsyncs what was written and records a recovery point
(``recovery-point`` checkpoint, written atomically). On open, segments that may hold data
past the recovery point are rescanned; the first invalid or incomplete batch and everything
after it is dropped. :meth:`SegmentedLog.close` leaves a ``clean-shutdown`` marker that lets
the next open skip the scan.

:class:`SegmentedLog` holds the lock, appends and flushes; its state
(:class:`~raftka.common.storage.log_state.LogState`) is opened by :mod:`.log_loading`, read
by :mod:`.log_reads`, cut and deleted by :mod:`.log_truncation`, and compaction's cleaned
segments are swapped in by :mod:`.swap`.

Methods are thread-safe (one lock); file I/O blocks, so asyncio callers run them off the loop.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

import structlog

from raftka.common.clock import Clock, wall_clock_ms
from raftka.common.files import atomic_write, fsync_dir
from raftka.common.records.batch import BatchHeader, Buffer, CheckedBatches
from raftka.common.storage import log_reads, log_truncation, swap
from raftka.common.storage.checkpoint import CLEAN_SHUTDOWN_FILE
from raftka.common.storage.config import LogConfig
from raftka.common.storage.log_loading import load_log
from raftka.common.storage.log_state import LogState
from raftka.common.storage.prepare import prepare_append
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

log = structlog.get_logger(__name__)


class SegmentedLog:
    """One directory of segments ``<20-digit base offset>.log/.index/.timeindex``.

    Offsets are plain ints here: the Raft log calls them indexes, partitions call them
    offsets, and each caller wraps them in its own NewType.
    """

    def __init__(self, directory: Path, config: LogConfig, clock: Clock) -> None:
        """Use :meth:`open`."""
        self._state = LogState(directory, config, clock)
        self._lock = threading.RLock()

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
        load_log(instance._state)
        return instance

    # ================================================================== properties

    @property
    def directory(self) -> Path:
        return self._state.directory

    @property
    def config(self) -> LogConfig:
        return self._state.config

    @property
    def log_start_offset(self) -> int:
        """First readable offset."""
        return self._state.log_start

    @property
    def log_end_offset(self) -> int:
        """Offset the next appended record gets."""
        return self._state.log_end

    @property
    def recovery_point(self) -> int:
        """Offsets below this are durable (as of the last flush)."""
        return self._state.recovery_point

    @property
    def size_bytes(self) -> int:
        return sum(segment.size for segment in self._state.segments)

    @property
    def segment_base_offsets(self) -> tuple[int, ...]:
        return tuple(self._state.bases)

    @property
    def generation(self) -> int:
        """Changes whenever segments are truncated or removed (positions may then be stale)."""
        return self._state.generation

    @property
    def damage_found_on_open(self) -> DamageReport | None:
        """Damage found while opening a cleanly closed log: a segment that does not end where
        the next one starts (a segment deleted from the middle) or whose tail is unreadable.
        The segments are kept (what is intact stays readable); the caller decides the repair
        (:meth:`truncate_at_damage`)."""
        return self._state.damage_on_open

    def segments(self) -> tuple[SegmentInfo, ...]:
        """Base offset, size and largest timestamp of every segment, oldest first (the last
        one is the active segment): what a retention policy decides on."""
        with self._lock:
            return tuple(
                SegmentInfo(segment.base_offset, segment.size, segment.largest_timestamp)
                for segment in self._state.segments
            )

    # ================================================================== configuration

    def update_config(self, config: LogConfig) -> None:
        """Takes a new configuration without reopening (as Kafka's ``UnifiedLog.updateConfig``):
        rolling, batch-size limits and fsync policy follow it from the next append; segments
        already open keep their index interval (new segments get the new one).
        ``initial_start_offset`` only matters when a log is created, so it is ignored."""
        with self._lock:
            self._state.check_open()
            self._state.config = config

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
            state = self._state
            state.check_open()
            prepared = prepare_append(
                batch,
                state.log_end,
                assign_offsets=assign_offsets,
                leader_epoch=leader_epoch,
                max_batch_bytes=state.config.max_batch_bytes,
            )
            data, entries, next_offset = prepared.data, prepared.entries, prepared.next_offset
            base_offset = state.log_end
            last_offset = next_offset - 1
            now = state.clock()
            segment = state.segments[-1]
            reason = state.config.roll_reason(segment, len(data), last_offset, now)
            if reason is not None:
                segment = state.roll(now, reason)
            position = segment.append(data, entries, next_offset, now)
            state.log_end = next_offset
            state.unsynced.wrote(segment)
            if state.config.flush_every_batch:
                state.unsynced.sync_data()
            return AppendInfo(
                base_offset=base_offset,
                last_offset=last_offset,
                position=position,
                max_timestamp=prepared.max_timestamp,
                batch_count=len(entries),
                size=len(data),
            )

    def flush(self, *, checkpoint: bool = True) -> None:
        """fsyncs every segment written since the last flush (data and indexes), advances the
        recovery point to the log end offset as of the call and, if ``checkpoint``, writes it.

        The fsyncs run without the lock, so appends (and reads) proceed meanwhile and the next
        flush covers them: one fsync serves a whole group of appends.
        """
        state = self._state
        with self._lock:
            state.check_open()
            segments, dir_dirty = state.unsynced.take()
            target = state.log_end
            generation = state.generation
        try:
            for segment in segments:
                segment.sync()
            if dir_dirty:
                fsync_dir(state.directory)
        except OSError:
            with self._lock:
                # Whatever was not synced must be synced by a later flush.
                state.unsynced.give_back(segments, dir_dirty, state.segments)
                if state.generation != generation:
                    return  # segments were removed meanwhile (closed fds): not an I/O error
            raise
        with self._lock:
            if state.generation != generation or state.closed:
                return  # truncated, reset or closed meanwhile: the recovery point stays
            if target > state.recovery_point:
                state.recovery_point = target
            if checkpoint:
                state.write_checkpoint()

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
            self._state.check_open()
            return log_reads.read(self._state, offset, max_bytes, verify=verify)

    def read_region(self, offset: int, max_bytes: int, bound: int) -> RegionReadResult:
        """As :meth:`read` (verified), but the batches are answered as a region of their
        segment file for a zero-copy send, and none from the first one after the first whose
        base offset is >= ``bound``. They are verified from a mapping of the page cache,
        under the lock (no truncation meanwhile), without copying them into Python objects;
        the region holds its own descriptor (close it when sent)."""
        with self._lock:
            self._state.check_open()
            return log_reads.read_region(self._state, offset, max_bytes, bound)

    def scrub(
        self, base_offset: int, position: int, next_offset: int, max_bytes: int, generation: int
    ) -> ScrubProgress:
        """Verifies about ``max_bytes`` of the segment at ``base_offset`` from ``position``
        (a batch boundary whose batch must start at ``next_offset``; 0 and the base offset to
        begin), as :meth:`LogSegment.verify` does, for a background scrubber. A segment that
        is gone, or a log whose :attr:`generation` is no longer ``generation`` (truncated
        meanwhile: positions may be stale), answers done without reading."""
        with self._lock:
            self._state.check_open()
            return log_reads.scrub(
                self._state, base_offset, position, next_offset, max_bytes, generation
            )

    def batch_header_at(self, offset: int) -> BatchHeader:
        """Header of the stored batch that holds ``offset``."""
        with self._lock:
            self._state.check_open()
            return log_reads.batch_header_at(self._state, offset)

    def iter_batches(self, from_offset: int) -> Iterator[tuple[int, int, memoryview]]:
        """(base offset, last offset, view) of every batch from the one holding
        ``from_offset`` to the current end, for sequential replay. Range errors are raised
        here, not on the first ``next``. Do not truncate or delete while iterating."""
        with self._lock:
            self._state.check_open()
            return log_reads.batches_from(self._state, from_offset)

    def txn_indexes(self) -> list[tuple[int, TxnIndex]]:
        """(base offset, transaction index) of every segment, oldest first."""
        with self._lock:
            return [(segment.base_offset, segment.txn_index) for segment in self._state.segments]

    def offset_for_timestamp(self, timestamp: int) -> TimestampOffset | None:
        """The first record at or after the log start whose timestamp is >= ``timestamp``
        (found through the time indexes; only the matching batch is decoded), or None."""
        with self._lock:
            self._state.check_open()
            return log_reads.offset_for_timestamp(self._state, timestamp)

    # ================================================================== compaction

    def cleanable_segments(self, end_offset: int) -> tuple[int, tuple[LogSegment, ...]]:
        """(generation, segments) for a cleaner: the non-active segments that end at or
        below ``end_offset``, oldest first. They are immutable: the cleaner reads them
        without the lock and hands the generation back to :meth:`replace_segments`."""
        with self._lock:
            self._state.check_open()
            return swap.cleanable_segments(self._state, end_offset)

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
            return swap.replace_segments(self._state, cleaned, old, generation)

    # ================================================================== removing

    def truncate_to(self, offset: int) -> int:
        """Removes every batch holding an offset >= ``offset`` (a batch that straddles
        ``offset`` goes whole) and returns the new log end offset. Truncating to or below
        the log start empties the log, which then starts at ``offset``."""
        with self._lock:
            self._state.check_open()
            return log_truncation.truncate_to(self._state, offset)

    def truncate_at_damage(self, report: DamageReport) -> int:
        """Removes the damaged data ``report`` describes and everything after it, keeping
        the intact batches before ``report.offset``; returns the new log end offset. Unlike
        :meth:`truncate_to`, no batch header at or after the damage is read: the segment is
        cut at ``report.position``."""
        with self._lock:
            self._state.check_open()
            return log_truncation.truncate_at_damage(self._state, report)

    def delete_before(self, offset: int, *, reason: str = "delete_before") -> int:
        """Advances the log start offset to ``offset`` (<= log end offset) and deletes the
        segments wholly below it (rolling first if that includes the active segment).
        Returns how many segments were deleted; ``reason`` is logged."""
        with self._lock:
            self._state.check_open()
            return log_truncation.delete_before(self._state, offset, reason=reason)

    def reset(self, start_offset: int) -> None:
        """Deletes every segment and restarts the log, empty, at ``start_offset`` (used when
        a snapshot is installed)."""
        with self._lock:
            self._state.check_open()
            if start_offset < 0:
                raise ValueError(f"cannot reset to negative offset {start_offset}")
            log_truncation.reset(self._state, start_offset, reason="reset")

    def remove_deleted_segments(self, now_ms: int | None = None) -> int:
        """Removes the files of segments deleted at least ``file_delete_delay_ms`` before
        ``now_ms`` (default: this log's clock); returns how many segments went. Until then
        they are renamed ``*.deleted``, the log file still open for readers that hold the
        segment."""
        with self._lock:
            deletions = self._state.deletions
            if not deletions:
                return 0
            return deletions.remove_due(self._state.clock() if now_ms is None else now_ms)

    @property
    def pending_deletions(self) -> int:
        """Segments deleted whose files wait for ``file_delete_delay_ms``."""
        return len(self._state.deletions)

    # ================================================================== closing

    def close(self) -> None:
        """Flushes, closes every segment and marks the shutdown clean. Idempotent."""
        with self._lock:
            state = self._state
            if state.closed:
                return
            state.closed = True
            state.generation += 1
            try:
                state.flush_all(checkpoint=True)
            finally:
                for segment in state.segments:
                    segment.close()
                # A closed log has no readers left: waiting files go now.
                state.deletions.remove_all()
            atomic_write(state.directory / CLEAN_SHUTDOWN_FILE, b"")
            log.info("log_closed", directory=str(state.directory), log_end_offset=state.log_end)

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
        state = self._state
        return (
            f"SegmentedLog({str(state.directory)!r}, log_start_offset={state.log_start}, "
            f"log_end_offset={state.log_end}, segments={len(state.segments)})"
        )
