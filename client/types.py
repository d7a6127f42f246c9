"""Value types shared by the client classes (producer, consumer, admin)."""

from __future__ import annotations

from dataclasses import dataclass

from raftka.common.ids import TopicPartition

__all__ = ["OffsetAndMetadata", "RecordMetadata", "TopicPartition"]


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    """A committed offset: the next record to read, as in Kafka."""

    offset: int
    leader_epoch: int | None = None
    metadata: str = ""


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where an acknowledged record was written. ``offset`` is -1 with acks=0 (the producer
    does not wait to learn it)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    """The record's timestamp (create time), or the broker's append time for topics that use
    LogAppendTime."""
    serialized_key_size: int
    serialized_value_size: int
