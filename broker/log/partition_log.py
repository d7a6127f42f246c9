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
The appends (:mod:`raftka.broker.log.appends`), the read path (:mod:`raftka.broker.log.reads`),
the truncations (:mod:`raftka.broker.log.truncation`), retention's choices
(:mod:`raftka.broker.log.retention`) and the known damage (:mod:`raftka.broker.log.damage`)
live in their own modules; this class holds the write lock and the companions.

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
    InconsistentTopicIdError,
    prepare_partition_dir,
    remove_partition_dir,
    write_topic_id,
)
from raftka.broker.log.flusher import GroupFlusher
from raftka.broker.log.high_watermark import HighWatermark
from raftka.broker.log.leader_epoch_cache import LeaderEpochCache
from raftka.broker.log.reads import ReadBounds, collect_aborted, read_batches, stable_offset
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

LIGHT_BYTES = 64 * 1024
"""Appends and tail reads up to this size are page-cache work: cheaper on the event loop
than the hop to an I/O thread and back (see :meth:`PartitionLog.append_is_light`)."""


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
        self._topic_id = topic_id
        self._log = segmented_log
        self._overrides = dict(config_overrides)
        self._config = config
        self._fsync_every_batch = fsync_every_batch
        self._write_lock = threading.Lock()  # one append, truncation or log-start change
        self._closed = False
        self._last_append: tuple[int, int, int] = (-1, -1, 0)
        """The last producer or follower append: (base offset, end offset, bytes), for
        :meth:`tail_is_small`."""
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
        self._flusher = GroupFlusher(segmented_log, self._hw)
        self._damage = DamageTracker(topic_partition)
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
        """Whether every append must be fsynced before it is acknowledged (the broker's
        ``fsync_every_batch``, or the topic's ``flush.messages=1``)."""
        return self._fsync_every_batch or self._config.flush_messages <= 1

    def append_is_light(self, nbytes: int) -> bool:
        """Whether an append of ``nbytes`` does no blocking disk work worth an I/O-thread
        hop: small (at most LIGHT_BYTES), not fsynced per write (:attr:`sync_appends`), not
        due for a periodic flush, and not held up by a truncation or compaction. Such an append is a page-cache write (a segment roll,
        once per segment, also creates files); the broker runs it on its event loop."""
        return (
            nbytes <= LIGHT_BYTES
            and not self.sync_appends
            # at most nbytes records: no flush.messages flush can fall due
            and self._log.log_end_offset - self._log.recovery_point + nbytes
            < self._config.flush_messages
            and not self._write_lock.locked()  # a truncation or compaction would block the loop
        )

    def tail_is_small(self, offset: int) -> bool:
        """Whether reading from ``offset`` to the log end reads at most LIGHT_BYTES, known
        without touching the disk: at the log end, or when ``offset`` starts the last append
        and nothing came after it (a caught-up follower one append behind, the common case
        at low rates). Such a read comes from the page cache; the broker runs it inline."""
        end = self._log.log_end_offset
        if offset >= end:
            return True
        base, last_end, nbytes = self._last_append
        return offset == base and last_end == end and nbytes <= LIGHT_BYTES

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
        """The first offset of the oldest transaction open, or completed with its marker not
        yet below the high watermark (at least the log start offset), or None."""
        first = self._producers.table.first_unstable_offset
        return None if first is None else max(first, self._log.log_start_offset)

    @property
    def last_stable_offset(self) -> int:
        """The LSO: the high watermark, or the first unstable offset when that is below it
        (read first: a transaction is released once the high watermark passed its marker).
        read_committed consumers read below it."""
        first_unstable = self.first_unstable_offset
        return stable_offset(self._hw.value, first_unstable)

    def aborted_transactions(self, start: int, end: int) -> list[AbortedTxn]:
        """The aborted transactions with data in [``start``, ``end``) (``.txnindex`` entries
        with marker >= ``start``, first offset < ``end``): a read_committed fetch's list."""
        return collect_aborted(self._log.txn_indexes(), start, end)

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
            batches, self._config, leader_epoch=leader_epoch, now_ms=now_ms
        )
        if wrote:
            self._last_append = (
                result.base_offset,
                result.last_offset + 1,
                memoryview(batches).nbytes,
            )
            self._after_append(result.last_offset + 1, defer_flush=defer_flush)
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
        self._after_append(result.last_offset + 1, defer_flush=defer_flush)
        return result

    def append_as_follower(self, batches: Buffer, *, defer_flush: bool = False) -> AppendResult:
        """Appends batches fetched from the leader exactly as they are (see
        :meth:`LogAppender.append_as_follower <raftka.broker.log.appends.LogAppender.
        append_as_follower>`). Flushing works as in :meth:`append_as_leader`; the follower's
        high watermark is the caller's to set (:meth:`set_high_watermark` with the leader's).
        """
        result = self._appender.append_as_follower(batches)
        self._last_append = (result.base_offset, result.last_offset + 1, memoryview(batches).nbytes)
        self._after_append(result.last_offset + 1, defer_flush=defer_flush)
        return result

    def _after_append(self, next_offset: int, *, defer_flush: bool) -> None:
        if self.sync_appends:
            if not defer_flush:
                self.flush(up_to=next_offset)
        else:
            self._hw.on_log_end(next_offset)
            if next_offset - self._log.recovery_point >= self._config.flush_messages:
                self.flush()

    def flush(self, up_to: int | None = None, *, checkpoint: bool = False) -> None:
        """fsyncs what was appended, sharing fsyncs among concurrent callers (group commit: see
        :meth:`GroupFlusher.flush <raftka.broker.log.flusher.GroupFlusher.flush>`)."""
        self._flusher.flush(up_to, checkpoint=checkpoint)

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
        """A follower's divergence truncation: removes every batch holding an offset >=
        ``offset`` (a batch straddling it goes whole) and the cache entries from the new log
        end on; returns the new log end offset. Nothing happens when ``offset`` >= the log
        end offset.

        Refused (TruncationBelowHighWatermarkError, naming the offset and the high
        watermark; nothing changes) if the new log end would be below the high watermark,
        unless ``allow_below_high_watermark`` (a replica rejoining after an unclean leader
        election): the high watermark then drops to the new log end and is checkpointed.
        """
        end = self._truncator.truncate_to(
            offset, allow_below_high_watermark=allow_below_high_watermark
        )
        self._after_truncation()
        return end

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Empties the log and restarts it at ``offset`` (a follower whose log ends below the
        leader's log start offset): every segment and cache entry goes, and the high
        watermark moves to ``offset``. Refused (TruncationBelowHighWatermarkError) when
        ``offset`` is below the high watermark."""
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
        """Moves the log start offset up to ``offset`` and deletes the segments wholly below
        it (retention's decision: :mod:`raftka.broker.log.retention`), dropping the
        leader-epoch entries and producer snapshots below it; returns the segments deleted.
        Never past the high watermark or the log end: such an ``offset`` (the log changed
        since it was chosen) changes nothing, as does one at or below the log start."""
        with self._write_lock:
            if offset <= self._log.log_start_offset or offset > min(
                self._hw.value, self._log.log_end_offset
            ):
                return 0
            deleted = self._log.delete_before(offset, reason=reason)
            self._epoch_cache.truncate_from_start(self._log.log_start_offset)
            self._producers.on_log_start_advanced(self._log)
        return deleted

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
        """Whole stored batches from the one holding ``fetch_offset``, up to ``max_bytes``
        (at least one batch, however large, if ``min_one_batch``), from one segment. No batch
        starting at or after ``max_offset`` (default: the high watermark) is returned, nor,
        when ``read_committed``, at or after the last stable offset; such a read also lists
        the aborted transactions with data in the returned batches (``FetchData.aborted``).
        With ``zero_copy`` the batches come as a region of their segment file
        (``FetchData.region``, verified from the page cache, for ``sendfile``).

        Empty records when ``fetch_offset`` is at or past that bound but not past the log
        end; LogOffsetOutOfRangeError (with the log start and end) when ``fetch_offset`` is
        below the log start or above the log end.
        """
        first_unstable = self.first_unstable_offset  # first: see last_stable_offset
        hw = self._hw.value
        bounds = ReadBounds(hw, stable_offset(hw, first_unstable), read_committed)
        return read_batches(
            self._log,
            self._damage,
            self._tp,
            bounds,
            fetch_offset,
            max_bytes,
            max_offset=max_offset,
            min_one_batch=min_one_batch,
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
        """Records damage found by ``source`` (``read``, ``scrub``, ``open``); returns
        whether it is new (no damage was known at or below its offset). Logged as
        ``log_damage_found``."""
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
        """Repairs a follower: removes the damaged batch and everything after it (the
        segment is cut at the damage's byte position, so no damaged header is trusted),
        even below the high watermark (which drops to the new log end: the records are
        fetched again from the leader), and clears the damage. Returns the new log end."""
        end = self._truncator.truncate_damage()
        self._after_truncation()
        return end

    def offset_for_timestamp(self, timestamp: int) -> TimestampOffset | None:
        """ListOffsets by timestamp: the first record below the high watermark whose
        timestamp is >= ``timestamp`` (found through the time index), or None."""
        hw = self._hw.value
        found = self._log.offset_for_timestamp(timestamp)
        if found is None or found.offset >= hw:
            return None
        return found

    # ================================================================== configs, topic id

    def update_configs(self, overrides: Mapping[str, str]) -> None:
        """Applies the topic's new config overrides by swapping the config object (as Kafka
        does): the segmented log takes its part (segment size and age, index interval) from
        its next append on, without being reopened."""
        new = PartitionLogConfig.from_overrides(overrides)
        with self._write_lock:
            old = self._config
            if new.log_config() != old.log_config():
                self._log.update_config(new.log_config())
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
        with self._write_lock:
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

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self._tp}, topic_id={self._topic_id!r}, "
            f"log_start_offset={self.log_start_offset}, log_end_offset={self.log_end_offset}, "
            f"high_watermark={self._hw.value})"
        )
