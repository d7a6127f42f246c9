"""Cutting a partition's log back at its end: a follower's divergence truncation, a restart
at a new offset, and the repair of damage, each keeping the producer state, the leader-epoch
cache, the high watermark and the known damage in step with the segmented log.

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
    """The truncations of one partition's log (see the methods of the same names on
    :class:`~raftka.broker.log.partition_log.PartitionLog`, which delegates to them)."""

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
