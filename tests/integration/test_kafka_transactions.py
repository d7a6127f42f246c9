"""confluent-kafka's transactions against the Kafka listener of a real cluster (one controller,
three brokers, topics of replication factor 3, so coordinators, partition leaders and markers
span brokers): a consume-transform-produce loop with read_committed, one transaction aborted on
purpose; read_committed and read_uncommitted consumers of its output; the group's committed
offsets; a second producer with the same transactional.id fencing the first; and
kafka-python's admin client listing and describing an open transaction and its producer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from kafka import TopicPartition as KafkaPythonPartition
from kafka.admin import KafkaAdminClient

from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub
from tests.integration.support.brokers import start_broker_cluster, stop_broker_cluster
from tests.integration.test_transaction_coordinator import on_coordinator

pytestmark = pytest.mark.integration

PARTITIONS = 3
RECORDS = 40
CHUNK = 10
TIMEOUT_S = 20


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("kafka-txn"), controllers=1, brokers=3, kafka=True
    )
    try:
        yield c
    finally:
        stop_broker_cluster(c)


def bootstrap(cluster: LocalCluster) -> str:
    return ",".join(cluster.kafka_bootstrap_servers)


def create(cluster: LocalCluster, *names: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    for future in admin.create_topics([NewTopic(n, PARTITIONS, 3) for n in names]).values():
        future.result(15)


def transactional(cluster: LocalCluster, transactional_id: str) -> Producer:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap(cluster),
            "transactional.id": transactional_id,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
        }
    )
    producer.init_transactions(TIMEOUT_S)
    return producer


def consumer(
    cluster: LocalCluster, topic: str, isolation: str, group: str, *, subscribe: bool = False
) -> Consumer:
    """A consumer of every partition of ``topic`` from its start: assigned, or (``subscribe``)
    a member of ``group`` under KIP-848's protocol."""
    settings = {
        "bootstrap.servers": bootstrap(cluster),
        "group.id": group,
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }
    if subscribe:
        c = Consumer({**settings, "group.protocol": "consumer"})
        c.subscribe([topic])
    else:
        c = Consumer(settings)
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    return c


def read_to_end(c: Consumer, topic: str) -> list[tuple[bytes, bytes]]:
    """Every record up to the end of each partition (its stable end for read_committed): the
    end is reached when each partition has said EOF at its current high watermark."""
    got: list[tuple[bytes, bytes]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + TIMEOUT_S
    while len(at_end) < PARTITIONS:
        assert time.monotonic() < deadline, f"{topic}: only partitions {at_end} reached the end"
        message = c.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is not None and error.code() == KafkaError._PARTITION_EOF:
            at_end.add(message.partition())  # type: ignore[arg-type]
            continue
        assert error is None, error
        at_end.discard(message.partition())
        key, value = message.key(), message.value()
        assert key is not None and value is not None
        got.append((key, value))
    return got


def fill_input(cluster: LocalCluster, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all"})
    for i in range(RECORDS):
        producer.produce(topic, key=f"k-{i}".encode(), value=f"v-{i}".encode())
    assert producer.flush(TIMEOUT_S) == 0


def poll_chunk(c: Consumer, wanted: int) -> list[object]:
    chunk: list[object] = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(chunk) < wanted:
        assert time.monotonic() < deadline, f"only {len(chunk)} of {wanted} records arrived"
        message = c.poll(0.5)
        if message is None or message.error() is not None:
            continue  # EOF of one partition while others still have records
        chunk.append(message)
    return chunk


async def committed_offsets(cluster: LocalCluster, group: str, topic: str) -> dict[int, int]:
    request = gpb.OffsetFetchRequest(
        group_id=group,
        topics=[gpb.GroupTopicPartitions(topic=topic, partitions=list(range(PARTITIONS)))],
        require_stable=True,
    )
    response: gpb.OffsetFetchResponse = await on_coordinator(
        cluster,
        group,
        lambda ch: GroupServiceStub(ch).OffsetFetch(request, timeout=5),
        key_type=gpb.COORDINATOR_TYPE_GROUP,
    )
    assert response.error_code == ErrorCode.NONE, response.error_message
    return {p.partition: p.offset for t in response.topics for p in t.partitions}


def commit_error(producer: Producer) -> KafkaError:
    """The error commit_transaction raises (the test fails if it commits)."""
    try:
        producer.commit_transaction(TIMEOUT_S)
    except KafkaException as e:
        error: KafkaError = e.args[0]
        return error
    raise AssertionError("commit_transaction of a fenced producer succeeded")


@pytest.mark.parametrize("mode", ["assign", "subscribe"])
def test_consume_transform_produce_is_exactly_once_with_one_transaction_aborted(
    kafka_cluster: LocalCluster, mode: str
) -> None:
    """``subscribe``: the reader is a KIP-848 group member, so its offsets are committed with
    its member id and epoch (TxnOffsetCommit v3's generation)."""
    source, sink, group = f"ctp-in-{mode}", f"ctp-out-{mode}", f"ctp-{mode}"
    create(kafka_cluster, source, sink)
    fill_input(kafka_cluster, source)
    producer = transactional(kafka_cluster, f"ctp-{mode}")
    reader = consumer(kafka_cluster, source, "read_committed", group, subscribe=mode == "subscribe")
    aborted: set[bytes] = set()
    done = 0
    try:
        while done < RECORDS:
            if done == CHUNK:  # midway: a transaction written, then aborted on purpose
                producer.begin_transaction()
                for i in range(5):
                    value = f"ABORTED-{i}".encode()
                    producer.produce(sink, key=f"a-{i}".encode(), value=value)
                    aborted.add(value)
                producer.flush(TIMEOUT_S)
                producer.abort_transaction(TIMEOUT_S)
            chunk = poll_chunk(reader, min(CHUNK, RECORDS - done))
            producer.begin_transaction()
            for message in chunk:
                value = message.value()  # type: ignore[attr-defined]
                producer.produce(sink, key=message.key(), value=value.upper())  # type: ignore[attr-defined]
            producer.send_offsets_to_transaction(
                reader.position(reader.assignment()), reader.consumer_group_metadata(), TIMEOUT_S
            )
            producer.commit_transaction(TIMEOUT_S)
            done += len(chunk)
    finally:
        reader.close()
        producer.close()

    committed_reader = consumer(kafka_cluster, sink, "read_committed", f"check-{mode}")
    try:
        committed = read_to_end(committed_reader, sink)
    finally:
        committed_reader.close()
    assert sorted(v for _, v in committed) == sorted(f"V-{i}".encode() for i in range(RECORDS))
    assert {k for k, _ in committed} == {f"k-{i}".encode() for i in range(RECORDS)}

    uncommitted_reader = consumer(kafka_cluster, sink, "read_uncommitted", f"check-all-{mode}")
    try:
        everything = read_to_end(uncommitted_reader, sink)
    finally:
        uncommitted_reader.close()
    assert aborted <= {v for _, v in everything}
    assert len(everything) == RECORDS + len(aborted)

    probe = Consumer({"bootstrap.servers": bootstrap(kafka_cluster), "group.id": "probe"})
    try:
        high = {
            p: probe.get_watermark_offsets(TopicPartition(source, p), TIMEOUT_S)[1]
            for p in range(PARTITIONS)
        }
    finally:
        probe.close()
    assert asyncio.run(committed_offsets(kafka_cluster, group, source)) == high


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(
    kafka_cluster: LocalCluster,
) -> None:
    topic = "fenced"
    create(kafka_cluster, topic)
    first = transactional(kafka_cluster, "fence-me")
    second: Producer | None = None
    try:
        first.begin_transaction()
        first.produce(topic, key=b"k", value=b"first")
        assert first.flush(TIMEOUT_S) == 0
        second = transactional(kafka_cluster, "fence-me")  # aborts the first's transaction
        second.begin_transaction()
        second.produce(topic, key=b"k", value=b"second")
        second.commit_transaction(TIMEOUT_S)
        error = commit_error(first)
    finally:
        with contextlib.suppress(KafkaException):  # a fenced producer's close says so again
            first.close()
        if second is not None:
            second.close()
    assert error.fatal(), error
    assert error.code() in (
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    ), error

    check = consumer(kafka_cluster, topic, "read_committed", "check-fenced")
    try:
        assert [v for _, v in read_to_end(check, topic)] == [b"second"]
    finally:
        check.close()


def test_kafka_python_admin_describes_an_open_transaction_and_its_producer(
    kafka_cluster: LocalCluster,
) -> None:
    topic, tid = "described", "described-1"
    create(kafka_cluster, topic)
    producer = transactional(kafka_cluster, tid)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap(kafka_cluster))
    try:
        producer.begin_transaction()
        producer.produce(topic, key=b"k", value=b"open", partition=1)
        assert producer.flush(TIMEOUT_S) == 0
        listed = {t.transactional_id: t for ts in admin.list_transactions().values() for t in ts}
        assert listed[tid].state == "Ongoing"
        described = admin.describe_transactions([tid])[tid]
        assert described.state == "Ongoing" and described.producer_id == listed[tid].producer_id
        assert described.topic_partitions == {KafkaPythonPartition(topic, 1)}
        state = admin.describe_producers([KafkaPythonPartition(topic, 1)])
        (active,) = state[KafkaPythonPartition(topic, 1)].active_producers
        assert active.producer_id == described.producer_id
        assert active.producer_epoch == described.producer_epoch
        assert active.current_transaction_start_offset == 0 and active.last_sequence == 0
        producer.commit_transaction(TIMEOUT_S)
        assert admin.describe_transactions([tid])[tid].state in ("PrepareCommit", "CompleteCommit")
    finally:
        admin.close()
        producer.close()
