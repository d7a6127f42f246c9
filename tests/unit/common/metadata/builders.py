"""Small record builders for image tests."""

from __future__ import annotations

from collections.abc import Sequence

from raftka.common.ids import BrokerEpoch, BrokerId, LeaderEpoch, PartitionEpoch
from raftka.common.metadata.model import (
    NO_LEADER,
    BrokerEndpoint,
    BrokerRegistration,
    LeaderRecoveryState,
    PartitionState,
)
from raftka.common.metadata.records import partition_record, register_broker_record
from raftka.v1.metadata_pb2 import MetadataRecord, PartitionRecord


def B(*ids: int) -> tuple[BrokerId, ...]:
    return tuple(BrokerId(i) for i in ids)


def broker(
    broker_id: int,
    *,
    epoch: int = 1,
    incarnation: str = "inc",
    rack: str = "",
    fenced: bool = True,
) -> MetadataRecord:
    return register_broker_record(
        BrokerRegistration(
            broker_id=BrokerId(broker_id),
            epoch=BrokerEpoch(epoch),
            incarnation_id=incarnation,
            endpoints=(BrokerEndpoint("CLIENT", f"host{broker_id}", 9000 + broker_id),),
            rack=rack,
            fenced=fenced,
        )
    )


def partition(
    topic_id: str,
    partition_id: int,
    replicas: Sequence[int],
    *,
    isr: Sequence[int] | None = None,
    leader: int = -1,
    adding: Sequence[int] = (),
    removing: Sequence[int] = (),
    recovery: int = 0,
    leader_epoch: int = 0,
    partition_epoch: int = 0,
) -> MetadataRecord:
    if recovery not in (0, 1):  # bypass the enum to build a corrupt record
        return MetadataRecord(
            partition=PartitionRecord(
                topic_id=topic_id,
                partition_id=partition_id,
                replicas=replicas,
                isr=replicas if isr is None else isr,
                leader=leader,
                leader_recovery_state=recovery,
            )
        )
    state = PartitionState(
        replicas=B(*replicas),
        isr=B(*(replicas if isr is None else isr)),
        leader=BrokerId(leader) if leader != -1 else NO_LEADER,
        leader_epoch=LeaderEpoch(leader_epoch),
        partition_epoch=PartitionEpoch(partition_epoch),
        adding_replicas=B(*adding),
        removing_replicas=B(*removing),
        leader_recovery_state=LeaderRecoveryState(recovery),
    )
    return partition_record(topic_id, partition_id, state)
