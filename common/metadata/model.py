"""Value types of the metadata image: broker registrations, partitions and topics.

Registrations and partition states are frozen: a change replaces the value. ``TopicImage`` is a
container the image updates in place; callers treat it as read-only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from raftka.common.ids import NO_NODE, BrokerEpoch, BrokerId, LeaderEpoch, PartitionEpoch

NO_LEADER = BrokerId(NO_NODE)
"""Leader value of a partition that has none (offline)."""
INITIAL_LEADER_EPOCH = LeaderEpoch(0)
INITIAL_PARTITION_EPOCH = PartitionEpoch(0)

CLIENT_LISTENER = "CLIENT"
"""The listener a broker serves clients on (its ``broker.listen``)."""
INTERNAL_LISTENER = "INTERNAL"
"""The listener a broker serves other brokers on (``broker.internal_listen``), when it has one:
replication fetches, transaction markers, transactional-write checks."""
KAFKA_LISTENER = "KAFKA"
"""A broker's Kafka wire-protocol listener (``broker.kafka_listen``), when it has one: the
address Kafka clients are told in Metadata."""


class LeaderRecoveryState(enum.IntEnum):
    """Whether a partition's leader holds every committed record (KIP-704)."""

    RECOVERED = 0
    RECOVERING = 1
    """Elected uncleanly (from outside the ISR); the leader may lack committed records."""


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """One listener of a broker."""

    name: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    """A registered broker as of the last applied record."""

    broker_id: BrokerId
    epoch: BrokerEpoch
    """The metadata log index of the RegisterBrokerRecord of this incarnation."""
    incarnation_id: str
    endpoints: tuple[BrokerEndpoint, ...] = ()
    rack: str = ""
    """Empty means no rack."""
    fenced: bool = True
    in_controlled_shutdown: bool = False

    @property
    def active(self) -> bool:
        """May lead partitions and join ISRs: unfenced and not shutting down."""
        return not self.fenced and not self.in_controlled_shutdown

    def endpoint(self, name: str) -> BrokerEndpoint | None:
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        return None

    def client_endpoint(self) -> BrokerEndpoint | None:
        """Where clients reach the broker: its CLIENT listener (else its first one)."""
        return self.endpoint(CLIENT_LISTENER) or (self.endpoints[0] if self.endpoints else None)

    def internal_endpoint(self) -> BrokerEndpoint | None:
        """Where other brokers reach it: its INTERNAL listener when it registered one, else
        the listener clients use (a broker with one listener serves both there)."""
        return self.endpoint(INTERNAL_LISTENER) or self.client_endpoint()


@dataclass(frozen=True, slots=True)
class PartitionState:
    """Replica assignment, ISR, leader and epochs of one partition."""

    replicas: tuple[BrokerId, ...]
    """All replicas, preferred leader first."""
    isr: tuple[BrokerId, ...]
    leader: BrokerId = NO_LEADER
    leader_epoch: LeaderEpoch = INITIAL_LEADER_EPOCH
    partition_epoch: PartitionEpoch = INITIAL_PARTITION_EPOCH
    removing_replicas: tuple[BrokerId, ...] = ()
    adding_replicas: tuple[BrokerId, ...] = ()
    leader_recovery_state: LeaderRecoveryState = LeaderRecoveryState.RECOVERED

    @property
    def has_leader(self) -> bool:
        return self.leader != NO_LEADER

    @property
    def preferred_leader(self) -> BrokerId:
        return self.replicas[0] if self.replicas else NO_LEADER


@dataclass(slots=True)
class TopicImage:
    """A topic and its partitions (partition id -> state). Read-only for callers."""

    name: str
    topic_id: str
    partitions: dict[int, PartitionState] = field(default_factory=dict)

    @property
    def replication_factor(self) -> int:
        """Target replicas per partition, taken from partition 0 (as Kafka does)."""
        first = self.partitions.get(0)
        if first is None:
            return 0
        return len(first.replicas) - len(first.removing_replicas)

    def clone(self) -> TopicImage:
        return TopicImage(self.name, self.topic_id, dict(self.partitions))


@dataclass(frozen=True, slots=True)
class PartitionView:
    """One partition of one topic, as returned by the image's query helpers."""

    topic_name: str
    topic_id: str
    partition_id: int
    state: PartitionState
