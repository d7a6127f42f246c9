"""Value types shared by the client classes (producer, consumer, admin)."""

from __future__ import annotations

from typing import NamedTuple


class TopicPartition(NamedTuple):
    """One partition of a topic. A NamedTuple: hashable, ordered by (topic, partition), and it
    unpacks as ``topic, partition = tp``."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"
