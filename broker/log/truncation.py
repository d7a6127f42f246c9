"""Cutting a partition's log back at its end (a follower's divergence truncation, a restart
at a new offset, the repair of damage) and at its start (retention's log-start advance), each
keeping the producer state, the leader-epoch cache, the high watermark and the known damage
in step with the segmented log.

Each cut holds the partition's write lock and freezes the high watermark, in that order,
as every write of :class:`~raftka.broker.log.partition_log.PartitionLog` does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from raftka.broker.log.damage import DamageTracker
from raftka.broker.log.high_watermark import HighWatermark
from raftka.broker.log.leader_epoch_cache import LeaderEpochCache
from raftka.broker.log.types import TruncationBelowHighWatermarkError
from raftka.broker.producers.partition_state import PartitionProducerState
from raftka.common.ids import TopicPartition
from raftka.common.storage import SegmentedLog

log = structlog.get_logger(__name__)


class LogTruncator:
    """The truncations and log-start changes of one partition's log
    (:class:`~raftka.broker.log.partition_log.PartitionLog` delegates to them)."""

    def __init__(
        self,
        topic_partition: TopicPartition,
        segmented_log: SegmentedLog,
        write_lock: threading.Lock,
        high_watermark: HighWatermark,
        epoch_cache: LeaderEpochCache,
        producers: PartitionProducerState,
        damage: DamageTracker,
    ) -> None:
        self._tp = topic_partition
        self._log = segmented_log
        self._write_lock = write_lock
        self._hw = high_watermark
        self._epoch_cache = epoch_cache
        self._producers = producers
        self._damage = damage

    def truncate_to(self, offset: int, *, allow_below_high_watermark: bool) -> int:
        """A follower's divergence truncation: removes every batch holding an offset >=
        ``offset`` (a batch straddling it goes whole) and the cache entries from the new log
        end on; returns the new log end offset. Nothing happens when ``offset`` >= the log
        end offset.

        Refused (TruncationBelowHighWatermarkError, naming the offset and the high
        watermark; nothing changes) if the new log end would be below the high watermark,
        unless ``allow_below_high_watermark`` (a replica rejoining after an unclean leader
        election): the high watermark then drops to the new log end and is checkpointed.
        """
        if offset < 0:
            raise ValueError(f"cannot truncate to negative offset {offset}")
        with self._write_lock, self._hw.frozen() as high_watermark:
            start, end = self._log.log_start_offset, self._log.log_end_offset
            if offset >= end:
                return end
            new_end = offset if offset <= start else self._log.batch_header_at(offset).base_offset
            hw = high_watermark.value
            if new_end < hw and not allow_below_high_watermark:
                raise TruncationBelowHighWatermarkError(
                    offset,
                    hw,
                    new_end,
                    message=(
                        f"{self._tp}: truncating to offset {offset} would end the log at "
                        f"{new_end}, below the high watermark {hw}: committed records would be "
                        "lost; nothing was truncated"
                    ),
                )
            new_end, lowered = self._cut_end(
                high_watermark, new_end, lambda: self._log.truncate_to(offset)
            )
        if lowered:
            log.warning(
                "high_watermark_lowered_by_truncation",
                topic=self._tp.topic,
                partition=self._tp.partition,
                previous_high_watermark=hw,
                high_watermark=new_end,
            )
        log.info(
            "partition_log_truncated",
            topic=self._tp.topic,
            partition=self._tp.partition,
            requested_offset=offset,
            log_end_offset=new_end,
            previous_log_end_offset=end,
        )
        return new_end

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Empties the log and restarts it at ``offset`` (a follower whose log ends below the
        leader's log start offset): every segment and cache entry goes, and the high
        watermark moves to ``offset``. Refused (TruncationBelowHighWatermarkError) when
        ``offset`` is below the high watermark."""
        if offset < 0:
            raise ValueError(f"cannot restart at negative offset {offset}")
        with self._write_lock, self._hw.frozen() as high_watermark:
            hw = high_watermark.value
            if offset < hw:
                raise TruncationBelowHighWatermarkError(
                    offset,
                    hw,
                    offset,
                    message=(
                        f"{self._tp}: restarting the log at offset {offset} would drop "
                        f"committed records below the high watermark {hw}; nothing changed"
                    ),
                )
            self._restart_at(high_watermark, offset)
            self._damage.clear()

    def truncate_damage(self) -> int:
        """Repairs a follower: removes the damaged batch and everything after it (the
        segment is cut at the damage's byte position, so no damaged header is trusted),
        even below the high watermark (which drops to the new log end: the records are
        fetched again from the leader), and clears the damage. Returns the new log end."""
        damage = self._damage.report
        if damage is None:
            return self._log.log_end_offset
        with self._write_lock, self._hw.frozen() as high_watermark:
            end = self._log.log_end_offset
            if damage.offset <= self._log.log_start_offset:
                self._restart_at(high_watermark, damage.offset)
                new_end = damage.offset
                self._damage.clear_below(new_end)
            else:
                new_end, _lowered = self._cut_end(
                    high_watermark, damage.offset, lambda: self._log.truncate_at_damage(damage)
                )
        log.warning(
            "log_damage_truncated",
            topic=self._tp.topic,
            partition=self._tp.partition,
            offset=damage.offset,
            log_end_offset=new_end,
            previous_log_end_offset=end,
        )
        return new_end

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

    def _cut_end(
        self, high_watermark: HighWatermark, expected_end: int, cut: Callable[[], int]
    ) -> tuple[int, bool]:
        """Cuts the log (``cut``, returning the new log end; ``expected_end`` is what it will
        be) with its companions; returns the new log end and whether the high watermark was
        lowered to it."""
        self._producers.before_truncation(expected_end)
        new_end = cut()
        self._epoch_cache.truncate_from_end(new_end)
        self._producers.after_truncation(self._log, min(high_watermark.value, new_end))
        lowered = high_watermark.lower_to(new_end)
        self._damage.clear_below(new_end)
        return new_end, lowered

    def _restart_at(self, high_watermark: HighWatermark, offset: int) -> None:
        """Empties the log and its companions and restarts them at ``offset``."""
        self._producers.reset(offset)
        self._log.reset(offset)
        self._epoch_cache.clear()
        high_watermark.restart_at(offset)
