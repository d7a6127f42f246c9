"""Control managers: validate admin and broker requests against the image and plan records.

Run only on the active controller. Pure and synchronous: time is a ``now_ms`` argument,
randomness an injected ``random.Random``. A manager never mutates the image it reads; it returns
a ``ControllerResult`` with the records to propose (as one Raft entry) and the response to send
once they commit.
"""

from raftka.controller.control.alter_partition import alter_partition
from raftka.controller.control.cluster import (
    BrokerControlState,
    ClusterManager,
    check_broker_epoch,
    describe_brokers,
    fence_broker_records,
)
from raftka.controller.control.configs import alter_configs, describe_configs
from raftka.controller.control.elections import LeaderMove, elect_leaders, plan_leader_rebalance
from raftka.controller.control.partition_change import ElectionType, PartitionChangeBuilder
from raftka.controller.control.placement import PlacementBroker, StripedReplicaPlacer
from raftka.controller.control.producer_ids import PRODUCER_ID_BLOCK_SIZE, allocate_producer_ids
from raftka.controller.control.reassignments import (
    alter_partition_reassignments,
    list_partition_reassignments,
)
from raftka.controller.control.result import ControllerResult
from raftka.controller.control.sessions import BrokerSessions
from raftka.controller.control.topics import TopicManager, describe_topics

__all__ = [
    "PRODUCER_ID_BLOCK_SIZE",
    "BrokerControlState",
    "BrokerSessions",
    "ClusterManager",
    "ControllerResult",
    "ElectionType",
    "LeaderMove",
    "PartitionChangeBuilder",
    "PlacementBroker",
    "StripedReplicaPlacer",
    "TopicManager",
    "allocate_producer_ids",
    "alter_configs",
    "alter_partition",
    "alter_partition_reassignments",
    "check_broker_epoch",
    "describe_brokers",
    "describe_configs",
    "describe_topics",
    "elect_leaders",
    "fence_broker_records",
    "list_partition_reassignments",
    "plan_leader_rebalance",
]
