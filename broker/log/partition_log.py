"""One partition's log on a broker: appends, bounded reads, truncation, the flush policy,
transactions' stable offset, configs and the partition directory.

A thin layer over :class:`~raftka.common.storage.SegmentedLog` (segments, indexes, recovery,
the bytes on disk) adding what a partition needs: the topic's configs
(:mod:`raftka.broker.log.config`, swapped in place when they change), the producer state
with its snapshots and transactions (:mod:`raftka.broker.producers.partition_state`), the
flush policy with group commit, and the ``partition.metadata`` topic id. Two companions follow
every append, truncation and log-start change: the high watermark that bounds reads
(:mod:`raftka.broker.log.high_watermark`) and the leader-epoch cache
(:mod:`raftka.broker.log.leader_epoch_cache`, KIP-101/KIP-279; callers query it directly).
The appends (:mod:`raftka.broker.log.appends`), the flush policy
(:mod:`raftka.broker.log.flush_policy`), the read path and transactions' bounds
(:mod:`raftka.broker.log.reads`), the truncations and log-start changes
(:mod:`raftka.broker.log.truncation`), retention's choices (:mod:`raftka.broker.log.retention`)
and the known damage (:mod:`raftka.broker.log.damage`) live in their own modules; this class
holds the write lock and the companions.

Methods are synchronous and block on file I/O: asyncio callers run them on I/O threads.
They are thread-safe: the writes of a partition (appends, truncations, log-start changes) take
one lock, so a leader's producer-state check and its append are atomic; each write is
all-or-nothing, but their order is the caller's to decide. Per batch the Python work is
O(1): no record is decoded (but a marker's), and each batch's CRC is computed once per append.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import structlog

from raftka.broker.log.appends import LogAppender
from raftka.broker.log.compaction import PartitionCompactor
from raftka.broker.log.config import PartitionLogConfig
from raftka.broker.log.damage import DamageTracker
from raftka.broker.log.dirs import (
    prepare_partition_dir,
    remove_partition_dir,
)
from raftka.broker.log.flush_policy import FlushPolicy
from raftka.broker.log.high_watermark import HighWatermark
from raftka.broker.log.leader_epoch_cache import LeaderEpochCache
from raftka.broker.log.reads import PartitionReader
from raftka.broker.log.settings import PartitionSettings
from raftka.broker.log.truncation import LogTruncator
from raftka.broker.log.types import AppendResult, FetchData
from raftka.broker.producers.partition_state import PartitionProducerState
from raftka.broker.producers.state import ProducerStateTable
from raftka.common.clock import Clock, wall_clock_ms
from raftka.common.ids import TopicPartition
from raftka.common.metadata.topic_names import validate_topic_name
from raftka.common.records import Buffer
from raftka.common.storage import (
    SegmentedLog,
    SegmentInfo,
    TimestampOffset,
)
from raftka.common.storage.results import DamageReport, ScrubProgress
from raftka.common.storage.txn_index import AbortedTxn

log = structlog.get_logger(__name__)


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
    ) -> None:
        """Use :meth:`open`."""
        self._tp = topic_partition
        self._log = segmented_log
        self._write_lock = threading.Lock()  # one append, truncation or log-start change
        self._settings = PartitionSettings(
            topic_partition, segmented_log, self._write_lock, topic_id, config_overrides, config
        )
        self._closed = False
        self._epoch_cache = LeaderEpochCache.load(segmented_log.directory, segmented_log)
        self._hw = HighWatermark.open(
            segmented_log.directory,
            log_start=segmented_log.log_start_offset,
            log_end=segmented_log.log_end_offset,
            follows_log_end=hw_follows_log_end,
        )
        self._producers = PartitionProducerState.load(
            segmented_log.directory, segmented_log, self._hw.value
        )
        self._hw.listen(lambda hw: self._producers.table.on_high_watermark(hw))
        self._flush_policy = FlushPolicy(
            segmented_log,
            self._hw,
            self._write_lock,
            lambda: self._settings.config,
            fsync_every_batch=fsync_every_batch,
        )
        self._damage = DamageTracker(topic_partition)
        self._reader = PartitionReader(
            topic_partition, segmented_log, self._hw, self._producers, self._damage
        )
        self._truncator = LogTruncator(
            topic_partition,
            segmented_log,
            self._write_lock,
            self._hw,
            self._epoch_cache,
            self._producers,
            self._damage,
        )
        self._appender = LogAppender(
            topic_partition,
            segmented_log,
            self._write_lock,
            self._epoch_cache,
            self._producers,
        )
        self._compactor = PartitionCompactor(
            topic_partition, segmented_log, self._write_lock, self._producers
        )
        found = segmented_log.damage_found_on_open
        if found is not None:
            self.mark_damaged(found, source="open")

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
        """Opens (recovering it if needed) or creates the partition's directory in ``log_dir``
        (creating writes ``topic_id`` to ``partition.metadata`` first). A directory with
        another stored topic id raises InconsistentTopicIdError (a deleted topic of the same
        name); one without adopts ``topic_id``. ``config_overrides``: the topic's overrides.

        ``hw_follows_log_end`` (until replication drives the high watermark): the high
        watermark starts at the log end offset and follows every append (every flush, when
        appends are fsynced); otherwise it starts where ``high-watermark-checkpoint`` left it
        (see :class:`~raftka.broker.log.high_watermark.HighWatermark`) and only
        :meth:`set_high_watermark` moves it. The leader-epoch cache is read from
        ``leader-epoch-checkpoint``, or rebuilt from the batch headers when missing or stale.
        """
        validate_topic_name(topic)
        overrides = dict(config_overrides or {})
        config = PartitionLogConfig.from_overrides(overrides)
        directory, topic_id, created = prepare_partition_dir(
            Path(log_dir), topic, partition, topic_id
        )
        segmented = SegmentedLog.open(directory, config.log_config(), clock=clock or wall_clock_ms)
        if created:
            log.debug("partition_log_created", directory=str(directory), topic_id=topic_id)
        return cls(
            TopicPartition(topic, partition),
            topic_id,
            segmented,
            overrides,
            config,
            fsync_every_batch=fsync_every_batch,
            hw_follows_log_end=hw_follows_log_end,
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
        return self._settings.topic_id

    @property
    def directory(self) -> Path:
        return self._log.directory

    @property
    def config(self) -> PartitionLogConfig:
        return self._settings.config

    @property
    def config_overrides(self) -> Mapping[str, str]:
        return dict(self._settings.overrides)

    @property
    def log_start_offset(self) -> int:
        return self._log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._log.log_end_offset

    @property
    def high_watermark(self) -> int:
        """Reads (and ListOffsets latest) stop here: offsets below it are committed."""
        return self._hw.value

    @property
    def earliest_offset(self) -> int:
        """ListOffsets EARLIEST: the log start offset."""
        return self._log.log_start_offset

    @property
    def latest_offset(self) -> int:
        """ListOffsets LATEST for consumers: the high watermark."""
        return self._hw.value

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

    def segments(self) -> tuple[SegmentInfo, ...]:
        """Every segment's base offset, size and largest timestamp (for retention)."""
        return self._log.segments()

    @property
    def sync_appends(self) -> bool:
        """See :attr:`FlushPolicy.sync_appends
        <raftka.broker.log.flush_policy.FlushPolicy.sync_appends>`."""
        return self._flush_policy.sync_appends

    def append_is_light(self, nbytes: int) -> bool:
        """See :meth:`FlushPolicy.append_is_light
        <raftka.broker.log.flush_policy.FlushPolicy.append_is_light>`."""
        return self._flush_policy.append_is_light(nbytes)

    def tail_is_small(self, offset: int) -> bool:
        """See :meth:`FlushPolicy.tail_is_small
        <raftka.broker.log.flush_policy.FlushPolicy.tail_is_small>`."""
        return self._flush_policy.tail_is_small(offset)

    @property
    def producer_state(self) -> ProducerStateTable:
        """The idempotent producers' state (read-only: PartitionLog keeps it in step)."""
        return self._producers.table

    @property
    def leader_epoch_cache(self) -> LeaderEpochCache:
        """The partition's leader-epoch cache, for OffsetForLeaderEpoch, the divergence check
        (:func:`~raftka.broker.log.divergence.check_divergence`) and the follower's truncation
        target (:func:`~raftka.broker.log.leader_epoch_cache.follower_truncation_target`).
        Read it; PartitionLog alone changes it, in step with the log."""
        return self._epoch_cache

    @property
    def last_fetched_epoch(self) -> int:
        """The leader epoch of the log's last batch (-1 when the log holds none): a
        follower's LastFetchedEpoch."""
        return self._appender.last_batch_epoch(self._log.log_end_offset)

    # ================================================================== transactions

    @property
    def first_unstable_offset(self) -> int | None:
        """See :attr:`PartitionReader.first_unstable_offset
        <raftka.broker.log.reads.PartitionReader.first_unstable_offset>`."""
        return self._reader.first_unstable_offset

    @property
    def last_stable_offset(self) -> int:
        """See :attr:`PartitionReader.last_stable_offset
        <raftka.broker.log.reads.PartitionReader.last_stable_offset>`."""
        return self._reader.last_stable_offset

    def aborted_transactions(self, start: int, end: int) -> list[AbortedTxn]:
        """See :meth:`PartitionReader.aborted_transactions
        <raftka.broker.log.reads.PartitionReader.aborted_transactions>`."""
        return self._reader.aborted_transactions(start, end)

    # ================================================================== appending

    def append_as_leader(
        self, batches: Buffer, *, leader_epoch: int, now_ms: int, defer_flush: bool = False
    ) -> AppendResult:
        """Validates a producer's batches and appends them with consecutive offsets, stamping
        ``leader_epoch``, checked against the producer state atomically with the write (see
        :meth:`LogAppender.append_as_leader <raftka.broker.log.appends.LogAppender.
        append_as_leader>` for the rules and errors; a retry of batches already written gets
        their original offsets and writes nothing).

        When :attr:`sync_appends`, the append is fsynced before this returns, unless
        ``defer_flush``: the caller then calls ``flush(up_to=result.last_offset + 1)``, which
        lets appends waiting on one fsync share it (group commit). The high watermark
        (when it follows the log end) covers fsynced appends only in that mode.
        """
        result, wrote = self._appender.append_as_leader(
            batches, self._settings.config, leader_epoch=leader_epoch, now_ms=now_ms
        )
        if wrote:
            self._flush_policy.record_append(
                result.base_offset, result.last_offset + 1, memoryview(batches).nbytes
            )
            self._flush_policy.after_append(result.last_offset + 1, defer_flush=defer_flush)
        return result

    def append_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        coordinator_epoch: int,
        *,
        leader_epoch: int,
        now_ms: int,
        defer_flush: bool = False,
    ) -> AppendResult:
        """Appends an end-transaction marker (COMMIT when ``committed``, else ABORT) for
        ``producer_id`` as its leader (see :meth:`LogAppender.append_marker
        <raftka.broker.log.appends.LogAppender.append_marker>`), flushing as
        :meth:`append_as_leader` does."""
        result = self._appender.append_marker(
            producer_id,
            producer_epoch,
            committed,
            coordinator_epoch,
            leader_epoch=leader_epoch,
            now_ms=now_ms,
        )
        self._flush_policy.after_append(result.last_offset + 1, defer_flush=defer_flush)
        return result

    def append_as_follower(self, batches: Buffer, *, defer_flush: bool = False) -> AppendResult:
        """Appends batches fetched from the leader exactly as they are (see
        :meth:`LogAppender.append_as_follower <raftka.broker.log.appends.LogAppender.
        append_as_follower>`). Flushing works as in :meth:`append_as_leader`; the follower's
        high watermark is the caller's to set (:meth:`set_high_watermark` with the leader's).
        """
        result = self._appender.append_as_follower(batches)
        self._flush_policy.record_append(
            result.base_offset, result.last_offset + 1, memoryview(batches).nbytes
        )
        self._flush_policy.after_append(result.last_offset + 1, defer_flush=defer_flush)
        return result

    def flush(self, up_to: int | None = None, *, checkpoint: bool = False) -> None:
        """See :meth:`FlushPolicy.flush <raftka.broker.log.flush_policy.FlushPolicy.flush>`."""
        self._flush_policy.flush(up_to, checkpoint=checkpoint)

    # ================================================================== leader epochs

    def start_leader_epoch(self, epoch: int) -> int:
        """This replica becomes leader in ``epoch``: records (``epoch``, log end offset) in
        the leader-epoch cache unless ``epoch`` is already the latest, and returns the epoch's
        start offset. StaleLeaderEpochError if the log already knows a newer epoch."""
        return self._appender.start_leader_epoch(epoch)

    # ================================================================== high watermark

    def set_high_watermark(self, offset: int) -> int:
        """Moves the high watermark forward to ``offset`` (capped at the log end offset);
        it never moves backwards. Returns the high watermark."""
        with self._hw.frozen() as hw:  # a truncation cannot lower the log end meanwhile
            return hw.advance(min(offset, self._log.log_end_offset))

    def checkpoint_high_watermark(self) -> int:
        """Writes the high watermark to ``high-watermark-checkpoint`` (skipped when the file
        already holds it) and returns it. Called periodically by the replica manager, and
        by :meth:`close` when replication drives the high watermark."""
        return self._hw.checkpoint()

    # ================================================================== truncation

    def truncate_to(self, offset: int, *, allow_below_high_watermark: bool = False) -> int:
        """See :meth:`LogTruncator.truncate_to
        <raftka.broker.log.truncation.LogTruncator.truncate_to>`."""
        end = self._truncator.truncate_to(
            offset, allow_below_high_watermark=allow_below_high_watermark
        )
        self._after_truncation()
        return end

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """See :meth:`LogTruncator.truncate_fully_and_start_at
        <raftka.broker.log.truncation.LogTruncator.truncate_fully_and_start_at>`."""
        self._truncator.truncate_fully_and_start_at(offset)
        self._after_truncation()

    def _after_truncation(self) -> None:
        with self._write_lock:
            self._compactor.after_truncation()

    @property
    def compactor(self) -> PartitionCompactor:
        """The partition's cleaner checkpoint and cleaning passes (log compaction, run by
        :mod:`raftka.broker.log.cleaner` on its own thread)."""
        return self._compactor

    def advance_log_start(self, offset: int, *, reason: str) -> int:
        """See :meth:`LogTruncator.advance_log_start
        <raftka.broker.log.truncation.LogTruncator.advance_log_start>`."""
        return self._truncator.advance_log_start(offset, reason=reason)

    def remove_deleted_segments(self, now_ms: int) -> int:
        """Removes the files of segments deleted at least ``file.delete.delay.ms`` before
        ``now_ms`` (renamed ``*.deleted`` until then, for reads holding one); returns how many."""
        return self._log.remove_deleted_segments(now_ms)

    # ================================================================== reading

    def read(
        self,
        fetch_offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_batch: bool = True,
        read_committed: bool = False,
        zero_copy: bool = False,
    ) -> FetchData:
        """See :meth:`PartitionReader.read <raftka.broker.log.reads.PartitionReader.read>`."""
        return self._reader.read(
            fetch_offset,
            max_bytes,
            max_offset=max_offset,
            min_one_batch=min_one_batch,
            read_committed=read_committed,
            zero_copy=zero_copy,
        )

    # ================================================================== damage

    @property
    def damage(self) -> DamageReport | None:
        """The lowest damage known in this replica's log (found by a read, the scrubber, or
        on open), or None. Reads at or past its offset raise DamagedLogError; reads below it
        stop before it. Cleared when a truncation removes it (:meth:`truncate_damage`)."""
        return self._damage.report

    def mark_damaged(self, report: DamageReport, *, source: str) -> bool:
        """See :meth:`DamageTracker.mark <raftka.broker.log.damage.DamageTracker.mark>`."""
        return self._damage.mark(report, source=source)

    def scrub(
        self, base_offset: int, position: int, next_offset: int, max_bytes: int, generation: int
    ) -> ScrubProgress:
        """One bounded step of a verification pass over a segment (see
        :meth:`SegmentedLog.scrub <raftka.common.storage.SegmentedLog.scrub>`)."""
        return self._log.scrub(base_offset, position, next_offset, max_bytes, generation)

    @property
    def segment_base_offsets(self) -> tuple[int, ...]:
        return self._log.segment_base_offsets

    @property
    def generation(self) -> int:
        """Changes whenever segments are truncated or removed."""
        return self._log.generation

    def truncate_damage(self) -> int:
        """See :meth:`LogTruncator.truncate_damage
        <raftka.broker.log.truncation.LogTruncator.truncate_damage>`."""
        end = self._truncator.truncate_damage()
        self._after_truncation()
        return end

    def offset_for_timestamp(self, timestamp: int) -> TimestampOffset | None:
        """See :meth:`PartitionReader.offset_for_timestamp
        <raftka.broker.log.reads.PartitionReader.offset_for_timestamp>`."""
        return self._reader.offset_for_timestamp(timestamp)

    # ================================================================== configs, topic id

    def update_configs(self, overrides: Mapping[str, str]) -> None:
        """See :meth:`PartitionSettings.update_configs
        <raftka.broker.log.settings.PartitionSettings.update_configs>`."""
        self._settings.update_configs(overrides)

    def assign_topic_id(self, topic_id: str) -> None:
        """See :meth:`PartitionSettings.assign_topic_id
        <raftka.broker.log.settings.PartitionSettings.assign_topic_id>`."""
        self._settings.assign_topic_id(topic_id)

    # ================================================================== closing

    def close(self) -> None:
        """Flushes and closes the log (a clean shutdown: the next open does not rescan), and
        snapshots the producer state and checkpoints the high watermark when replication
        drives it (so neither is rebuilt on the next open). Idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._producers.on_close(self._log)
                self._hw.on_close()
            finally:
                self._log.close()

    def delete(self) -> None:
        """Closes the log and removes its directory (renamed ``<dir>.<topic id>-delete``
        first, so that a crash part-way is cleaned up on the next start)."""
        self.close()
        directory = self.directory
        if directory.exists():
            remove_partition_dir(directory, self._settings.topic_id)
        log.info(
            "partition_log_deleted",
            topic=self.topic,
            partition=self.partition,
            topic_id=self._settings.topic_id,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self._tp}, topic_id={self._settings.topic_id!r}, "
            f"log_start_offset={self.log_start_offset}, log_end_offset={self.log_end_offset}, "
            f"high_watermark={self._hw.value})"
        )
