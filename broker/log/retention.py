"""Retention of a partition log: delete policy only (Kafka's ``cleanup.policy=delete``).

Whole non-active segments are deleted, oldest first, while the oldest one's largest
timestamp is more than ``retention.ms`` old, or while the partition is larger than
``retention.bytes`` by at least that segment; the log start offset then advances to the first
remaining segment (:meth:`SegmentedLog.apply_retention` does the deleting).

``cleanup.policy=compact`` is not implemented: a compact-only topic keeps every segment (no
cleaner runs), and ``compact,delete`` applies the delete rules only.

Retention never deletes offsets at or above the high watermark (as Kafka's
``deletableSegments``): consumers could not have read them yet. The segmented log deletes
segments as a unit and does not expose per-segment timestamps, so when the high watermark
lies below the active segment (a lagging ISR, once replication exists) retention waits for it
to catch up instead of deleting a partial set.
"""

from __future__ import annotations

import structlog

from raftka.broker.log.config import PartitionLogConfig
from raftka.common.storage import SegmentedLog

log = structlog.get_logger(__name__)


def retention_applies(config: PartitionLogConfig) -> bool:
    """Whether the topic's configs can delete anything."""
    return config.delete_enabled and (config.retention_ms >= 0 or config.retention_bytes >= 0)


def apply_retention(
    segmented_log: SegmentedLog,
    config: PartitionLogConfig,
    *,
    high_watermark: int,
    now_ms: int,
) -> int:
    """Deletes the segments the topic's retention rules expire; returns how many."""
    if not retention_applies(config):
        return 0
    bases = segmented_log.segment_base_offsets
    if len(bases) < 2:
        return 0  # only the active segment, which is never deleted
    if high_watermark < bases[-1]:
        log.debug(
            "retention_waits_for_high_watermark",
            directory=str(segmented_log.directory),
            high_watermark=high_watermark,
            active_segment_base_offset=bases[-1],
        )
        return 0
    return segmented_log.apply_retention(now_ms, config.retention_ms, config.retention_bytes)
