from __future__ import annotations

from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.records import topic_config_record, topic_record
from raftka.common.metrics.partitions import PartitionCounts, partition_counts
from raftka.v1.metadata_pb2 import MetadataBatch, MetadataRecord
from tests.unit.common.metadata.builders import partition


def _image(*records: MetadataRecord) -> MetadataImage:
    image = MetadataImage()
    image.apply_batch(MetadataBatch(records=records), 1)
    return image


IMAGE = _image(
    topic_record("a", "id-a"),
    topic_config_record("a", "min.insync.replicas", "2"),
    partition("id-a", 0, [1, 2, 3], leader=1),  # healthy
    partition("id-a", 1, [1, 2, 3], isr=[1, 2], leader=1),  # under-replicated, at min ISR
    partition("id-a", 2, [2, 3, 1], isr=[2], leader=2),  # under-replicated and under min ISR
    topic_record("b", "id-b"),  # min.insync.replicas 1 (default)
    partition("id-b", 0, [3], isr=[3], leader=-1),  # offline
)


def test_counts_over_every_partition() -> None:
    assert partition_counts(IMAGE) == PartitionCounts(
        partitions=4, under_replicated=2, under_min_isr=1, offline=1
    )


def test_counts_over_the_partitions_one_broker_leads() -> None:
    assert partition_counts(IMAGE, leader=1) == PartitionCounts(2, 1, 0, 0)
    assert partition_counts(IMAGE, leader=2) == PartitionCounts(1, 1, 1, 0)
    assert partition_counts(IMAGE, leader=3) == PartitionCounts()
