"""Partition health counts from a metadata image (read at scrape time by the controller's and
the brokers' collectors; the same definitions on both, as in Kafka):

- under-replicated: the ISR is smaller than the replica list;
- under min ISR: the ISR is smaller than the topic's ``min.insync.replicas`` (acks=all refused);
- offline: no leader (nobody serves it).
"""

from __future__ import annotations

from dataclasses import dataclass

from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.topic_configs import topic_config_value


@dataclass(frozen=True, slots=True)
class PartitionCounts:
    partitions: int = 0
    under_replicated: int = 0
    under_min_isr: int = 0
    offline: int = 0


def partition_counts(image: MetadataImage, *, leader: int | None = None) -> PartitionCounts:
    """Counts over every partition, or (``leader``) over those that broker leads."""
    total = under_replicated = under_min_isr = offline = 0
    for name, topic in image.topics.items():
        min_isr: int | None = None
        for state in topic.partitions.values():
            if leader is not None and state.leader != leader:
                continue
            total += 1
            if not state.has_leader:
                offline += 1
            if len(state.isr) < len(state.replicas):
                under_replicated += 1
            if min_isr is None:
                value = topic_config_value(image.topic_configs(name), "min.insync.replicas")
                min_isr = value if isinstance(value, int) else 1
            if len(state.isr) < min_isr:
                under_min_isr += 1
    return PartitionCounts(total, under_replicated, under_min_isr, offline)
