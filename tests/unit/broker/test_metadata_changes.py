"""MetadataChanges: which partitions a delta touched, so the replica manager reconciles those
and not every partition the broker hosts (everything after a broker-level record)."""

from __future__ import annotations

from raftka.broker.metadata_changes import MetadataChanges
from raftka.common.ids import BrokerId
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.model import PartitionState
from raftka.common.metadata.records import (
    config_record,
    no_op_record,
    partition_change_record,
    partition_record,
    registration_change_record,
    remove_topic_record,
    topic_config_record,
    topic_record,
)
from raftka.v1.common_pb2 import ResourceType

TID, OTHER = "AAAAAAAAAAAAAAAAAAAAAg", "AAAAAAAAAAAAAAAAAAAAAw"
STATE = PartitionState(replicas=(BrokerId(1),), isr=(BrokerId(1),), leader=BrokerId(1))


def image_with_topic() -> MetadataImage:
    records = [topic_record("events", TID), partition_record(TID, 0, STATE)]
    return MetadataImage.from_records([*records, partition_record(TID, 1, STATE)], 3)


def test_a_partition_change_touches_that_partition_only() -> None:
    changes = MetadataChanges()
    changes.note_records(image_with_topic(), [partition_change_record(TID, 1, isr=[1])])
    assert changes.partitions == {("events", 1)} and not changes.everything
    assert changes.covers("events", 1) and not changes.covers("events", 0)


def test_a_new_topic_is_touched_whole_with_its_partitions() -> None:
    changes = MetadataChanges()
    records = [topic_record("new", OTHER), partition_record(OTHER, 0, STATE)]
    changes.note_records(image_with_topic(), records)
    assert changes.topics == {"new"} and changes.partitions == set()
    assert changes.covers("new", 7) and not changes.covers("events", 0)


def test_deleted_topics_and_topic_configs_touch_the_topic() -> None:
    changes = MetadataChanges()
    image = image_with_topic()
    changes.note_records(image, [remove_topic_record(TID), no_op_record()])
    changes.note_records(image, [topic_config_record("other", "retention.ms", "1")])
    assert changes.topics == {"events", "other"} and not changes.everything


def test_broker_records_and_broker_configs_touch_everything() -> None:
    for record in (
        registration_change_record(2, 5, fenced=1),
        config_record(ResourceType.RESOURCE_TYPE_BROKER, "2", "x", "y"),
        partition_change_record("unknown-topic-id-AAAAA", 0, isr=[1]),
    ):
        changes = MetadataChanges()
        changes.note_records(image_with_topic(), [record])
        assert changes.everything, record
        assert changes.covers("anything", 3)


def test_merging_changes_keeps_both_and_everything_wins() -> None:
    a = MetadataChanges(partitions={("events", 0)})
    a.merge(MetadataChanges(topics={"t"}))
    assert a.topics == {"t"} and a.partitions == {("events", 0)} and bool(a)
    a.merge(MetadataChanges(everything=True))
    assert a.everything and not a.topics and not a.partitions
    assert not MetadataChanges()
