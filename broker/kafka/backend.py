"""What the Kafka handlers call: the broker's own lower layers, never a second copy of them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from raftka.broker.config import BrokerConfig
from raftka.broker.coordinator.internal_topic import InternalTopic
from raftka.broker.fetch_poll import leader_partition
from raftka.broker.groups.offsets_topic import OffsetsTopic
from raftka.broker.groups.runtime import GroupCoordinator
from raftka.broker.metrics import TopicTraffic
from raftka.broker.partition import Partition
from raftka.broker.producers.id_blocks import ProducerIdManager
from raftka.broker.producers.owners import ProducerOwners
from raftka.broker.quotas.manager import NO_SENSORS, CallerSensors, QuotaManager, quota_user
from raftka.broker.replica_manager import ReplicaManager
from raftka.broker.transactions.runtime import TransactionCoordinator
from raftka.broker.transactions.verification import TxnWriteVerifier
from raftka.common.clock import monotonic_ms
from raftka.common.metadata.image import MetadataImage
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.security.caller import current_caller
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
    owners: ProducerOwners | None = None
    """Who got or first used each producer id (with authorization on): the gRPC
    BrokerService's, so a producer id is bound alike on both listeners."""
    quotas: QuotaManager | None = None
    """The client quotas (the gRPC BrokerService's sensors: one budget per caller)."""

    def quota_sensors(self, client_id: str) -> CallerSensors:
        """The current caller's quota sensors (NO_SENSORS without quotas)."""
        if self.quotas is None:
            return NO_SENSORS
        return self.quotas.sensors(
            quota_user(current_caller().principal), client_id, monotonic_ms()
        )

    def leader_partition(self, topic: str, partition: int, epoch: int | None) -> Partition:
        """The partition if this broker leads it, its leader epoch checked first
        (:func:`~raftka.broker.fetch_poll.leader_partition`)."""
        return leader_partition(self.replicas, topic, partition, epoch)
