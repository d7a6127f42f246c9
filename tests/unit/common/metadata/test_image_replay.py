from __future__ import annotations

import pytest

from raftka.common.ids import BrokerId, LeaderEpoch
from raftka.common.metadata.errors import MetadataReplayError
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.model import (
    NO_LEADER,
    BrokerEndpoint,
    LeaderRecoveryState,
    PartitionState,
)
from raftka.common.metadata.records import (
    FENCE,
    UNFENCE,
    config_record,
    no_op_record,
    partition_change_record,
    partition_record,
    producer_ids_record,
    registration_change_record,
    remove_topic_record,
    topic_config_record,
    topic_record,
    unregister_broker_record,
)
from raftka.v1.common_pb2 import Endpoint, ResourceType
from raftka.v1.metadata_pb2 import (
    MetadataBatch,
    MetadataRecord,
    RegisterBrokerRecord,
)

from .builders import B, broker, partition


def _image(*records: MetadataRecord, index: int = 1) -> MetadataImage:
    image = MetadataImage()
    image.apply_batch(MetadataBatch(records=records), index)
    return image


def test_register_broker_creates_fenced_registration() -> None:
    record = MetadataRecord(
        register_broker=RegisterBrokerRecord(
            broker_id=3,
            incarnation_id="inc-a",
            broker_epoch=7,
            endpoints=[Endpoint(name="CLIENT", host="h", port=9092)],
            rack="r1",
            fenced=True,
        )
    )
    image = _image(record, index=7)
    reg = image.broker(3)
    assert reg is not None
    assert (reg.epoch, reg.incarnation_id, reg.rack, reg.fenced) == (7, "inc-a", "r1", True)
    assert reg.endpoint("CLIENT") == BrokerEndpoint("CLIENT", "h", 9092)
    assert image.last_applied_index == 7
    assert not image.is_active(3)


def test_register_broker_replaces_the_earlier_registration() -> None:
    image = _image(broker(1, epoch=1, fenced=False), index=1)
    image.apply_batch(
        MetadataBatch(records=[registration_change_record(1, 1, in_controlled_shutdown=1)]),
        2,
    )
    image.apply_batch(MetadataBatch(records=[broker(1, epoch=3, incarnation="new")]), 3)
    reg = image.broker(1)
    assert reg is not None
    assert (reg.epoch, reg.incarnation_id, reg.fenced, reg.in_controlled_shutdown) == (
        3,
        "new",
        True,
        False,
    )


def test_registration_change_fences_unfences_and_enters_controlled_shutdown() -> None:
    image = _image(broker(1, epoch=1))
    image.apply(registration_change_record(1, 1, fenced=UNFENCE), 2)
    assert image.is_active(1)
    assert [b.broker_id for b in image.unfenced_brokers()] == [1]
    image.apply(registration_change_record(1, 1, in_controlled_shutdown=1), 3)
    reg = image.broker(1)
    assert reg is not None and not reg.fenced and reg.in_controlled_shutdown
    assert not image.is_active(1)
    assert image.active_brokers() == []
    assert [b.broker_id for b in image.unfenced_brokers()] == [1]
    image.apply(registration_change_record(1, 1, fenced=FENCE), 4)
    reg = image.broker(1)
    assert reg is not None and reg.fenced and reg.in_controlled_shutdown


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        (registration_change_record(9, 1, fenced=FENCE), "not registered"),
        (registration_change_record(1, 2, fenced=FENCE), "registered epoch is 1"),
        (registration_change_record(1, 1, fenced=2), "fenced=2"),
        (registration_change_record(1, 1, in_controlled_shutdown=5), "in_controlled_shutdown=5"),
        (unregister_broker_record(1, 5), "registered epoch is 1"),
        (unregister_broker_record(4, 1), "not registered"),
    ],
)
def test_bad_broker_records_raise(record: MetadataRecord, fragment: str) -> None:
    image = _image(broker(1, epoch=1))
    with pytest.raises(MetadataReplayError, match=fragment):
        image.apply(record, 2)


def test_unregister_removes_the_broker() -> None:
    image = _image(broker(1, epoch=1), broker(2, epoch=1))
    image.apply(unregister_broker_record(1, 1), 2)
    assert image.broker(1) is None
    assert list(image.brokers) == [2]


def test_topic_partitions_and_queries() -> None:
    image = _image(
        broker(1, fenced=False),
        broker(2, fenced=False),
        broker(3, fenced=False),
        topic_record("t", "id-t"),
        partition("id-t", 0, [1, 2, 3], leader=1),
        partition("id-t", 1, [2, 3, 1], leader=2),
        partition("id-t", 2, [3, 1], isr=[3], leader=3),
    )
    topic = image.topic("t")
    assert topic is not None and image.topic_by_id("id-t") is topic
    assert topic.replication_factor == 3
    assert image.partition("id-t", 1) == PartitionState(
        replicas=B(2, 3, 1), isr=B(2, 3, 1), leader=BrokerId(2)
    )
    assert [p.partition_id for p in image.partitions_led_by(3)] == [2]
    assert [p.partition_id for p in image.partitions_with_isr_member(1)] == [0, 1]
    assert [p.partition_id for p in image.partitions_with_replica(1)] == [0, 1, 2]
    assert image.has_leaderships(2) and not image.has_leaderships(4)
    assert image.leaderless_partitions() == []


def test_partition_change_epoch_arithmetic() -> None:
    image = _image(topic_record("t", "id"), partition("id", 0, [1, 2, 3], leader=1))
    # ISR shrink without a leader change: partition epoch +1, leader epoch unchanged.
    image.apply(partition_change_record("id", 0, isr=[1, 2]), 2)
    state = image.partition("id", 0)
    assert state is not None
    assert (state.isr, state.leader, state.leader_epoch, state.partition_epoch) == (
        B(1, 2),
        1,
        0,
        1,
    )
    # Leader set (even to -1): both epochs +1.
    image.apply(partition_change_record("id", 0, leader=2), 3)
    image.apply(partition_change_record("id", 0, isr=[2], leader=-1), 4)
    state = image.partition("id", 0)
    assert state is not None
    assert (state.isr, state.leader, state.leader_epoch, state.partition_epoch) == (
        B(2),
        NO_LEADER,
        2,
        3,
    )
    # An empty change still bumps the partition epoch (every record is a change).
    image.apply(partition_change_record("id", 0), 5)
    state = image.partition("id", 0)
    assert state is not None and (state.leader_epoch, state.partition_epoch) == (2, 4)
    image.apply(partition_change_record("id", 0, leader=2, leader_recovery_state=1), 6)
    state = image.partition("id", 0)
    assert state is not None
    assert state.leader_recovery_state is LeaderRecoveryState.RECOVERING
    assert (state.leader, state.leader_epoch, state.partition_epoch) == (2, 3, 5)


def test_partition_change_can_set_empty_list_distinct_from_unset() -> None:
    image = _image(topic_record("t", "id"), partition("id", 0, [1, 2, 3], adding=[3], leader=1))
    image.apply(partition_change_record("id", 0, adding_replicas=[]), 2)
    state = image.partition("id", 0)
    assert state is not None and state.adding_replicas == () and state.isr == B(1, 2, 3)


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        (partition("nope", 0, [1]), "unknown topic id 'nope'"),
        (partition("id", -1, [1]), "negative partition id"),
        (partition("id", 1, []), "has no replicas"),
        (partition("id", 1, [1, 1]), "duplicate or negative replicas"),
        (partition("id", 1, [1, 2], isr=[3]), "not a duplicate-free subset"),
        (partition("id", 1, [1, 2], isr=[1], leader=2), "leader 2 is not in the ISR"),
        (partition("id", 1, [1, 2], removing=[3]), "outside its replicas"),
        (partition("id", 1, [1], recovery=7), "leader_recovery_state 7"),
        (partition_change_record("nope", 0, isr=[1]), "unknown topic id"),
        (partition_change_record("id", 5, isr=[1]), "unknown partition 5"),
        (partition_change_record("id", 0, leader=9), "leader 9 is not in the ISR"),
        (partition_change_record("id", 0, isr=[4]), "not a duplicate-free subset"),
        (remove_topic_record("nope"), "unknown topic id"),
        (topic_record("t", "other"), "already exists"),
        (topic_record("u", "id"), "reuses the id"),
        (topic_config_record("nope", "retention.ms", "1"), "unknown topic 'nope'"),
        (config_record(ResourceType.RESOURCE_TYPE_UNKNOWN, "x", "a", "1"), "resource type"),
        (MetadataRecord(), "no record set"),
    ],
)
def test_invalid_records_raise_clear_errors(record: MetadataRecord, fragment: str) -> None:
    image = _image(topic_record("t", "id"), partition("id", 0, [1, 2], leader=1))
    with pytest.raises(MetadataReplayError, match=fragment):
        image.apply(record, 2)


def test_remove_topic_drops_partitions_and_configs() -> None:
    image = _image(
        topic_record("t", "id"),
        partition("id", 0, [1], leader=1),
        topic_config_record("t", "retention.ms", "1000"),
    )
    assert image.topic_configs("t") == {"retention.ms": "1000"}
    image.apply(remove_topic_record("id"), 2)
    assert image.topic("t") is None and image.topic_by_id("id") is None
    assert image.topic_configs("t") == {}
    # The name can be reused, and configs of the old topic do not come back.
    image.apply(topic_record("t", "id2"), 3)
    assert image.topic_configs("t") == {}
    assert image.partition("id", 0) is None


def test_config_set_and_delete() -> None:
    image = _image(topic_record("t", "id"), partition("id", 0, [1], leader=1))
    image.apply(topic_config_record("t", "retention.ms", "5"), 2)
    image.apply(topic_config_record("t", "segment.ms", "6"), 2)
    image.apply(topic_config_record("t", "retention.ms", None), 3)
    assert image.topic_configs("t") == {"segment.ms": "6"}
    image.apply(topic_config_record("t", "retention.ms", None), 3)  # deleting again is harmless
    image.apply(config_record(ResourceType.RESOURCE_TYPE_BROKER, "1", "x", "y"), 4)
    assert image.broker_configs("1") == {"x": "y"}


def test_producer_ids_only_move_forward() -> None:
    image = _image(producer_ids_record(1, 1, 1000))
    assert image.next_producer_id == 1000
    image.apply(producer_ids_record(2, 1, 2000), 2)
    assert image.next_producer_id == 2000
    with pytest.raises(MetadataReplayError, match="back from 2000 to 2000"):
        image.apply(producer_ids_record(2, 1, 2000), 3)


def test_index_must_not_go_backwards() -> None:
    image = _image(no_op_record(), index=5)
    assert image.last_applied_index == 5
    with pytest.raises(MetadataReplayError, match="not after the last applied index 5"):
        image.apply_batch(MetadataBatch(records=[no_op_record()]), 5)
    with pytest.raises(MetadataReplayError, match="before the last applied index"):
        image.apply(no_op_record(), 4)
    image.apply_batch(MetadataBatch(), 6)  # an empty batch only advances the index
    assert image.last_applied_index == 6


def test_copy_is_independent() -> None:
    image = _image(
        broker(1, fenced=False),
        topic_record("t", "id"),
        partition("id", 0, [1], leader=1),
        topic_config_record("t", "retention.ms", "5"),
    )
    copy = image.copy()
    assert copy == image
    copy.apply(partition_change_record("id", 0, leader=-1), 2)
    copy.apply(topic_config_record("t", "retention.ms", "7"), 2)
    copy.apply(registration_change_record(1, 1, fenced=FENCE), 2)
    copy.apply(topic_record("u", "id-u"), 2)
    assert copy != image
    state = image.partition("id", 0)
    assert state is not None and state.leader == 1
    assert image.topic_configs("t") == {"retention.ms": "5"}
    assert image.is_active(1)
    assert image.topic("u") is None
    assert image.last_applied_index == 1


def test_read_only_views() -> None:
    image = _image(broker(1), topic_record("t", "id"))
    with pytest.raises(TypeError):
        image.brokers[BrokerId(2)] = image.brokers[BrokerId(1)]  # type: ignore[index]
    with pytest.raises(TypeError):
        image.topic_configs("t")["x"] = "y"  # type: ignore[index]


def test_partition_record_replaces_existing_partition() -> None:
    image = _image(topic_record("t", "id"), partition("id", 0, [1, 2], leader=1))
    state = PartitionState(
        replicas=B(2, 1), isr=B(2), leader=BrokerId(2), leader_epoch=LeaderEpoch(4)
    )
    image.apply(partition_record("id", 0, state), 2)
    assert image.partition("id", 0) == state


def test_register_rejects_negative_broker_id() -> None:
    with pytest.raises(MetadataReplayError, match="negative broker id"):
        _image(register_broker_record_for(-1))


def register_broker_record_for(broker_id: int) -> MetadataRecord:
    return MetadataRecord(
        register_broker=RegisterBrokerRecord(broker_id=broker_id, incarnation_id="x", fenced=True)
    )
