"""Typed identifiers shared by every package.

Raft speaks of log *index* and *term*; partitions speak of *offset* and *leader epoch*.
They are distinct types so that the two vocabularies never mix by accident.
"""

import base64
import random
from typing import NamedTuple, NewType

NodeId = NewType("NodeId", int)
"""A controller voter's id (``node.id`` in its config)."""

BrokerId = NewType("BrokerId", int)
"""A broker's id; a combined node uses the same number for both roles."""

Term = NewType("Term", int)
"""A Raft term (KRaft calls it the epoch)."""

Index = NewType("Index", int)
"""A position in the Raft log; the first entry has index 1."""

Offset = NewType("Offset", int)
"""A position in a partition log; the first record has offset 0."""

LeaderEpoch = NewType("LeaderEpoch", int)
PartitionEpoch = NewType("PartitionEpoch", int)
BrokerEpoch = NewType("BrokerEpoch", int)
ProducerId = NewType("ProducerId", int)


def random_resource_id(rng: random.Random) -> str:
    """A new id for a topic or an ACL: 16 random bytes as 22 URL-safe base64 characters
    (Kafka's Uuid.toString()). Callers check it against the ids already taken."""
    return base64.urlsafe_b64encode(rng.randbytes(16)).rstrip(b"=").decode()


NO_NODE = -1
"""Wire value for "no leader" / "no node"."""


class TopicPartition(NamedTuple):
    """One partition of a topic. A NamedTuple: hashable, ordered by (topic, partition), and it
    unpacks as ``topic, partition = tp``. Printed as Kafka prints it: ``topic-partition``."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"
