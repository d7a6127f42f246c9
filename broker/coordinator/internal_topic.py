"""A coordinator's internal topic as the metadata image shows it, and its creation on first
use.

:meth:`InternalTopic.ensure` is called by FindCoordinator: while the topic is missing from the
image it asks the controller (once at a time) to create it with Kafka's shape for coordinator
topics: the configured partition count, replication factor min(configured, live brokers),
compacted, 100 MiB segments, large batches, and min.insync.replicas 2 once it has at least 3
replicas. Until the image holds the topic, every key's coordinator is
COORDINATOR_NOT_AVAILABLE.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import structlog

from raftka.common.metadata.image import MetadataImage
from raftka.v1 import controller_pb2 as cpb
from raftka.v1.common_pb2 import ErrorCode

log = structlog.get_logger(__name__)

SEGMENT_BYTES = 104_857_600
"""Kafka's offsets.topic.segment.bytes and transaction.state.log.segment.bytes."""
MAX_MESSAGE_BYTES = 52_428_800
"""The largest batch a coordinator may write: one call's records always go in one batch, and
a commit of 10,000 partitions with 4 KiB of metadata each takes about 42 MB."""


class TopicCreator(Protocol):
    async def create_topics(
        self, topics: Sequence[cpb.NewTopic], *, validate_only: bool = False
    ) -> list[cpb.CreateTopicResult]: ...


def internal_topic_spec(
    name: str, partitions: int, replication_factor: int, live_brokers: int
) -> cpb.NewTopic:
    """The internal topic ``name`` to create with ``live_brokers`` brokers up."""
    rf = max(1, min(replication_factor, live_brokers))
    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": str(SEGMENT_BYTES),
        "max.message.bytes": str(MAX_MESSAGE_BYTES),
    }
    if rf >= 3:
        configs["min.insync.replicas"] = "2"
    return cpb.NewTopic(
        name=name, num_partitions=partitions, replication_factor=rf, configs=configs
    )


class InternalTopic:
    """Reads the topic ``name`` from the broker's image (``image()`` gives the current one) and
    creates it when missing."""

    def __init__(
        self,
        image: Callable[[], MetadataImage],
        creator: TopicCreator,
        *,
        name: str,
        partitions: int,
        replication_factor: int,
    ) -> None:
        self.name = name
        self._image = image
        self._creator = creator
        self._partitions = partitions
        self._replication_factor = replication_factor
        self._creating: asyncio.Task[None] | None = None
        self._topics_cache: tuple[tuple[int, int], dict[str, int]] | None = None

    # ---- the coordinator's metadata ----

    def partition_count(self) -> int | None:
        """The topic's partition count, or None while it does not exist."""
        topic = self._image().topic(self.name)
        return None if topic is None or not topic.partitions else len(topic.partitions)

    def leader_of(self, partition: int) -> int:
        """The leader of one of the topic's partitions, -1 for none."""
        topic = self._image().topic(self.name)
        state = None if topic is None else topic.partitions.get(partition)
        return -1 if state is None else state.leader

    def client_endpoint(self, broker_id: int) -> tuple[str, int] | None:
        """Where clients reach an unfenced broker (its CLIENT listener), or None."""
        reg = self._image().broker(broker_id)
        endpoint = None if reg is None or reg.fenced else reg.client_endpoint()
        return None if endpoint is None else (endpoint.host, endpoint.port)

    def topics(self) -> Mapping[str, int]:
        """topic name -> partition count, for every topic of the image."""
        image = self._image()
        # The broker's image is changed in place (and replaced after a snapshot): the cache is
        # good for one image at one applied index only.
        key = (id(image), image.last_applied_index)
        cached = self._topics_cache
        if cached is None or cached[0] != key:
            cached = (key, {n: len(t.partitions) for n, t in image.topics.items()})
            self._topics_cache = cached
        return cached[1]

    # ---- creation ----

    def ensure(self) -> int | None:
        """The partition count, or None while the topic is being created (a creation is
        started if none is under way)."""
        count = self.partition_count()
        if count is not None:
            return count
        if self._creating is None or self._creating.done():
            self._creating = asyncio.create_task(self._create(), name=f"create-{self.name}")
        return None

    async def _create(self) -> None:
        live = len(self._image().active_brokers())
        spec = internal_topic_spec(self.name, self._partitions, self._replication_factor, live)
        try:
            (result,) = await self._creator.create_topics([spec])
        except Exception as e:
            log.warning("internal_topic_create_failed", topic=self.name, error=str(e)[:300])
            return
        if result.error_code in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
            log.info(
                "internal_topic_created",
                topic=self.name,
                partitions=spec.num_partitions,
                replication_factor=spec.replication_factor,
                existed=result.error_code == ErrorCode.TOPIC_ALREADY_EXISTS,
            )
        else:
            log.warning(
                "internal_topic_create_failed",
                topic=self.name,
                error_code=ErrorCode.Name(result.error_code),
                error=result.error_message,
            )

    async def close(self) -> None:
        if self._creating is not None:
            self._creating.cancel()
            await asyncio.gather(self._creating, return_exceptions=True)
