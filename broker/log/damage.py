"""The damage known in one partition replica's log: the lowest damaged offset found by a
read, the scrubber or on open, which reads must not reach and a repair removes.

Thread-safe (its own lock, never held while anything else is taken): reads, the scrubber and
the write path of :class:`~raftka.broker.log.partition_log.PartitionLog` all report to it.
"""

from __future__ import annotations

import threading

import structlog

from raftka.common.ids import TopicPartition
from raftka.common.storage.results import DamageReport

log = structlog.get_logger(__name__)


class DamageTracker:
    """The lowest known damage of one partition's log, or None."""

    def __init__(self, topic_partition: TopicPartition) -> None:
        self._tp = topic_partition
        self._lock = threading.Lock()
        self._report: DamageReport | None = None

    @property
    def report(self) -> DamageReport | None:
        return self._report

    def mark(self, report: DamageReport, *, source: str) -> bool:
        """Records damage found by ``source`` (``read``, ``scrub``, ``open``); returns
        whether it is new (no damage was known at or below its offset). Logged as
        ``log_damage_found``."""
        with self._lock:
            known = self._report
            if known is not None and known.offset <= report.offset:
                return False
            self._report = report
        log.error(
            "log_damage_found",
            topic=self._tp.topic,
            partition=self._tp.partition,
            segment=f"{report.segment_base_offset:020d}.log",
            offset=report.offset,
            position=report.position,
            reason=report.reason,
            source=source,
        )
        return True

    def clear_below(self, new_end: int) -> None:
        """The log now ends at ``new_end``: damage at or past it is gone."""
        with self._lock:
            if self._report is not None and self._report.offset >= new_end:
                self._report = None

    def clear(self) -> None:
        """The log was emptied: no damage is left. Called under the partition's write lock."""
        self._report = None
