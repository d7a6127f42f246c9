"""What the Kafka handlers call: the broker's own lower layers, never a second copy of them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from raftka.broker.config import BrokerConfig
from raftka.broker.coordinator.internal_topic import InternalTopic
from raftka.broker.groups.offsets_topic import OffsetsTopic
from raftka.broker.groups.runtime import GroupCoordinator
from raftka.broker.metrics import TopicTraffic
from raftka.broker.partition import NotLeaderOrFollowerError, Partition, check_current_leader_epoch
from raftka.broker.producers.id_blocks import ProducerIdManager
from raftka.broker.replica_manager import ReplicaManager
from raftka.broker.transactions.runtime import TransactionCoordinator
from raftka.broker.transactions.verification import TxnWriteVerifier
from raftka.common.metadata.image import MetadataImage
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.security.guard import OPEN_GUARD, AccessGuard


@dataclass(frozen=True, slots=True)
class KafkaBackend:
    broker_id: int
    cluster_id: str
    replicas: ReplicaManager
    image: Callable[[], MetadataImage]
    """The broker's metadata image as it follows the metadata log."""
    producer_ids: ProducerIdManager
    controller: ControllerClient
    """CreateTopics / DeleteTopics go to the active controller through it."""
    traffic: TopicTraffic
    init_transactional_producer: Callable[[str, int], Awaitable[tuple[int, int]]] | None = None
    txn_writes: TxnWriteVerifier | None = None
    groups: GroupCoordinator | None = None
    """The broker's group coordinator (the same one the gRPC GroupService serves)."""
    offsets_topic: OffsetsTopic | None = None
    transactions: TransactionCoordinator | None = None
    transaction_topic: InternalTopic | None = None
    guard: AccessGuard = OPEN_GUARD
    """The broker's authorization checks; handlers read the caller from the context var."""
    config: BrokerConfig | None = None
    """The broker's own settings (DescribeConfigs of its BROKER resource)."""

    def leader_partition(self, topic: str, partition: int, epoch: int | None) -> Partition:
        """The partition if this broker leads it; FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH
        for a client epoch older / newer than the leader's, else NOT_LEADER_OR_FOLLOWER with
        the leader this broker knows (KIP-320's order)."""
        try:
            return self.replicas.leader_partition(topic, partition)
        except NotLeaderOrFollowerError as e:
            if e.leader_epoch >= 0:
                check_current_leader_epoch(
                    epoch, e.leader_epoch, f"{topic}-{partition}", leader_id=e.leader_id
                )
            raise
