"""The log cleaner: which compacted logs need cleaning, and cleaning them one at a time.

Every partition log whose topic's ``cleanup.policy`` includes ``compact`` is a candidate
(``compact,delete`` topics are cleaned and also lose old segments to retention,
:mod:`raftka.broker.log.retention`). For each, as Kafka's ``LogCleanerManager``:

- the **first dirty offset** comes from the partition's cleaner checkpoint
  (:mod:`raftka.broker.log.compaction`);
- the **first uncleanable offset** is the base offset of the first segment, from the dirty
  one on, that is the active segment, or is not wholly below the last stable offset (the
  high watermark, or the first offset of the oldest open transaction: an undecided
  transaction's records and its marker are never cleaned apart), or (with
  ``min.compaction.lag.ms`` > 0) holds a record newer than now - that lag;
- the **dirty ratio** is cleanable bytes (segments from the dirty one up to the uncleanable
  one) over those plus the clean bytes (segments below the first dirty offset).

A log is eligible when it has cleanable bytes and its ratio exceeds
``min.cleanable.dirty.ratio``, or when a cleanable segment's newest record is older than
``max.compaction.lag.ms`` (measured on the segment's largest timestamp: a record may wait up to
its segment's time span longer than Kafka would let it). The filthiest eligible log is cleaned
first. A log with known damage is skipped until it is repaired.

Leader and followers clean their own copies independently, as in Kafka. The broker runs
:meth:`LogCleaner.clean_once` on a thread of its own (never the event loop or the I/O
threads), waiting ``log_cleaner_backoff_ms`` whenever nothing is eligible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog

from raftka.broker.log.config import PartitionLogConfig
from raftka.broker.log.partition_log import PartitionLog
from raftka.common.clock import Clock, wall_clock_ms
from raftka.common.errors import RaftkaError
from raftka.common.records import RecordError
from raftka.common.storage import LogClosedError, SegmentInfo, StorageError
from raftka.common.storage.cleaner import DEFAULT_MAX_KEYS, CleanResult

log = structlog.get_logger(__name__)

LONG_MAX = (1 << 63) - 1


class CleanerStoppedError(RaftkaError):
    """The cleaner was stopped in the middle of a pass (the broker is shutting down); the
    partial output was deleted and the log is as it was before the pass's current group."""


@dataclass(frozen=True, slots=True)
class DirtyRange:
    """What a log would clean now."""

    first_dirty: int
    first_uncleanable: int
    clean_bytes: int
    cleanable_bytes: int
    overdue: bool

    @property
    def ratio(self) -> float:
        total = self.clean_bytes + self.cleanable_bytes
        return self.cleanable_bytes / total if total else 0.0

    def eligible(self, config: PartitionLogConfig) -> bool:
        if self.cleanable_bytes <= 0:
            return False
        return self.overdue or self.ratio > config.min_cleanable_dirty_ratio


def dirty_range(
    segments: Sequence[SegmentInfo],
    config: PartitionLogConfig,
    *,
    first_dirty: int,
    high_watermark: int,
    now_ms: int,
) -> DirtyRange:
    """The dirty range of a log of ``segments`` (oldest first, the last one active);
    ``high_watermark`` is the bound nothing is cleaned at or past (the last stable offset)."""
    clean_bytes = 0
    cleanable_bytes = 0
    overdue = False
    first_uncleanable = segments[-1].base_offset
    max_lag = config.max_compaction_lag_ms
    for i, segment in enumerate(segments[:-1]):
        end = segments[i + 1].base_offset
        if end <= first_dirty:
            clean_bytes += segment.size
            continue
        too_new = (
            config.min_compaction_lag_ms > 0
            and segment.largest_timestamp > now_ms - config.min_compaction_lag_ms
        )
        if end > high_watermark or too_new:
            first_uncleanable = segment.base_offset
            break
        cleanable_bytes += segment.size
        if max_lag < LONG_MAX and segment.largest_timestamp < now_ms - max_lag:
            overdue = True
    return DirtyRange(first_dirty, first_uncleanable, clean_bytes, cleanable_bytes, overdue)


@dataclass(frozen=True, slots=True)
class CleanedLog:
    """One pass the cleaner made."""

    plog: PartitionLog
    range: DirtyRange
    result: CleanResult


class Throttle:
    """Holds the cleaner to ``bytes_per_second`` (0: unlimited) by sleeping its thread, and
    stops a pass when ``stopped`` is set."""

    def __init__(self, bytes_per_second: int, stopped: threading.Event) -> None:
        self._rate = bytes_per_second
        self._stopped = stopped
        self._start = time.monotonic()
        self._bytes = 0

    def __call__(self, nbytes: int) -> None:
        if self._stopped.is_set():
            raise CleanerStoppedError("the log cleaner was stopped during a pass")
        if self._rate <= 0:
            return
        self._bytes += nbytes
        ahead = self._bytes / self._rate - (time.monotonic() - self._start)
        if ahead > 0.01:
            # Rate limiting on the cleaner's own thread: nothing else waits on it.
            self._stopped.wait(ahead)


class LogCleaner:
    """Cleans the eligible compacted logs of a broker, one pass at a time."""

    def __init__(
        self,
        *,
        io_max_bytes_per_second: int = 0,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self._rate = io_max_bytes_per_second
        self._max_keys = max_keys
        self._clock = clock
        self._stopped = threading.Event()

    def stop(self) -> None:
        """Makes a running pass stop at its next batch (CleanerStoppedError in its thread)."""
        self._stopped.set()

    def candidates(
        self, partition_logs: Iterable[PartitionLog], now_ms: int
    ) -> list[tuple[PartitionLog, DirtyRange]]:
        """The eligible logs with their dirty ranges, filthiest first."""
        found: list[tuple[PartitionLog, DirtyRange]] = []
        for plog in partition_logs:
            config = plog.config
            if not config.compact_enabled or plog.closed or plog.damage is not None:
                continue
            try:
                decided = dirty_range(
                    plog.segments(),
                    config,
                    first_dirty=plog.compactor.first_dirty_offset,
                    high_watermark=plog.last_stable_offset,
                    now_ms=now_ms,
                )
            except LogClosedError:
                continue
            if decided.eligible(config):
                found.append((plog, decided))
        found.sort(key=lambda item: item[1].ratio, reverse=True)
        return found

    def clean_once(self, partition_logs: Iterable[PartitionLog]) -> CleanedLog | None:
        """Cleans the filthiest eligible log whose pass does not fail (a failure is logged as
        ``log_cleaning_failed`` and the next log tried); None when none is left."""
        now = self._clock()
        for plog, decided in self.candidates(partition_logs, now):
            cleaned = self._clean(plog, decided, now)
            if cleaned is not None:
                return cleaned
        return None

    def _clean(self, plog: PartitionLog, decided: DirtyRange, now: int) -> CleanedLog | None:
        started = time.monotonic()
        try:
            result = plog.compactor.clean(
                decided.first_dirty,
                decided.first_uncleanable,
                now_ms=now,
                delete_retention_ms=plog.config.delete_retention_ms,
                progress=Throttle(self._rate, self._stopped),
                max_keys=self._max_keys,
            )
        except CleanerStoppedError:
            raise
        except LogClosedError:
            return None
        except (StorageError, RecordError, OSError) as exc:
            log.error(
                "log_cleaning_failed",
                topic=plog.topic,
                partition=plog.partition,
                first_dirty_offset=decided.first_dirty,
                error=str(exc),
            )
            return None
        if result is None:
            return None
        stats = result.stats
        log.info(
            "log_cleaned",
            topic=plog.topic,
            partition=plog.partition,
            first_dirty_offset=decided.first_dirty,
            end_offset=result.map_end,
            dirty_ratio=round(decided.ratio, 3),
            completed=result.completed,
            bytes_before=result.bytes_before,
            bytes_after=result.bytes_after,
            segments_before=result.segments_before,
            segments_after=result.segments_after,
            records_before=stats.records_read,
            records_after=stats.records_kept,
            keys=result.keys,
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        return CleanedLog(plog, decided, result)


def run_cleaner_passes(cleaner: LogCleaner, partition_logs: Sequence[PartitionLog]) -> int:
    """Cleans eligible logs of ``partition_logs`` until none is left (or the cleaner stops);
    returns the passes made. What the broker's cleaner thread runs after each backoff."""
    passes = 0
    while True:
        try:
            cleaned = cleaner.clean_once(partition_logs)
        except CleanerStoppedError:
            return passes
        if cleaned is None or not cleaned.result.completed:
            return passes
        passes += 1
