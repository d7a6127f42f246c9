"""One partition's log on a broker: leader appends, bounded reads, retention, flush policy.

A thin layer over :class:`~raftka.common.storage.SegmentedLog` (which owns segments,
indexes, recovery and the bytes on disk) adding what a partition needs: the topic's configs,
producer-batch validation (:mod:`raftka.broker.log_validator`), LogAppendTime, the high
watermark that bounds reads, the flush policy with group commit, retention, and the
``partition.metadata`` topic id.

Methods are synchronous and block on file I/O: asyncio callers run them with
``asyncio.to_thread``. They are thread-safe, except that the caller serializes
:meth:`PartitionLog.append_as_leader` per partition (appends are all-or-nothing but their
order is the caller's to decide). Per batch the Python work is O(1): no record is decoded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import structlog

from raftka.broker.log_config import PartitionLogConfig
from raftka.broker.log_dirs import (
    InconsistentTopicIdError,
    TopicPartition,
    partition_dir_name,
    read_topic_id,
    remove_partition_dir,
    write_topic_id,
)
from raftka.broker.log_validator import validate_produced_batches
from raftka.broker.retention import apply_retention
from raftka.common.files import fsync_dir
from raftka.common.metadata.topic_names import validate_topic_name
from raftka.common.records import Buffer, read_base_offset, read_batch_size
from raftka.common.storage import (
    Clock,
    LogClosedError,
    OffsetOutOfRangeError,
    SegmentedLog,
    TimestampOffset,
    wall_clock_ms,
)

NO_TIMESTAMP = -1
"""``log_append_time_ms`` of an append to a CreateTime topic."""

_T = TypeVar("_T")

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AppendResult:
    base_offset: int
    """Offset of the first record appended."""
    last_offset: int
    """Offset of the last record appended."""
    log_append_time_ms: int
    """The time stamped into the batches (LogAppendTime topics), else -1."""
    log_start_offset: int


@dataclass(frozen=True, slots=True)
class FetchData:
    records: bytes
    """Whole stored batches, byte-identical to what was appended (empty when none)."""
    high_watermark: int
    log_start_offset: int
    log_end_offset: int


class PartitionLog:
    """The log of one partition replica, in ``<log_dir>/<topic>-<partition>/``."""

    def __init__(
        self,
        topic_partition: TopicPartition,
        topic_id: str | None,
        segmented_log: SegmentedLog,
        config_overrides: Mapping[str, str],
        config: PartitionLogConfig,
        *,
        fsync_every_batch: bool,
        hw_follows_log_end: bool,
        clock: Clock,
    ) -> None:
        """Use :meth:`open`."""
        self._tp = topic_partition
        self._topic_id = topic_id
        self._log = segmented_log
        self._overrides = dict(config_overrides)
        self._config = config
        self._fsync_every_batch = fsync_every_batch
        self._hw_follows_log_end = hw_follows_log_end
        self._clock = clock
        self._swap_lock = threading.Lock()  # held while the segmented log is closed or reopened
        self._hw_lock = threading.Lock()
        self._flush_cond = threading.Condition()
        self._flushing = False
        self._closed = False
        self._hw = (
            segmented_log.log_end_offset if hw_follows_log_end else segmented_log.log_start_offset
        )

    # ================================================================== opening

    @classmethod
    def open(
        cls,
        log_dir: str | Path,
        topic: str,
        partition: int,
        *,
        topic_id: str | None,
        config_overrides: Mapping[str, str] | None = None,
        fsync_every_batch: bool = False,
        hw_follows_log_end: bool = True,
        clock: Clock | None = None,
    ) -> PartitionLog:
        """Opens (recovering it if needed) or creates the partition's directory in ``log_dir``.

        Creating needs ``topic_id``, written to ``partition.metadata`` before any data. An
        existing directory whose stored topic id differs from ``topic_id`` raises
        InconsistentTopicIdError (it belongs to a deleted topic of the same name); one without
        a stored id adopts ``topic_id``. ``config_overrides`` are the topic's config overrides.

        ``hw_follows_log_end`` (until replication drives the high watermark): the high
        watermark starts at the log end offset and follows every append (every flush, when
        appends are fsynced); otherwise it starts at the log start offset and only
        :meth:`set_high_watermark` moves it.
        """
        validate_topic_name(topic)
        parent = Path(log_dir)
        directory = parent / partition_dir_name(topic, partition)
        overrides = dict(config_overrides or {})
        config = PartitionLogConfig.from_overrides(overrides)
        created = False
        if directory.is_dir():
            stored = read_topic_id(directory)
            if stored is None:
                if topic_id is not None:
                    log.warning(
                        "partition_metadata_missing", directory=str(directory), topic_id=topic_id
                    )
                    write_topic_id(directory, topic_id)
            elif topic_id is not None and stored != topic_id:
                raise InconsistentTopicIdError(
                    f"{directory} holds topic id {stored}, not {topic_id}: it was left by a "
                    f"deleted topic named {topic!r}"
                )
            else:
                topic_id = stored
        else:
            if topic_id is None:
                raise ValueError(f"creating the log of {topic}-{partition} needs its topic id")
            directory.mkdir(parents=True)
            write_topic_id(directory, topic_id)
            fsync_dir(parent)
            created = True
        segmented = SegmentedLog.open(directory, config.log_config(), clock=clock or wall_clock_ms)
        if created:
            log.info("partition_log_created", directory=str(directory), topic_id=topic_id)
        return cls(
            TopicPartition(topic, partition),
            topic_id,
            segmented,
            overrides,
            config,
            fsync_every_batch=fsync_every_batch,
            hw_follows_log_end=hw_follows_log_end,
            clock=clock or wall_clock_ms,
        )

    # ================================================================== properties

    @property
    def topic(self) -> str:
        return self._tp.topic

    @property
    def partition(self) -> int:
        return self._tp.partition

    @property
    def topic_partition(self) -> TopicPartition:
        return self._tp

    @property
    def topic_id(self) -> str | None:
        """The id in ``partition.metadata`` (None only for a directory found without one)."""
        return self._topic_id

    @property
    def directory(self) -> Path:
        return self._log.directory

    @property
    def config(self) -> PartitionLogConfig:
        return self._config

    @property
    def config_overrides(self) -> Mapping[str, str]:
        return dict(self._overrides)

    @property
    def log_start_offset(self) -> int:
        return self._log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._log.log_end_offset

    @property
    def high_watermark(self) -> int:
        """Reads (and ListOffsets latest) stop here: offsets below it are committed."""
        return self._hw

    @property
    def earliest_offset(self) -> int:
        """ListOffsets EARLIEST: the log start offset."""
        return self._log.log_start_offset

    @property
    def latest_offset(self) -> int:
        """ListOffsets LATEST for consumers: the high watermark."""
        return self._hw

    @property
    def durable_offset(self) -> int:
        """Offsets below this are fsynced (as of the last flush)."""
        return self._log.recovery_point

    @property
    def size_bytes(self) -> int:
        return self._log.size_bytes

    @property
    def segment_count(self) -> int:
        return len(self._log.segment_base_offsets)

    @property
    def sync_appends(self) -> bool:
        """Whether every append must be fsynced before it is acknowledged (the broker's
        ``fsync_every_batch``, or the topic's ``flush.messages=1``)."""
        return self._fsync_every_batch or self._config.flush_messages <= 1

    # ================================================================== appending

    def append_as_leader(
        self, batches: Buffer, *, leader_epoch: int, now_ms: int, defer_flush: bool = False
    ) -> AppendResult:
        """Validates a producer's batches (all before anything is written: see
        :func:`~raftka.broker.log_validator.validate_produced_batches` for the errors), then
        appends them, assigning consecutive offsets and stamping ``leader_epoch``.

        LogAppendTime topics get ``now_ms`` as every batch's max timestamp. When
        :attr:`sync_appends`, the append is fsynced before this returns, unless
        ``defer_flush``: the caller then calls ``flush(up_to=result.last_offset + 1)``, which
        lets appends waiting on one fsync share it (group commit). The high watermark
        (when it follows the log end) covers fsynced appends only in that mode.
        """
        config = self._config
        append_time = now_ms if config.log_append_time else None
        validated = validate_produced_batches(
            batches, max_message_bytes=config.max_message_bytes, log_append_time_ms=append_time
        )
        info = self._call(
            lambda seg: seg.append(validated.data, assign_offsets=True, leader_epoch=leader_epoch)
        )
        next_offset = info.last_offset + 1
        if self.sync_appends:
            if not defer_flush:
                self.flush(up_to=next_offset)
        else:
            if self._hw_follows_log_end:
                self._advance_hw(next_offset)
            if next_offset - self._log.recovery_point >= config.flush_messages:
                self.flush()
        return AppendResult(
            base_offset=info.base_offset,
            last_offset=info.last_offset,
            log_append_time_ms=NO_TIMESTAMP if append_time is None else append_time,
            log_start_offset=self._log.log_start_offset,
        )

    def flush(self, up_to: int | None = None, *, checkpoint: bool = False) -> None:
        """fsyncs what was appended. With ``up_to``, returns at once if every offset below it
        is already durable; a call that finds another flush in progress waits for it first,
        so that concurrent callers share fsyncs (group commit). ``checkpoint`` also writes
        the recovery point (fewer segments to rescan after a crash)."""
        with self._flush_cond:
            while True:
                if up_to is not None and self._log.recovery_point >= up_to:
                    return
                if not self._flushing:
                    break
                self._flush_cond.wait()
            self._flushing = True
        try:
            self._call(lambda seg: seg.flush(checkpoint=checkpoint))
        finally:
            with self._flush_cond:
                if self._hw_follows_log_end:
                    self._advance_hw(self._log.recovery_point)
                self._flushing = False
                self._flush_cond.notify_all()

    # ================================================================== high watermark

    def set_high_watermark(self, offset: int) -> int:
        """Moves the high watermark forward to ``offset`` (capped at the log end offset);
        it never moves backwards. Returns the high watermark."""
        return self._advance_hw(min(offset, self._log.log_end_offset))

    def _advance_hw(self, offset: int) -> int:
        with self._hw_lock:
            if offset > self._hw:
                self._hw = offset
            return self._hw

    # ================================================================== reading

    def read(
        self,
        fetch_offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_batch: bool = True,
    ) -> FetchData:
        """Whole stored batches from the one holding ``fetch_offset``, up to ``max_bytes``
        (at least one batch, however large, if ``min_one_batch``), from one segment. No batch
        starting at or after ``max_offset`` (default: the high watermark) is returned.

        Empty records when ``fetch_offset`` is at or past that bound but not past the log
        end; OffsetOutOfRangeError (with the log start and end) when ``fetch_offset`` is
        below the log start or above the log end.
        """
        hw = self._hw
        bound = hw if max_offset is None else max_offset

        def attempt(seg: SegmentedLog) -> FetchData:
            start, end = seg.log_start_offset, seg.log_end_offset
            if not start <= fetch_offset <= end:
                raise OffsetOutOfRangeError(fetch_offset, start, end)
            if fetch_offset >= min(bound, end):
                return FetchData(b"", hw, start, end)
            result = seg.read(fetch_offset, max(max_bytes, 0))
            records = result.records
            if result.last_offset >= bound:
                records = _cut_before(records, bound)
            if not min_one_batch and len(records) > max_bytes:
                records = b""  # the first batch alone is larger than max_bytes
            return FetchData(records, hw, result.log_start_offset, result.log_end_offset)

        return self._call(attempt)

    def offset_for_timestamp(self, timestamp: int) -> TimestampOffset | None:
        """ListOffsets by timestamp: the first record below the high watermark whose
        timestamp is >= ``timestamp`` (found through the time index), or None."""
        hw = self._hw
        found = self._call(lambda seg: seg.offset_for_timestamp(timestamp))
        if found is None or found.offset >= hw:
            return None
        return found

    # ================================================================== retention, configs

    def apply_retention(self, now_ms: int) -> int:
        """Deletes whole old segments by ``retention.ms`` / ``retention.bytes`` and advances
        the log start offset; returns how many segments went. Delete policy only:
        ``cleanup.policy=compact`` is not implemented, so a compact-only topic's segments are
        left alone (see :mod:`raftka.broker.retention`)."""
        config = self._config
        hw = self._hw
        return self._call(
            lambda seg: apply_retention(seg, config, high_watermark=hw, now_ms=now_ms)
        )

    def update_configs(self, overrides: Mapping[str, str]) -> None:
        """Applies the topic's new config overrides. A change of ``segment.bytes``,
        ``segment.ms`` or ``index.interval.bytes`` reopens the segmented log (a clean close
        and open: no rescan); concurrent calls retry on the reopened log."""
        new = PartitionLogConfig.from_overrides(overrides)
        with self._swap_lock:
            self._check_open()
            old = self._config
            if new.log_config() != old.log_config():
                self._log.close()
                self._log = SegmentedLog.open(
                    self._log.directory, new.log_config(), clock=self._clock
                )
            self._overrides = dict(overrides)
            self._config = new
        if new != old:
            log.info(
                "partition_log_reconfigured",
                topic=self.topic,
                partition=self.partition,
                overrides=dict(overrides),
            )

    def assign_topic_id(self, topic_id: str) -> None:
        """Records the topic id of a directory found without one; raises
        InconsistentTopicIdError if a different id is already recorded."""
        with self._swap_lock:
            if self._topic_id == topic_id:
                return
            if self._topic_id is not None:
                raise InconsistentTopicIdError(
                    f"{self.directory} holds topic id {self._topic_id}, not {topic_id}"
                )
            write_topic_id(self.directory, topic_id)
            self._topic_id = topic_id

    # ================================================================== closing

    def close(self) -> None:
        """Flushes and closes the log (a clean shutdown: the next open does not rescan).
        Idempotent."""
        with self._swap_lock:
            if self._closed:
                return
            self._closed = True
            self._log.close()

    def delete(self) -> None:
        """Closes the log and removes its directory (renamed ``<dir>.<topic id>-delete``
        first, so that a crash part-way is cleaned up on the next start)."""
        self.close()
        directory = self.directory
        if directory.exists():
            remove_partition_dir(directory, self._topic_id)
        log.info(
            "partition_log_deleted",
            topic=self.topic,
            partition=self.partition,
            topic_id=self._topic_id,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"partition log {self._tp} is closed")

    def _call(self, action: Callable[[SegmentedLog], _T]) -> _T:
        """Runs ``action`` on the segmented log, again on the new one if it was reopened
        (by :meth:`update_configs`) meanwhile. Nothing is written by a call that fails with
        LogClosedError, so running it again is safe."""
        while True:
            current = self._log
            try:
                return action(current)
            except LogClosedError:
                with self._swap_lock:
                    if self._closed or self._log is current:
                        raise

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self._tp}, topic_id={self._topic_id!r}, "
            f"log_start_offset={self.log_start_offset}, log_end_offset={self.log_end_offset}, "
            f"high_watermark={self._hw})"
        )


def _cut_before(records: bytes, bound: int) -> bytes:
    """The batches of ``records`` up to (not including) the first one, after the first,
    whose base offset is >= ``bound``."""
    position, end = 0, len(records)
    while position < end:
        if position and read_base_offset(records, position) >= bound:
            return records[:position]
        position += read_batch_size(records, position)
    return records
