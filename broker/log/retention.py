"""Retention of partition logs: the delete policy (Kafka's ``cleanup.policy=delete``).

The one place that decides what retention deletes. Whole non-active segments are deleted,
oldest first, while the oldest one's largest timestamp is more than ``retention.ms`` old, or
while the partition is larger than ``retention.bytes`` by at least that segment; the log start
offset then advances to the first remaining segment (:meth:`PartitionLog.advance_log_start`
does the deleting, keeping the leader-epoch cache and producer state in step).

A compact-only topic loses no segment here (the log cleaner, :mod:`raftka.broker.log.cleaner`,
compacts it); ``compact,delete`` is compacted and also loses old segments by these rules.

A deleted segment's files are renamed ``*.deleted`` and removed ``file.delete.delay.ms``
later (:func:`remove_deleted_segments`, from the broker's background loop), as in Kafka: a
read already holding the segment finishes.

Retention never deletes offsets at or above the high watermark (as Kafka's
``deletableSegments``): consumers could not have read them yet. Segments go as a unit, so when
the high watermark lies below the active segment (a lagging ISR) retention waits for it to
catch up instead of deleting a partial set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import structlog

from raftka.broker.log.config import PartitionLogConfig
from raftka.broker.log.partition_log import PartitionLog
from raftka.common.storage import LogClosedError, SegmentInfo, StorageError

log = structlog.get_logger(__name__)

DELETED_FILES_CHECK_INTERVAL_MS = 1000
"""How often the broker removes deleted segments' files whose ``file.delete.delay.ms`` has
passed (so they go within a second of it)."""


def retention_applies(config: PartitionLogConfig) -> bool:
    """Whether the topic's configs can delete anything."""
    return config.delete_enabled and (config.retention_ms >= 0 or config.retention_bytes >= 0)


def retention_start_offset(
    segments: Sequence[SegmentInfo],
    config: PartitionLogConfig,
    *,
    high_watermark: int,
    now_ms: int,
) -> tuple[int, str] | None:
    """The new log start offset the topic's retention rules give a log of ``segments`` (the
    last one active), and the rule that gave it (``retention_ms`` or ``retention_bytes``);
    None when nothing expires."""
    if not retention_applies(config) or len(segments) < 2:
        return None  # only the active segment, which is never deleted
    if high_watermark < segments[-1].base_offset:
        return None
    candidates = segments[:-1]
    by_time = 0
    if config.retention_ms >= 0:
        for segment in candidates:
            if now_ms - segment.largest_timestamp <= config.retention_ms:
                break
            by_time += 1
    by_size = 0
    if config.retention_bytes >= 0:
        excess = sum(segment.size for segment in segments) - config.retention_bytes
        for segment in candidates:
            if excess - segment.size < 0:
                break
            excess -= segment.size
            by_size += 1
    count = max(by_time, by_size)
    if count == 0:
        return None
    reason = "retention_ms" if by_time >= by_size else "retention_bytes"
    return segments[count].base_offset, reason


def apply_retention(partition_logs: Iterable[PartitionLog], now_ms: int) -> int:
    """Applies every partition's retention rules; returns the segments deleted. A partition
    that fails is logged and skipped; one closed meanwhile (deleted) is skipped."""
    deleted = 0
    for plog in partition_logs:
        try:
            decided = retention_start_offset(
                plog.segments(), plog.config, high_watermark=plog.high_watermark, now_ms=now_ms
            )
            if decided is None:
                continue
            offset, reason = decided
            deleted += plog.advance_log_start(offset, reason=reason)
        except LogClosedError:
            continue
        except (StorageError, OSError) as exc:
            log.error(
                "retention_failed", topic=plog.topic, partition=plog.partition, error=str(exc)
            )
    return deleted


def remove_deleted_segments(partition_logs: Iterable[PartitionLog], now_ms: int) -> int:
    """Removes the files of deleted segments whose ``file.delete.delay.ms`` has passed (see
    :meth:`PartitionLog.remove_deleted_segments`); returns how many segments went. A
    partition that fails is logged and skipped; one closed meanwhile is skipped."""
    removed = 0
    for plog in partition_logs:
        try:
            removed += plog.remove_deleted_segments(now_ms)
        except LogClosedError:
            continue
        except (StorageError, OSError) as exc:
            log.error(
                "deleted_segments_removal_failed",
                topic=plog.topic,
                partition=plog.partition,
                error=str(exc),
            )
    return removed
