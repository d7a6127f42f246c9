"""Kafka's consumer-group clients against the Kafka listener of a real cluster (one controller,
one broker): offsets committed by a consumer that assigns its partitions and resumed by the
next one with the same group.id (confluent-kafka)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from raftka.ops.local_cluster import LocalCluster
from tests.integration.support.brokers import start_broker_cluster, stop_broker_cluster

pytestmark = pytest.mark.integration

GROUP_SETTINGS = {
    "offsets_topic_num_partitions": 3,
    "group_consumer_session_timeout_ms": 3_000,
    "group_consumer_heartbeat_interval_ms": 500,
}


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("kafka-groups"),
        controllers=1,
        brokers=1,
        kafka=True,
        broker_settings=GROUP_SETTINGS,
    )
    try:
        yield c
    finally:
        stop_broker_cluster(c)


def bootstrap(cluster: LocalCluster) -> str:
    return ",".join(cluster.kafka_bootstrap_servers)


def create(cluster: LocalCluster, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(15)


def produce(cluster: LocalCluster, topic: str, per_partition: int, partitions: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap(cluster), "linger.ms": 5})
    for p in range(partitions):
        for i in range(per_partition):
            producer.produce(topic, value=f"{p}-{i}".encode(), partition=p)
    assert producer.flush(20) == 0


def read(consumer: Consumer, count: int, timeout_s: float = 20) -> list[tuple[int, int]]:
    """(partition, offset) of the next ``count`` records."""
    got: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            continue
        assert message.error() is None, message.error()
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None
        got.append((partition, offset))
    return got


def test_an_assigning_consumer_commits_and_the_next_one_resumes(
    kafka_cluster: LocalCluster,
) -> None:
    topic, partitions = "assigned", 2
    create(kafka_cluster, topic, partitions)
    produce(kafka_cluster, topic, 10, partitions)
    settings = {
        "bootstrap.servers": bootstrap(kafka_cluster),
        "group.id": "resumers",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    first = Consumer(settings)
    try:
        first.assign([TopicPartition(topic, p) for p in range(partitions)])
        seen = read(first, 2 * 10)
        assert sorted(seen) == [(p, o) for p in range(partitions) for o in range(10)]
        # Commit offset 6 on each partition, as if the records after it were not processed.
        positions = [TopicPartition(topic, p, 6) for p in range(partitions)]
        committed = first.commit(offsets=positions, asynchronous=False)
        assert committed is not None
        assert all(tp.error is None for tp in committed), committed
        read_back = first.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
        assert {tp.partition: tp.offset for tp in read_back} == {0: 6, 1: 6}
    finally:
        first.close()
    second = Consumer(settings)
    try:
        second.assign([TopicPartition(topic, p) for p in range(partitions)])
        resumed = read(second, 2 * 4)
        assert sorted(resumed) == [(p, o) for p in range(partitions) for o in range(6, 10)]
    finally:
        second.close()
