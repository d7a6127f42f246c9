"""Kafka's own clients against the Kafka protocol listener of a real cluster (one controller,
one broker): kcat's metadata, topics made with confluent-kafka's admin client, keyed records
produced by confluent-kafka (idempotent, acks=all, every compression codec), kafka-python
(acks=all, gzip) and aiokafka (idempotent, acks=all, zstd) landing on the murmur2 partitions
Raftka's own client picks, and each client reading them back from assigned partitions with
their offsets. Every consume goes through the zero-copy Fetch path (records sent from the
segment files with sendfile), as the broker's counter of those bytes shows."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AioPartition
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaPythonPartition

from raftka.client.producer.partitioner import partition_for_key
from raftka.ops.local_cluster import LocalCluster
from tests.integration.support.brokers import start_broker_cluster, stop_broker_cluster
from tests.integration.test_metrics import scrape, value

pytestmark = pytest.mark.integration

PARTITIONS = 3
RECORDS = 30


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("kafka"), controllers=1, brokers=1, kafka=True, metrics=True
    )
    try:
        yield c
    finally:
        stop_broker_cluster(c)


def zero_copy_bytes(cluster: LocalCluster) -> float:
    (broker_id,) = cluster.brokers
    samples = scrape(str(cluster.node(broker_id).metrics_url))
    return value(samples, "raftka_broker_kafka_fetch_zero_copy_bytes_total")


@contextmanager
def through_sendfile(cluster: LocalCluster) -> Iterator[None]:
    """The block's fetches sent records from the segment files (sendfile)."""
    before = zero_copy_bytes(cluster)
    yield
    assert zero_copy_bytes(cluster) > before, "no records went out through sendfile"


def bootstrap(cluster: LocalCluster) -> str:
    return ",".join(cluster.kafka_bootstrap_servers)


def create(cluster: LocalCluster, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    for future in admin.create_topics([NewTopic(name, PARTITIONS, 1)]).values():
        future.result(15)


def produce_confluent(
    cluster: LocalCluster, topic: str, codec: str
) -> dict[bytes, tuple[int, int]]:
    """Key -> (partition, offset) of RECORDS keyed records, as their delivery reports say."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap(cluster),
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": codec,
            "linger.ms": 5,
            # Java's (and Raftka's) murmur2 partitioner; librdkafka's default hashes with CRC32.
            "partitioner": "murmur2_random",
        }
    )
    placed: dict[bytes, tuple[int, int]] = {}
    errors: list[object] = []

    def delivered(error: object, message: object) -> None:
        if error is not None:
            errors.append(error)
        else:
            placed[message.key()] = (message.partition(), message.offset())  # type: ignore[attr-defined]

    for i in range(RECORDS):
        producer.produce(
            topic, key=f"key-{i}".encode(), value=f"{codec}-{i}".encode(), on_delivery=delivered
        )
    assert producer.flush(20) == 0
    assert errors == []
    return placed


def consume_confluent(
    cluster: LocalCluster, topic: str, count: int
) -> list[tuple[int, int, bytes, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap(cluster), "group.id": "unused", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got: list[tuple[int, int, bytes, bytes]] = []
    deadline = time.monotonic() + 20
    try:
        while len(got) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            partition, offset = message.partition(), message.offset()
            key, value = message.key(), message.value()
            assert partition is not None and offset is not None and key and value is not None
            got.append((partition, offset, key, value))
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_confluent_kafka_produces_idempotently_to_raftka_partitions(
    kafka_cluster: LocalCluster, codec: str
) -> None:
    topic = f"confluent-{codec}"
    create(kafka_cluster, topic)
    placed = produce_confluent(kafka_cluster, topic, codec)
    assert len(placed) == RECORDS
    for key, (partition, _) in placed.items():
        assert partition == partition_for_key(key, PARTITIONS), key
    with through_sendfile(kafka_cluster):
        got = consume_confluent(kafka_cluster, topic, RECORDS)
    assert sorted((p, o, k) for p, o, k, _ in got) == sorted(
        (p, o, k) for k, (p, o) in placed.items()
    )
    assert {k: v for _, _, k, v in got} == {
        f"key-{i}".encode(): f"{codec}-{i}".encode() for i in range(RECORDS)
    }
    # Offsets in each partition run 0, 1, 2, ... with no gap.
    for p in range(PARTITIONS):
        offsets = sorted(o for q, o, _, _ in got if q == p)
        assert offsets == list(range(len(offsets)))


def test_kafka_python_produces_and_consumes(kafka_cluster: LocalCluster) -> None:
    topic = "kafka-python"
    create(kafka_cluster, topic)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap(kafka_cluster), acks="all", compression_type="gzip"
    )
    futures = {
        f"key-{i}".encode(): producer.send(topic, key=f"key-{i}".encode(), value=f"kp-{i}".encode())
        for i in range(RECORDS)
    }
    producer.flush(20)
    placed = {k: f.get(timeout=20) for k, f in futures.items()}
    producer.close()
    for key, meta in placed.items():
        assert meta.partition == partition_for_key(key, PARTITIONS), key
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap(kafka_cluster), enable_auto_commit=False, group_id=None
    )
    consumer.assign([KafkaPythonPartition(topic, p) for p in range(PARTITIONS)])
    consumer.seek_to_beginning()
    got: dict[bytes, tuple[int, int, bytes]] = {}
    deadline = time.monotonic() + 20
    with through_sendfile(kafka_cluster):
        while len(got) < RECORDS and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    got[r.key] = (r.partition, r.offset, r.value)
    consumer.close()
    assert got == {
        k: (meta.partition, meta.offset, b"kp-" + k.split(b"-")[1]) for k, meta in placed.items()
    }
    # The same records read by confluent-kafka: two clients agree on the stored bytes.
    assert len(consume_confluent(kafka_cluster, topic, RECORDS)) == RECORDS


@pytest.mark.skipif(
    shutil.which("kcat") is None,
    reason="kcat is not installed (Debian package kcat; scripts/setup-env.sh installs it as root)",
)
def test_kcat_lists_brokers_and_topics_and_consumes(kafka_cluster: LocalCluster) -> None:
    create(kafka_cluster, "kcat-listed")
    out = subprocess.run(
        ["kcat", "-b", bootstrap(kafka_cluster), "-L", "-t", "kcat-listed", "-m", "10"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    (broker_id,) = kafka_cluster.brokers
    assert f"broker {broker_id} at {bootstrap(kafka_cluster)}" in out
    assert f'topic "kcat-listed" with {PARTITIONS} partitions' in out
    assert out.count(f"leader {broker_id}, replicas: {broker_id}, isrs: {broker_id}") == PARTITIONS
    placed = produce_confluent(kafka_cluster, "kcat-listed", "none")
    with through_sendfile(kafka_cluster):
        consumed = subprocess.run(
            [
                *("kcat", "-C", "-b", bootstrap(kafka_cluster), "-t", "kcat-listed"),
                *("-o", "beginning", "-e", "-q", "-f", "%p %o %k\\n"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    assert sorted(consumed.split("\n")[:-1]) == sorted(
        f"{p} {o} {k.decode()}" for k, (p, o) in placed.items()
    )


def test_aiokafka_produces_idempotently_and_consumes(kafka_cluster: LocalCluster) -> None:
    topic = "aiokafka"
    create(kafka_cluster, topic)

    async def run() -> tuple[dict[bytes, tuple[int, int]], dict[bytes, tuple[int, int, bytes]]]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap(kafka_cluster),
            acks="all",
            enable_idempotence=True,
            compression_type="zstd",
        )
        await producer.start()
        try:
            placed = {}
            for i in range(RECORDS):
                key = f"key-{i}".encode()
                meta = await producer.send_and_wait(topic, key=key, value=f"aio-{i}".encode())
                placed[key] = (meta.partition, meta.offset)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap(kafka_cluster), enable_auto_commit=False
        )
        await consumer.start()
        got: dict[bytes, tuple[int, int, bytes]] = {}
        try:
            consumer.assign([AioPartition(topic, p) for p in range(PARTITIONS)])
            await consumer.seek_to_beginning()
            deadline = time.monotonic() + 20
            while len(got) < RECORDS and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        assert r.key is not None and r.value is not None
                        got[r.key] = (r.partition, r.offset, r.value)
        finally:
            await consumer.stop()
        return placed, got

    with through_sendfile(kafka_cluster):
        placed, got = asyncio.run(asyncio.wait_for(run(), 60))
    for key, (partition, _) in placed.items():
        assert partition == partition_for_key(key, PARTITIONS), key
    assert got == {k: (p, o, b"aio-" + k.split(b"-")[1]) for k, (p, o) in placed.items()}
