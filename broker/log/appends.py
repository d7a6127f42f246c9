"""The writes that add batches to a partition's log: a leader's append of a producer's batches,
a follower's append of its leader's batches, and a leader's end-transaction marker. Each keeps
the leader-epoch cache and the producer state (with its transaction indexes) in step with the
segmented log, under the partition's write lock.

What happens after the bytes are written (flushing, the high watermark) is the caller's:
:class:`~raftka.broker.log.partition_log.PartitionLog` delegates here and then finishes the
append.
"""

from __future__ import annotations

import threading

from raftka.broker.log.config import PartitionLogConfig
from raftka.broker.log.follower_append import check_follower_batches
from raftka.broker.log.leader_epoch_cache import UNDEFINED_EPOCH, LeaderEpochCache
from raftka.broker.log.types import NO_TIMESTAMP, AppendResult, StaleLeaderEpochError
from raftka.broker.log.validator import TimestampBounds, validate_produced_batches
from raftka.broker.producers.partition_state import PartitionProducerState
from raftka.common.ids import TopicPartition
from raftka.common.records import Buffer, InvalidRecordError, check_batches
from raftka.common.records.control import build_end_txn_marker
from raftka.common.storage import SegmentedLog
from raftka.common.storage.results import AppendInfo


class LogAppender:
    """The appends of one partition's log (see the methods of the same names on
    :class:`~raftka.broker.log.partition_log.PartitionLog`, which documents them)."""

    def __init__(
        self,
        topic_partition: TopicPartition,
        segmented_log: SegmentedLog,
        write_lock: threading.Lock,
        epoch_cache: LeaderEpochCache,
        producers: PartitionProducerState,
    ) -> None:
        self._tp = topic_partition
        self._log = segmented_log
        self._write_lock = write_lock
        self._epoch_cache = epoch_cache
        self._producers = producers

    def _result(self, info: AppendInfo, append_time: int | None) -> AppendResult:
        return AppendResult(
            base_offset=info.base_offset,
            last_offset=info.last_offset,
            log_append_time_ms=NO_TIMESTAMP if append_time is None else append_time,
            log_start_offset=self._log.log_start_offset,
        )

    def append_as_leader(
        self, batches: Buffer, config: PartitionLogConfig, *, leader_epoch: int, now_ms: int
    ) -> tuple[AppendResult, bool]:
        """Validates a producer's batches (all before anything is written: see
        :func:`~raftka.broker.log.validator.validate_produced_batches` for the errors), then
        appends them, assigning consecutive offsets and stamping ``leader_epoch``. The
        validator's CRC check is the only one: the checked batches go to the segmented log.
        LogAppendTime topics get ``now_ms`` as every batch's max timestamp; a topic whose
        ``compression.type`` names a codec gets every batch in that codec (recompressed if the
        producer used another: the only per-record work of the append, in C codecs).

        A ``leader_epoch`` newer than the cache's latest is recorded as starting at the log
        end offset (before the write, so the cache never lags the data); an older one raises
        StaleLeaderEpochError and writes nothing.

        Batches with a producer id are checked against the producer state atomically with the
        append (:mod:`raftka.broker.producers.state`: InvalidProducerEpochError,
        OutOfOrderSequenceError, DuplicateSequenceError, InvalidTxnStateError, nothing
        written); a retry of batches already written is not written again and gets their
        original offsets. A transactional batch opens its producer's transaction.

        Returns the append and whether it wrote anything (a retry does not)."""
        append_time = now_ms if config.log_append_time else None
        validated = validate_produced_batches(
            batches,
            max_message_bytes=config.max_message_bytes,
            log_append_time_ms=append_time,
            timestamps=TimestampBounds(
                now_ms, config.timestamp_before_max_ms, config.timestamp_after_max_ms
            ),
            where=str(self._tp),
            compression=config.compression,
        )
        producer_headers = validated.headers if validated.has_producer_ids else ()
        with self._write_lock:
            if leader_epoch >= 0:  # a negative epoch is stamped but not recorded (as before)
                self.assign_epoch(leader_epoch)
            if producer_headers:
                duplicate = self._producers.check_leader_append(producer_headers)
                if duplicate is not None:
                    result = AppendResult(
                        base_offset=duplicate.first_offset,
                        last_offset=duplicate.last_offset,
                        log_append_time_ms=NO_TIMESTAMP
                        if append_time is None
                        else duplicate.timestamp,
                        log_start_offset=self._log.log_start_offset,
                    )
                    return result, False
            info = self._log.append(
                validated.checked, assign_offsets=True, leader_epoch=leader_epoch
            )
            self._producers.on_leader_append(info, self._log, producer_headers, append_time)
        return self._result(info, append_time), True

    def append_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        coordinator_epoch: int,
        *,
        leader_epoch: int,
        now_ms: int,
    ) -> AppendResult:
        """Appends an end-transaction marker (COMMIT when ``committed``, else ABORT) under
        the write lock, stamped with ``leader_epoch`` as a leader's append is. It closes the
        producer's open transaction on this partition, if any (an ABORT adds it to the
        segment's ``.txnindex``), and sets the producer's epoch to ``producer_epoch`` (its
        sequences restart at 0) and its coordinator epoch. Raises InvalidProducerEpochError
        (``producer_epoch`` older than the producer's), TransactionCoordinatorFencedError
        (``coordinator_epoch`` older than its latest marker's) or StaleLeaderEpochError,
        having written nothing."""
        marker = build_end_txn_marker(
            producer_id, producer_epoch, committed, coordinator_epoch, timestamp=now_ms
        )
        with self._write_lock:
            if leader_epoch >= 0:
                self.assign_epoch(leader_epoch)
            self._producers.check_marker(producer_id, producer_epoch, coordinator_epoch)
            info = self._log.append(marker, assign_offsets=True, leader_epoch=leader_epoch)
            self._producers.on_marker_append(
                info, self._log, producer_id, producer_epoch, committed, coordinator_epoch
            )
        return self._result(info, None)

    def append_as_follower(self, batches: Buffer) -> AppendResult:
        """Appends the leader's batches as they are (offsets, partition leader epochs,
        timestamps), then records each newer epoch in the leader-epoch cache (O(batches)
        header reads, one checkpoint write when an epoch changed) and the batches' producers
        in the producer state (unchecked; markers close transactions and ABORTs go to the
        ``.txnindex`` as on the leader).

        Checked before anything is written: every batch is valid (CRC, length, magic: checked
        once here, the segmented log takes the checked batches), and
        :func:`~raftka.broker.log.follower_append.check_follower_batches` (the first batch
        starts at the log end offset; partition leader epochs present and never going
        backwards: DivergentAppendError means truncate first)."""
        checked = check_batches(batches)
        spans = checked.spans
        if not spans:
            raise InvalidRecordError("append needs at least one record batch, got 0 bytes")
        with self._write_lock:
            end = self._log.log_end_offset
            new_epochs = check_follower_batches(spans, self._tp, end, self.last_batch_epoch(end))
            info = self._log.append(checked, assign_offsets=False)
            cache = self._epoch_cache
            # Entries at the old log end have no records: epochs this replica assigned as a
            # leader before writing anything. The leader's batches replace them.
            cache.truncate_from_end(info.base_offset, flush=False)
            for epoch, base in new_epochs:
                cache.assign(epoch, base, flush=False)
            cache.flush(durable=False)  # rebuilt from the batches if lost (cache.load)
            self._producers.on_follower_append(info, self._log, checked)
        return self._result(info, None)

    def last_batch_epoch(self, end: int) -> int:
        """The leader epoch of the batch before ``end`` (-1 when the log holds none)."""
        if end <= self._log.log_start_offset:
            return UNDEFINED_EPOCH
        return self._epoch_cache.epoch_for_offset(end - 1)

    def start_leader_epoch(self, epoch: int) -> int:
        """Records ``epoch`` as starting at the log end unless it is the latest already, and
        returns its start offset (see PartitionLog.start_leader_epoch)."""
        if epoch < 0:
            raise ValueError(f"invalid leader epoch {epoch}")
        with self._write_lock:
            self.assign_epoch(epoch, defer_if_empty=True)
            entry = self._epoch_cache.latest_entry
        assert entry is not None and entry.epoch == epoch
        return entry.start_offset

    def assign_epoch(self, epoch: int, *, defer_if_empty: bool = False) -> None:
        """Records ``epoch`` as starting at the log end if it is newer than the cache's
        latest; StaleLeaderEpochError if older. Called under the write lock.

        ``defer_if_empty``: on an empty log the checkpoint is not written yet (the next
        append writes it): an entry lost meanwhile is assigned again by the next leadership
        or rebuilt from the batches written under it, so a broker taking thousands of new,
        empty leaderships at once writes no checkpoint for them."""
        cache = self._epoch_cache
        latest = cache.latest_epoch
        if epoch < latest:
            raise StaleLeaderEpochError(
                f"leader epoch {epoch} is older than the latest leader epoch {latest} of "
                f"{self._tp}; nothing was written"
            )
        end = self._log.log_end_offset
        if epoch > latest:
            cache.assign(epoch, end, flush=False)
        if not (defer_if_empty and end == self._log.log_start_offset):
            cache.flush()  # writes only what changed (an entry deferred earlier too)
