"""A tiny stand-in for the controller runtime: proposes results and "commits" them at once."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import TypeVar

from raftka.common.ids import BrokerEpoch, BrokerId, LeaderEpoch
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.model import NO_LEADER, PartitionState
from raftka.common.metadata.records import partition_record, topic_record
from raftka.controller.control.cluster import ClusterManager
from raftka.controller.control.result import ControllerResult
from raftka.controller.control.sessions import BrokerSessions
from raftka.controller.control.topics import TopicManager
from raftka.v1.common_pb2 import Endpoint
from raftka.v1.controller_pb2 import (
    BrokerHeartbeatRequest,
    BrokerHeartbeatResponse,
    CreateTopicsRequest,
    NewTopic,
    RegisterBrokerRequest,
)
from raftka.v1.metadata_pb2 import MetadataBatch, MetadataRecord

T = TypeVar("T")

CLUSTER_ID = "cluster-1"
SESSION_TIMEOUT_MS = 9000


class Harness:
    def __init__(self, seed: int = 7) -> None:
        self.image = MetadataImage()
        self.now_ms = 0
        self.sessions = BrokerSessions(SESSION_TIMEOUT_MS, started_ms=0)
        self.cluster = ClusterManager(CLUSTER_ID, self.sessions)
        self.topics = TopicManager(random.Random(seed))

    @property
    def next_index(self) -> int:
        return self.image.last_applied_index + 1

    def commit(self, result: ControllerResult[T]) -> T:
        """Applies the result's records as the next entry (even when empty) and returns the
        response."""
        self.image.apply_batch(result.batch(), self.next_index)
        return result.response

    def register(
        self, broker_id: int, *, rack: str = "", incarnation: str | None = None
    ) -> BrokerEpoch:
        request = RegisterBrokerRequest(
            broker_id=broker_id,
            cluster_id=CLUSTER_ID,
            incarnation_id=incarnation or f"inc-{broker_id}",
            listeners=[Endpoint(name="CLIENT", host="127.0.0.1", port=9000 + broker_id)],
            rack=rack,
            previous_broker_epoch=-1,
        )
        result = self.cluster.register_broker(
            self.image, request, next_index=self.next_index, now_ms=self.now_ms
        )
        return BrokerEpoch(self.commit(result).broker_epoch)

    def heartbeat(
        self,
        broker_id: int,
        *,
        metadata_index: int | None = None,
        want_fence: bool = False,
        want_shut_down: bool = False,
        epoch: int | None = None,
    ) -> BrokerHeartbeatResponse:
        reg = self.image.broker(broker_id)
        request = BrokerHeartbeatRequest(
            broker_id=broker_id,
            broker_epoch=(reg.epoch if reg is not None else 0) if epoch is None else epoch,
            current_metadata_index=(
                self.image.last_applied_index if metadata_index is None else metadata_index
            ),
            want_fence=want_fence,
            want_shut_down=want_shut_down,
        )
        result = self.cluster.heartbeat(
            self.image, request, next_index=self.next_index, now_ms=self.now_ms
        )
        return self.commit(result)

    def add_brokers(self, broker_ids: Iterable[int], racks: dict[int, str] | None = None) -> None:
        """Registers and unfences brokers."""
        for broker_id in broker_ids:
            self.register(broker_id, rack=(racks or {}).get(broker_id, ""))
            response = self.heartbeat(broker_id)
            assert not response.is_fenced

    def create_topic(
        self,
        name: str,
        partitions: int,
        rf: int,
        configs: dict[str, str] | None = None,
    ) -> str:
        result = self.topics.create_topics(
            self.image,
            CreateTopicsRequest(
                topics=[
                    NewTopic(
                        name=name,
                        num_partitions=partitions,
                        replication_factor=rf,
                        configs=configs or {},
                    )
                ]
            ),
        )
        response = self.commit(result)
        assert response.results[0].error_code == 0, response.results[0].error_message
        return response.results[0].topic_id

    def leaders(self, topic: str) -> list[BrokerId]:
        image_topic = self.image.topic(topic)
        assert image_topic is not None
        return [image_topic.partitions[p].leader for p in sorted(image_topic.partitions)]

    def apply(self, *records: MetadataRecord) -> None:
        """Applies ``records`` as the next entry."""
        self.image.apply_batch(MetadataBatch(records=records), self.next_index)

    def add_topic(
        self,
        name: str,
        partitions: Iterable[tuple[Iterable[int], Iterable[int], int]],
        *,
        leader_epoch: int = 0,
    ) -> str:
        """A topic with hand-placed partitions, each ``(replicas, isr, leader)``; returns its
        id (``"id-<name>"``)."""
        topic_id = f"id-{name}"
        records = [topic_record(name, topic_id)]
        for partition_id, (replicas, isr, leader) in enumerate(partitions):
            state = PartitionState(
                replicas=tuple(BrokerId(b) for b in replicas),
                isr=tuple(BrokerId(b) for b in isr),
                leader=NO_LEADER if leader < 0 else BrokerId(leader),
                leader_epoch=LeaderEpoch(leader_epoch),
            )
            records.append(partition_record(topic_id, partition_id, state))
        self.apply(*records)
        return topic_id

    def partition(self, topic: str, partition_id: int = 0) -> PartitionState:
        image_topic = self.image.topic(topic)
        assert image_topic is not None
        return image_topic.partitions[partition_id]

    def epoch(self, broker_id: int) -> BrokerEpoch:
        reg = self.image.broker(broker_id)
        assert reg is not None
        return reg.epoch
