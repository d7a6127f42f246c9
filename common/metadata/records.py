"""Builders for metadata records, shared by the controller managers and snapshot writing.

Each builder returns a ``MetadataRecord`` (the oneof wrapper) ready to be put in a batch.
"""

from __future__ import annotations

from collections.abc import Iterable

from raftka.common.metadata.model import BrokerEndpoint, BrokerRegistration, PartitionState
from raftka.v1.common_pb2 import Endpoint, ResourceType
from raftka.v1.metadata_pb2 import (
    BrokerRegistrationChangeRecord,
    ConfigRecord,
    IntList,
    MetadataRecord,
    NoOpRecord,
    PartitionChangeRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    RemoveTopicRecord,
    TopicRecord,
    UnregisterBrokerRecord,
)

FENCE = 1
UNFENCE = -1
NO_CHANGE = 0
ENTER_CONTROLLED_SHUTDOWN = 1


def endpoints_to_proto(endpoints: Iterable[BrokerEndpoint]) -> list[Endpoint]:
    return [Endpoint(name=e.name, host=e.host, port=e.port) for e in endpoints]


def endpoints_from_proto(endpoints: Iterable[Endpoint]) -> tuple[BrokerEndpoint, ...]:
    return tuple(BrokerEndpoint(e.name, e.host, e.port) for e in endpoints)


def register_broker_record(registration: BrokerRegistration) -> MetadataRecord:
    """The record that (re)creates ``registration``; ``in_controlled_shutdown`` is not part of
    it (see ``registration_change_record``)."""
    return MetadataRecord(
        register_broker=RegisterBrokerRecord(
            broker_id=registration.broker_id,
            incarnation_id=registration.incarnation_id,
            broker_epoch=registration.epoch,
            endpoints=endpoints_to_proto(registration.endpoints),
            rack=registration.rack,
            fenced=registration.fenced,
        )
    )


def unregister_broker_record(broker_id: int, broker_epoch: int) -> MetadataRecord:
    return MetadataRecord(
        unregister_broker=UnregisterBrokerRecord(broker_id=broker_id, broker_epoch=broker_epoch)
    )


def registration_change_record(
    broker_id: int, broker_epoch: int, *, fenced: int = NO_CHANGE, in_controlled_shutdown: int = 0
) -> MetadataRecord:
    """``fenced``: FENCE, UNFENCE or NO_CHANGE; ``in_controlled_shutdown``: 0 or 1."""
    return MetadataRecord(
        broker_registration_change=BrokerRegistrationChangeRecord(
            broker_id=broker_id,
            broker_epoch=broker_epoch,
            fenced=fenced,
            in_controlled_shutdown=in_controlled_shutdown,
        )
    )


def topic_record(name: str, topic_id: str) -> MetadataRecord:
    return MetadataRecord(topic=TopicRecord(name=name, topic_id=topic_id))


def partition_record(topic_id: str, partition_id: int, state: PartitionState) -> MetadataRecord:
    return MetadataRecord(
        partition=PartitionRecord(
            partition_id=partition_id,
            topic_id=topic_id,
            replicas=state.replicas,
            isr=state.isr,
            removing_replicas=state.removing_replicas,
            adding_replicas=state.adding_replicas,
            leader=state.leader,
            leader_epoch=state.leader_epoch,
            partition_epoch=state.partition_epoch,
            leader_recovery_state=int(state.leader_recovery_state),
        )
    )


def partition_change_record(
    topic_id: str,
    partition_id: int,
    *,
    isr: Iterable[int] | None = None,
    leader: int | None = None,
    replicas: Iterable[int] | None = None,
    removing_replicas: Iterable[int] | None = None,
    adding_replicas: Iterable[int] | None = None,
    leader_recovery_state: int | None = None,
) -> MetadataRecord:
    """A PartitionChangeRecord; arguments left as None are "unchanged"."""
    change = PartitionChangeRecord(partition_id=partition_id, topic_id=topic_id)
    if isr is not None:
        change.isr.CopyFrom(IntList(values=isr))
    if leader is not None:
        change.leader = leader
    if replicas is not None:
        change.replicas.CopyFrom(IntList(values=replicas))
    if removing_replicas is not None:
        change.removing_replicas.CopyFrom(IntList(values=removing_replicas))
    if adding_replicas is not None:
        change.adding_replicas.CopyFrom(IntList(values=adding_replicas))
    if leader_recovery_state is not None:
        change.leader_recovery_state = leader_recovery_state
    return MetadataRecord(partition_change=change)


def remove_topic_record(topic_id: str) -> MetadataRecord:
    return MetadataRecord(remove_topic=RemoveTopicRecord(topic_id=topic_id))


def config_record(
    resource_type: ResourceType.ValueType, resource_name: str, name: str, value: str | None
) -> MetadataRecord:
    """Sets ``name`` to ``value``, or removes it when ``value`` is None."""
    record = ConfigRecord(resource_type=resource_type, resource_name=resource_name, name=name)
    if value is not None:
        record.value = value
    return MetadataRecord(config=record)


def topic_config_record(topic_name: str, name: str, value: str | None) -> MetadataRecord:
    return config_record(ResourceType.RESOURCE_TYPE_TOPIC, topic_name, name, value)


def producer_ids_record(broker_id: int, broker_epoch: int, next_producer_id: int) -> MetadataRecord:
    return MetadataRecord(
        producer_ids=ProducerIdsRecord(
            broker_id=broker_id, broker_epoch=broker_epoch, next_producer_id=next_producer_id
        )
    )


def no_op_record() -> MetadataRecord:
    return MetadataRecord(no_op=NoOpRecord())
