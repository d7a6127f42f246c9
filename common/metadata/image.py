"""The metadata image: cluster state rebuilt by replaying committed metadata records.

Every controller and every broker holds one and changes it only through ``apply`` /
``apply_batch`` with records in log order, so the same log always gives the same image. The
active controller additionally keeps a *working* image (``copy()`` of the committed one plus the
records it has proposed but not yet seen commit) to validate new requests against.

Replay is strict: a record that does not fit the image (unknown topic id, wrong broker epoch,
ISR outside the replicas, ...) raises ``MetadataReplayError``; the image may then hold part of
the failed batch and must be discarded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from types import MappingProxyType

from raftka.common.ids import BrokerEpoch, BrokerId, Index, LeaderEpoch, PartitionEpoch
from raftka.common.metadata.errors import MetadataReplayError
from raftka.common.metadata.model import (
    BrokerRegistration,
    LeaderRecoveryState,
    PartitionState,
    PartitionView,
    TopicImage,
)
from raftka.common.metadata.records import (
    ENTER_CONTROLLED_SHUTDOWN,
    FENCE,
    NO_CHANGE,
    UNFENCE,
    config_record,
    endpoints_from_proto,
    partition_record,
    producer_ids_record,
    register_broker_record,
    registration_change_record,
    topic_record,
)
from raftka.common.metadata.security_image import SECURITY_RECORD_KINDS, SecurityImage
from raftka.v1.common_pb2 import ResourceType
from raftka.v1.metadata_pb2 import (
    BrokerRegistrationChangeRecord,
    ConfigRecord,
    MetadataBatch,
    MetadataRecord,
    MetadataSnapshot,
    PartitionChangeRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    RemoveTopicRecord,
    TopicRecord,
    UnregisterBrokerRecord,
)

_TOPIC = ResourceType.RESOURCE_TYPE_TOPIC
_BROKER = ResourceType.RESOURCE_TYPE_BROKER


class MetadataImage:
    """Brokers, topics, partitions, configs and the producer-id counter at one log index."""

    __slots__ = (
        "_broker_configs",
        "_brokers",
        "_last_applied_index",
        "_next_producer_id",
        "_security",
        "_topic_configs",
        "_topic_names_by_id",
        "_topics",
    )

    def __init__(self) -> None:
        self._brokers: dict[BrokerId, BrokerRegistration] = {}
        self._topics: dict[str, TopicImage] = {}
        self._topic_names_by_id: dict[str, str] = {}
        self._topic_configs: dict[str, dict[str, str]] = {}
        self._broker_configs: dict[str, dict[str, str]] = {}
        self._next_producer_id = 0
        self._security = SecurityImage()
        self._last_applied_index = Index(0)

    # ---- construction, copying, snapshots ----

    @classmethod
    def from_records(
        cls, records: Iterable[MetadataRecord], last_applied_index: int = 0
    ) -> MetadataImage:
        """Rebuilds an image from snapshot records, all taken as applied at one index."""
        image = cls()
        for record in records:
            image.apply(record, last_applied_index)
        image._last_applied_index = Index(last_applied_index)
        return image

    @classmethod
    def from_snapshot(cls, snapshot: MetadataSnapshot) -> MetadataImage:
        return cls.from_records(snapshot.records, snapshot.last_index)

    def to_snapshot(self, last_term: int) -> MetadataSnapshot:
        return MetadataSnapshot(
            last_index=self._last_applied_index,
            last_term=last_term,
            records=self.to_snapshot_records(),
        )

    def copy(self) -> MetadataImage:
        """An independent image: applying records to the copy leaves this one unchanged."""
        other = MetadataImage()
        other._brokers = dict(self._brokers)
        other._topics = {name: topic.clone() for name, topic in self._topics.items()}
        other._topic_names_by_id = dict(self._topic_names_by_id)
        other._topic_configs = {k: dict(v) for k, v in self._topic_configs.items()}
        other._broker_configs = {k: dict(v) for k, v in self._broker_configs.items()}
        other._next_producer_id = self._next_producer_id
        other._security = self._security.copy()
        other._last_applied_index = self._last_applied_index
        return other

    def to_snapshot_records(self) -> list[MetadataRecord]:
        """Records that rebuild this image from empty (``from_records`` inverts this)."""
        out: list[MetadataRecord] = []
        for broker_id in sorted(self._brokers):
            reg = self._brokers[broker_id]
            out.append(register_broker_record(reg))
            if reg.in_controlled_shutdown:
                out.append(
                    registration_change_record(
                        broker_id, reg.epoch, in_controlled_shutdown=ENTER_CONTROLLED_SHUTDOWN
                    )
                )
        for name in sorted(self._broker_configs):
            for key, value in sorted(self._broker_configs[name].items()):
                out.append(config_record(_BROKER, name, key, value))
        for name in sorted(self._topics):
            topic = self._topics[name]
            out.append(topic_record(topic.name, topic.topic_id))
            for partition_id in sorted(topic.partitions):
                out.append(
                    partition_record(topic.topic_id, partition_id, topic.partitions[partition_id])
                )
            for key, value in sorted(self._topic_configs.get(name, {}).items()):
                out.append(config_record(_TOPIC, name, key, value))
        if self._next_producer_id > 0:
            out.append(producer_ids_record(-1, -1, self._next_producer_id))
        out.extend(self._security.to_snapshot_records())
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetadataImage):
            return NotImplemented
        return (
            self._brokers == other._brokers
            and self._topics == other._topics
            and self._topic_configs == other._topic_configs
            and self._broker_configs == other._broker_configs
            and self._next_producer_id == other._next_producer_id
            and self._security == other._security
            and self._last_applied_index == other._last_applied_index
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"MetadataImage(index={self._last_applied_index}, brokers={len(self._brokers)}, "
            f"topics={len(self._topics)}, next_producer_id={self._next_producer_id})"
        )

    # ---- replay ----

    def apply_batch(self, batch: MetadataBatch, index: int) -> None:
        """Applies the records of the Raft entry at ``index`` (an empty batch only advances
        ``last_applied_index``)."""
        if index <= self._last_applied_index:
            raise MetadataReplayError(
                f"batch at index {index} is not after the last applied index "
                f"{self._last_applied_index}"
            )
        for record in batch.records:
            self.apply(record, index)
        self._last_applied_index = Index(index)

    def apply(self, record: MetadataRecord, index: int) -> None:
        """Applies one record that is part of the Raft entry at ``index``."""
        if index < self._last_applied_index:
            raise MetadataReplayError(
                f"record at index {index} is before the last applied index "
                f"{self._last_applied_index}"
            )
        kind = record.WhichOneof("record")
        if kind == "register_broker":
            self._apply_register_broker(record.register_broker)
        elif kind == "unregister_broker":
            self._apply_unregister_broker(record.unregister_broker)
        elif kind == "broker_registration_change":
            self._apply_registration_change(record.broker_registration_change)
        elif kind == "topic":
            self._apply_topic(record.topic)
        elif kind == "partition":
            self._apply_partition(record.partition)
        elif kind == "partition_change":
            self._apply_partition_change(record.partition_change)
        elif kind == "remove_topic":
            self._apply_remove_topic(record.remove_topic)
        elif kind == "config":
            self._apply_config(record.config)
        elif kind == "producer_ids":
            self._apply_producer_ids(record.producer_ids)
        elif kind == "no_op":
            pass
        elif kind in SECURITY_RECORD_KINDS:
            self._security.apply(record)
        else:
            raise MetadataReplayError(f"metadata record at index {index} has no record set")
        self._last_applied_index = Index(index)

    def _apply_register_broker(self, r: RegisterBrokerRecord) -> None:
        if r.broker_id < 0:
            raise MetadataReplayError(f"RegisterBrokerRecord has negative broker id {r.broker_id}")
        self._brokers[BrokerId(r.broker_id)] = BrokerRegistration(
            broker_id=BrokerId(r.broker_id),
            epoch=BrokerEpoch(r.broker_epoch),
            incarnation_id=r.incarnation_id,
            endpoints=endpoints_from_proto(r.endpoints),
            rack=r.rack,
            fenced=r.fenced,
            in_controlled_shutdown=False,
        )

    def _registered(self, what: str, broker_id: int, broker_epoch: int) -> BrokerRegistration:
        reg = self._brokers.get(BrokerId(broker_id))
        if reg is None:
            raise MetadataReplayError(f"{what} for broker {broker_id}, which is not registered")
        if reg.epoch != broker_epoch:
            raise MetadataReplayError(
                f"{what} for broker {broker_id} with epoch {broker_epoch}, but its registered "
                f"epoch is {reg.epoch}"
            )
        return reg

    def _apply_unregister_broker(self, r: UnregisterBrokerRecord) -> None:
        self._registered("UnregisterBrokerRecord", r.broker_id, r.broker_epoch)
        del self._brokers[BrokerId(r.broker_id)]

    def _apply_registration_change(self, r: BrokerRegistrationChangeRecord) -> None:
        reg = self._registered("BrokerRegistrationChangeRecord", r.broker_id, r.broker_epoch)
        if r.fenced == FENCE:
            fenced = True
        elif r.fenced == UNFENCE:
            fenced = False
        elif r.fenced == NO_CHANGE:
            fenced = reg.fenced
        else:
            raise MetadataReplayError(
                f"BrokerRegistrationChangeRecord for broker {r.broker_id} has fenced={r.fenced}; "
                "allowed: -1 (unfence), 0 (no change), 1 (fence)"
            )
        if r.in_controlled_shutdown not in (0, ENTER_CONTROLLED_SHUTDOWN):
            raise MetadataReplayError(
                f"BrokerRegistrationChangeRecord for broker {r.broker_id} has "
                f"in_controlled_shutdown={r.in_controlled_shutdown}; allowed: 0, 1"
            )
        shutting_down = reg.in_controlled_shutdown or r.in_controlled_shutdown == 1
        self._brokers[reg.broker_id] = replace(
            reg, fenced=fenced, in_controlled_shutdown=shutting_down
        )

    def _apply_topic(self, r: TopicRecord) -> None:
        if not r.name or not r.topic_id:
            raise MetadataReplayError(
                f"TopicRecord with empty name or id: {r.name!r}/{r.topic_id!r}"
            )
        if r.name in self._topics:
            raise MetadataReplayError(f"TopicRecord for topic {r.name!r}, which already exists")
        if r.topic_id in self._topic_names_by_id:
            raise MetadataReplayError(
                f"TopicRecord for topic {r.name!r} reuses the id {r.topic_id} of topic "
                f"{self._topic_names_by_id[r.topic_id]!r}"
            )
        self._topics[r.name] = TopicImage(r.name, r.topic_id)
        self._topic_names_by_id[r.topic_id] = r.name

    def _topic_for_record(self, what: str, topic_id: str) -> TopicImage:
        name = self._topic_names_by_id.get(topic_id)
        if name is None:
            raise MetadataReplayError(f"{what} for unknown topic id {topic_id!r}")
        return self._topics[name]

    def _apply_partition(self, r: PartitionRecord) -> None:
        topic = self._topic_for_record("PartitionRecord", r.topic_id)
        if r.partition_id < 0:
            raise MetadataReplayError(
                f"PartitionRecord for topic {topic.name!r} has negative partition id {r.partition_id}"
            )
        state = PartitionState(
            replicas=_ids(r.replicas),
            isr=_ids(r.isr),
            leader=BrokerId(r.leader),
            leader_epoch=LeaderEpoch(r.leader_epoch),
            partition_epoch=PartitionEpoch(r.partition_epoch),
            removing_replicas=_ids(r.removing_replicas),
            adding_replicas=_ids(r.adding_replicas),
            leader_recovery_state=_recovery_state(
                topic.name, r.partition_id, r.leader_recovery_state
            ),
        )
        _check_partition(topic.name, r.partition_id, state)
        topic.partitions[r.partition_id] = state

    def _apply_partition_change(self, r: PartitionChangeRecord) -> None:
        topic = self._topic_for_record("PartitionChangeRecord", r.topic_id)
        old = topic.partitions.get(r.partition_id)
        if old is None:
            raise MetadataReplayError(
                f"PartitionChangeRecord for unknown partition {r.partition_id} of topic {topic.name!r}"
            )
        new = merge_partition_change(old, r, topic.name)
        _check_partition(topic.name, r.partition_id, new)
        topic.partitions[r.partition_id] = new

    def _apply_remove_topic(self, r: RemoveTopicRecord) -> None:
        topic = self._topic_for_record("RemoveTopicRecord", r.topic_id)
        del self._topics[topic.name]
        del self._topic_names_by_id[topic.topic_id]
        self._topic_configs.pop(topic.name, None)

    def _apply_config(self, r: ConfigRecord) -> None:
        if r.resource_type == _TOPIC:
            if r.resource_name not in self._topics:
                raise MetadataReplayError(
                    f"ConfigRecord {r.name!r} for unknown topic {r.resource_name!r}"
                )
            store = self._topic_configs
        elif r.resource_type == _BROKER:
            store = self._broker_configs
        else:
            raise MetadataReplayError(
                f"ConfigRecord {r.name!r} has unsupported resource type {r.resource_type}"
            )
        if not r.name:
            raise MetadataReplayError(f"ConfigRecord for {r.resource_name!r} has an empty name")
        if r.HasField("value"):
            store.setdefault(r.resource_name, {})[r.name] = r.value
        else:
            configs = store.get(r.resource_name)
            if configs is not None:
                configs.pop(r.name, None)
                if not configs:
                    del store[r.resource_name]

    def _apply_producer_ids(self, r: ProducerIdsRecord) -> None:
        if r.next_producer_id <= self._next_producer_id:
            raise MetadataReplayError(
                f"ProducerIdsRecord moves the next producer id back from "
                f"{self._next_producer_id} to {r.next_producer_id}"
            )
        self._next_producer_id = r.next_producer_id

    # ---- queries ----

    @property
    def last_applied_index(self) -> Index:
        return self._last_applied_index

    @property
    def next_producer_id(self) -> int:
        """First producer id of the next block to hand out."""
        return self._next_producer_id

    @property
    def security(self) -> SecurityImage:
        """ACLs, user credentials and client quotas. Read it; never change it directly."""
        return self._security

    @property
    def brokers(self) -> Mapping[BrokerId, BrokerRegistration]:
        return MappingProxyType(self._brokers)

    def broker(self, broker_id: int) -> BrokerRegistration | None:
        return self._brokers.get(BrokerId(broker_id))

    def is_active(self, broker_id: int) -> bool:
        """Registered, unfenced and not in controlled shutdown: may lead and be in ISRs."""
        reg = self._brokers.get(BrokerId(broker_id))
        return reg is not None and reg.active

    def unfenced_brokers(self) -> list[BrokerRegistration]:
        """Unfenced brokers (including those in controlled shutdown), by id."""
        return [self._brokers[b] for b in sorted(self._brokers) if not self._brokers[b].fenced]

    def active_brokers(self) -> list[BrokerRegistration]:
        """Unfenced brokers that are not shutting down, by id."""
        return [self._brokers[b] for b in sorted(self._brokers) if self._brokers[b].active]

    @property
    def topics(self) -> Mapping[str, TopicImage]:
        """Topics by name."""
        return MappingProxyType(self._topics)

    def topic(self, name: str) -> TopicImage | None:
        return self._topics.get(name)

    def topic_by_id(self, topic_id: str) -> TopicImage | None:
        name = self._topic_names_by_id.get(topic_id)
        return None if name is None else self._topics[name]

    def topic_names(self) -> list[str]:
        return sorted(self._topics)

    def partition(self, topic_id: str, partition_id: int) -> PartitionState | None:
        topic = self.topic_by_id(topic_id)
        return None if topic is None else topic.partitions.get(partition_id)

    def topic_configs(self, topic_name: str) -> Mapping[str, str]:
        """Configs set on the topic (defaults not included)."""
        return MappingProxyType(self._topic_configs.get(topic_name, {}))

    def broker_configs(self, resource_name: str) -> Mapping[str, str]:
        return MappingProxyType(self._broker_configs.get(resource_name, {}))

    def partitions(self) -> Iterator[PartitionView]:
        """Every partition, by topic name then partition id."""
        for name in sorted(self._topics):
            topic = self._topics[name]
            for partition_id in sorted(topic.partitions):
                yield PartitionView(
                    name, topic.topic_id, partition_id, topic.partitions[partition_id]
                )

    def partitions_led_by(self, broker_id: int) -> list[PartitionView]:
        return [p for p in self.partitions() if p.state.leader == broker_id]

    def partitions_with_isr_member(self, broker_id: int) -> list[PartitionView]:
        return [p for p in self.partitions() if broker_id in p.state.isr]

    def partitions_with_replica(self, broker_id: int) -> list[PartitionView]:
        return [p for p in self.partitions() if broker_id in p.state.replicas]

    def leaderless_partitions(self) -> list[PartitionView]:
        return [p for p in self.partitions() if not p.state.has_leader]

    def has_leaderships(self, broker_id: int) -> bool:
        return any(
            state.leader == broker_id
            for topic in self._topics.values()
            for state in topic.partitions.values()
        )


def merge_partition_change(
    old: PartitionState, r: PartitionChangeRecord, topic_name: str = "?"
) -> PartitionState:
    """The state ``r`` turns ``old`` into (Kafka's PartitionRegistration.merge): fields set in
    ``r`` replace the old ones, the partition epoch goes up by one, and the leader epoch by one
    when ``leader`` is set (even to the same broker). Checks nothing beyond the recovery state
    value; replay checks the result with the partition invariants."""
    # One constructor call (not a dataclasses.replace per field): a broker fenced with
    # 100,000 partitions applies this 100,000 times on the controller's event loop.
    has = r.HasField
    leader, leader_epoch = old.leader, old.leader_epoch
    if has("leader"):
        leader, leader_epoch = BrokerId(r.leader), LeaderEpoch(old.leader_epoch + 1)
    return PartitionState(
        replicas=_ids(r.replicas.values) if has("replicas") else old.replicas,
        isr=_ids(r.isr.values) if has("isr") else old.isr,
        leader=leader,
        leader_epoch=leader_epoch,
        partition_epoch=PartitionEpoch(old.partition_epoch + 1),
        removing_replicas=(
            _ids(r.removing_replicas.values) if has("removing_replicas") else old.removing_replicas
        ),
        adding_replicas=(
            _ids(r.adding_replicas.values) if has("adding_replicas") else old.adding_replicas
        ),
        leader_recovery_state=(
            _recovery_state(topic_name, r.partition_id, r.leader_recovery_state)
            if has("leader_recovery_state")
            else old.leader_recovery_state
        ),
    )


def _ids(values: Iterable[int]) -> tuple[BrokerId, ...]:
    return tuple(BrokerId(v) for v in values)


def _recovery_state(topic: str, partition_id: int, value: int) -> LeaderRecoveryState:
    try:
        return LeaderRecoveryState(value)
    except ValueError:
        raise MetadataReplayError(
            f"partition {topic}-{partition_id}: leader_recovery_state {value} is not 0 or 1"
        ) from None


def _check_partition(topic: str, partition_id: int, s: PartitionState) -> None:
    """Structural invariants every partition state must keep."""
    where = f"partition {topic}-{partition_id}"
    problem = None
    if not s.replicas:
        problem = "has no replicas"
    elif len(set(s.replicas)) != len(s.replicas) or min(s.replicas) < 0:
        problem = f"has duplicate or negative replicas {list(s.replicas)}"
    elif len(set(s.isr)) != len(s.isr) or not set(s.isr) <= set(s.replicas):
        problem = f"ISR {list(s.isr)} is not a duplicate-free subset of replicas {list(s.replicas)}"
    elif s.has_leader and s.leader not in s.isr:
        problem = f"leader {s.leader} is not in the ISR {list(s.isr)}"
    elif s.leader < -1:
        problem = f"has invalid leader {s.leader}"
    elif not set(s.removing_replicas) <= set(s.replicas) or not set(s.adding_replicas) <= set(
        s.replicas
    ):
        problem = "has adding/removing replicas outside its replicas"
    elif s.leader_epoch < 0 or s.partition_epoch < 0:
        problem = f"has negative epochs ({s.leader_epoch}, {s.partition_epoch})"
    if problem is not None:
        raise MetadataReplayError(f"{where} {problem}")
