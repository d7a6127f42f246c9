from __future__ import annotations

from prometheus_client import CollectorRegistry

from raftka.broker.metrics import (
    BrokerCollector,
    BrokerView,
    CommittedOffset,
    HostedLog,
    TopicTraffic,
)
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.records import topic_config_record, topic_record
from raftka.v1.metadata_pb2 import MetadataBatch, MetadataRecord
from tests.unit.common.metadata.builders import partition


def _image(*records: MetadataRecord) -> MetadataImage:
    image = MetadataImage()
    image.apply_batch(MetadataBatch(records=records), 1)
    return image


IMAGE = _image(
    topic_record("t", "id"),
    topic_config_record("t", "min.insync.replicas", "2"),
    partition("id", 0, [4, 5, 6], leader=4),
    partition("id", 1, [4, 5, 6], isr=[4], leader=4),
    partition("id", 2, [5, 6, 4], isr=[5, 6], leader=5),
)


def test_bytes_in_and_out_are_counted_per_topic() -> None:
    registry = CollectorRegistry()
    traffic = TopicTraffic(registry)
    traffic.bytes_in("t", 100)
    traffic.bytes_in("t", 20)
    traffic.bytes_in("u", 5)
    traffic.bytes_out("t", 7)
    get = registry.get_sample_value
    assert get("raftka_broker_topic_bytes_in_total", {"topic": "t"}) == 120
    assert get("raftka_broker_topic_bytes_in_total", {"topic": "u"}) == 5
    assert get("raftka_broker_topic_bytes_out_total", {"topic": "t"}) == 7


def test_partition_gauges_health_of_led_partitions_and_group_lag() -> None:
    registry = CollectorRegistry()
    registry.register(
        BrokerCollector(
            BrokerView(
                broker_id=4,
                image=lambda: IMAGE,
                hosted=lambda: [
                    HostedLog("t", 0, 1000, 0, 120, 100),
                    HostedLog("t", 1, 10, 5, 7, 7),
                ],
                committed_offsets=lambda: [
                    CommittedOffset("g", "t", 0, 60),
                    CommittedOffset("g", "t", 1, 9),  # ahead of this replica's HW: lag 0
                    CommittedOffset("g", "t", 2, 3),  # not hosted here: left out
                ],
            )
        )
    )
    get = registry.get_sample_value
    assert get("raftka_broker_partitions") == 2
    assert get("raftka_broker_leader_partitions") == 2
    assert get("raftka_broker_under_replicated_partitions") == 1
    assert get("raftka_broker_under_min_isr_partitions") == 1
    p0 = {"topic": "t", "partition": "0"}
    assert get("raftka_broker_log_size_bytes", p0) == 1000
    assert get("raftka_broker_log_start_offset", p0) == 0
    assert get("raftka_broker_log_end_offset", p0) == 120
    assert get("raftka_broker_high_watermark", p0) == 100
    assert get("raftka_group_lag", {"group": "g", **p0}) == 40
    assert get("raftka_group_lag", {"group": "g", "topic": "t", "partition": "1"}) == 0
    assert get("raftka_group_lag", {"group": "g", "topic": "t", "partition": "2"}) is None
