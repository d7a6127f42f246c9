"""``__consumer_offsets`` as the metadata image shows it, and its creation on first use: the
generic :mod:`raftka.broker.coordinator.internal_topic` for that topic."""

from __future__ import annotations

from collections.abc import Callable

from raftka.broker.coordinator.internal_topic import (
    InternalTopic,
    TopicCreator,
    internal_topic_spec,
)
from raftka.broker.groups.placement import OFFSETS_TOPIC
from raftka.common.metadata.image import MetadataImage
from raftka.v1 import controller_pb2 as cpb

__all__ = ["OffsetsTopic", "TopicCreator", "offsets_topic_spec"]


def offsets_topic_spec(partitions: int, replication_factor: int, live_brokers: int) -> cpb.NewTopic:
    """The ``__consumer_offsets`` topic to create with ``live_brokers`` brokers up."""
    return internal_topic_spec(OFFSETS_TOPIC, partitions, replication_factor, live_brokers)


class OffsetsTopic(InternalTopic):
    """``__consumer_offsets`` in the broker's image."""

    def __init__(
        self,
        image: Callable[[], MetadataImage],
        creator: TopicCreator,
        *,
        partitions: int,
        replication_factor: int,
    ) -> None:
        super().__init__(
            image,
            creator,
            name=OFFSETS_TOPIC,
            partitions=partitions,
            replication_factor=replication_factor,
        )

    def offsets_partitions(self) -> int | None:
        """The partition count of ``__consumer_offsets``, or None while it does not exist."""
        return self.partition_count()
