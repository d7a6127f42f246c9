"""The metadata image: cluster state rebuilt by replaying committed metadata records.

The same replay code runs on every controller and every broker.
"""

from raftka.common.metadata.errors import MetadataReplayError
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.model import (
    NO_LEADER,
    BrokerEndpoint,
    BrokerRegistration,
    LeaderRecoveryState,
    PartitionState,
    PartitionView,
    TopicImage,
)
from raftka.common.metadata.topic_configs import TOPIC_CONFIGS, validate_topic_configs
from raftka.common.metadata.topic_names import validate_topic_name

__all__ = [
    "NO_LEADER",
    "TOPIC_CONFIGS",
    "BrokerEndpoint",
    "BrokerRegistration",
    "LeaderRecoveryState",
    "MetadataImage",
    "MetadataReplayError",
    "PartitionState",
    "PartitionView",
    "TopicImage",
    "validate_topic_configs",
    "validate_topic_name",
]
