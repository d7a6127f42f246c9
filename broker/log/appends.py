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
        """The append and whether it wrote anything (a retry of batches already written
        does not)."""
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
            cache.flush()
            self._producers.on_follower_append(info, self._log, checked)
        return self._result(info, None)

    def last_batch_epoch(self, end: int) -> int:
        """The leader epoch of the batch before ``end`` (-1 when the log holds none)."""
        if end <= self._log.log_start_offset:
            return UNDEFINED_EPOCH
        return self._epoch_cache.epoch_for_offset(end - 1)

    def assign_epoch(self, epoch: int) -> None:
        """Records ``epoch`` as starting at the log end if it is newer than the cache's
        latest; StaleLeaderEpochError if older. Called under the write lock."""
        cache = self._epoch_cache
        latest = cache.latest_epoch
        if epoch < latest:
            raise StaleLeaderEpochError(
                f"leader epoch {epoch} is older than the latest leader epoch {latest} of "
                f"{self._tp}; nothing was written"
            )
        if epoch > latest:
            cache.assign(epoch, self._log.log_end_offset)
