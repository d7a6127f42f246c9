"""Kafka's consumer-group clients against the Kafka listener of a real cluster (one controller,
one broker): a KIP-848 group of three confluent-kafka members (processes of their own) that
loses one to kill -9; offsets committed by a consumer that assigns its partitions and resumed
by the next one with the same group.id; kafka-python's commit read back by aiokafka; groups listed, described and deleted with
confluent-kafka's AdminClient."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioPartition
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupType,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPythonPartition
from kafka.structs import OffsetAndMetadata as KafkaPythonOffset

from raftka.ops.local_cluster import LocalCluster
from tests.conditions import wait_until
from tests.integration.support.brokers import start_broker_cluster, stop_broker_cluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MEMBER_MODULE = "tests.integration.support.kafka_member"

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


def test_kafka_python_commits_and_aiokafka_reads_the_commit(kafka_cluster: LocalCluster) -> None:
    topic, group = "python-clients", "python-clients"
    create(kafka_cluster, topic, 1)
    produce(kafka_cluster, topic, 5, 1)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap(kafka_cluster), group_id=group, enable_auto_commit=False
    )
    try:
        consumer.assign([KafkaPythonPartition(topic, 0)])
        consumer.commit({KafkaPythonPartition(topic, 0): KafkaPythonOffset(3, "", -1)})
        assert consumer.committed(KafkaPythonPartition(topic, 0)) == 3
    finally:
        consumer.close()

    async def resume() -> list[int]:
        reader = AIOKafkaConsumer(
            bootstrap_servers=bootstrap(kafka_cluster), group_id=group, enable_auto_commit=False
        )
        await reader.start()
        try:
            reader.assign([AioPartition(topic, 0)])
            assert await reader.committed(AioPartition(topic, 0)) == 3
            batches = await reader.getmany(timeout_ms=10_000, max_records=2)
            return [r.offset for records in batches.values() for r in records]
        finally:
            await reader.stop()

    assert asyncio.run(resume()) == [3, 4]


class Member:
    """A confluent-kafka KIP-848 member in its own process (support/kafka_member.py), and what
    it reported: its assignment, the records it read and the offsets it committed."""

    def __init__(self, cluster: LocalCluster, group: str, topic: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", MEMBER_MODULE, bootstrap(cluster), group, topic],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.assigned: list[int] = []
        self.records: list[tuple[int, int, str]] = []
        self.committed: dict[int, int] = {}
        self.errors: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            fact = json.loads(line)
            if "assigned" in fact:
                self.assigned = fact["assigned"]
            elif "record" in fact:
                partition, offset, value = fact["record"]
                self.records.append((partition, offset, value))
            elif "committed" in fact:
                partition, offset = fact["committed"]
                self.committed[partition] = max(offset, self.committed.get(partition, 0))
            else:
                self.errors.append(str(fact))

    def kill(self) -> None:
        """kill -9: no leave, the coordinator finds out from its session timeout."""
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.flush()
            self.process.wait(20)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
        self._reader.join(5)


def produce_values(cluster: LocalCluster, topic: str, numbers: range, partitions: int) -> None:
    """Value ``v<n>`` to partition n mod ``partitions`` for each n."""
    producer = Producer({"bootstrap.servers": bootstrap(cluster), "linger.ms": 5, "acks": "all"})
    for n in numbers:
        producer.produce(topic, value=f"v{n}".encode(), partition=n % partitions)
    assert producer.flush(20) == 0


def committed_offsets(cluster: LocalCluster, group: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offsets (OffsetFetch from a consumer that does not join)."""
    reader = Consumer({"bootstrap.servers": bootstrap(cluster), "group.id": group})
    try:
        found = reader.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
        return [tp.offset for tp in sorted(found, key=lambda tp: tp.partition)]
    finally:
        reader.close()


def test_a_kip848_group_shares_partitions_and_survives_a_killed_member(
    kafka_cluster: LocalCluster,
) -> None:
    topic, group, partitions, per_round = "shared", "kip848-trio", 6, 60
    create(kafka_cluster, topic, partitions)
    produce_values(kafka_cluster, topic, range(per_round), partitions)
    members = [Member(kafka_cluster, group, topic) for _ in range(3)]
    try:

        def split_evenly(alive: list[Member]) -> bool:
            owned = [p for m in alive for p in m.assigned]
            return sorted(owned) == list(range(partitions)) and all(m.assigned for m in alive)

        def all_committed(alive: list[Member], total: int) -> bool:
            per_partition = total // partitions
            done: dict[int, int] = {}
            for m in members:
                for p, offset in m.committed.items():
                    done[p] = max(offset, done.get(p, 0))
            return all(done.get(p, 0) == per_partition for p in range(partitions))

        wait_until(lambda: split_evenly(members), "3 members share 6 partitions", timeout_s=30)
        wait_until(lambda: all_committed(members, per_round), "round 1 committed", timeout_s=30)
        assert sorted(len(m.assigned) for m in members) == [2, 2, 2]
        victim, survivors = members[0], members[1:]
        victim_partitions = set(victim.assigned)
        victim.kill()
        produce_values(kafka_cluster, topic, range(per_round, 2 * per_round), partitions)
        wait_until(lambda: split_evenly(survivors), "survivors take over", timeout_s=30)
        wait_until(lambda: all_committed(survivors, 2 * per_round), "round 2", timeout_s=30)
        assert [m.errors for m in members] == [[], [], []]
        # Every record read and committed; a record read twice is one the victim had read
        # before its death on a partition it owned (its commit may not have landed).
        read = [value for m in members for _, _, value in m.records]
        assert set(read) == {f"v{n}" for n in range(2 * per_round)}
        twice = {v for v in read if read.count(v) > 1}
        victim_read = {value for p, _, value in victim.records if p in victim_partitions}
        assert twice <= victim_read, twice - victim_read
        assert committed_offsets(kafka_cluster, group, topic, partitions) == [20] * partitions
        owners = [p for m in survivors for p in m.assigned]
        assert sorted(owners) == list(range(partitions)), "each partition has one owner"
    finally:
        for m in members:
            if m.process.poll() is None:
                m.stop()


def test_admin_client_lists_describes_and_deletes_groups(kafka_cluster: LocalCluster) -> None:
    topic = "administered"
    create(kafka_cluster, topic, 2)
    common = {"bootstrap.servers": bootstrap(kafka_cluster), "enable.auto.commit": False}
    simple = Consumer({**common, "group.id": "admin-simple"})
    simple.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    simple.close()
    live = Consumer({**common, "group.id": "admin-live", "group.protocol": "consumer"})
    admin = AdminClient({"bootstrap.servers": bootstrap(kafka_cluster)})
    try:
        live.subscribe([topic])

        def assigned() -> bool:
            live.poll(0.05)
            return len(live.assignment()) == 2

        wait_until(assigned, "the live member owns both partitions", timeout_s=20)
        listed = admin.list_consumer_groups(request_timeout=10).result()
        assert listed.errors == []
        states = {g.group_id: g.state for g in listed.valid}
        assert states["admin-live"] == ConsumerGroupState.STABLE
        assert states["admin-simple"] == ConsumerGroupState.EMPTY
        futures = admin.describe_consumer_groups(["admin-live", "admin-simple"], request_timeout=10)
        described = {g: f.result() for g, f in futures.items()}
        (member,) = described["admin-live"].members
        owned = sorted((tp.topic, tp.partition) for tp in member.assignment.topic_partitions)
        assert owned == [(topic, 0), (topic, 1)]
        assert described["admin-live"].partition_assignor == "uniform"
        assert described["admin-live"].type == ConsumerGroupType.CONSUMER  # ConsumerGroupDescribe
        target = member.target_assignment.topic_partitions
        assert sorted((tp.topic, tp.partition) for tp in target) == owned
        assert described["admin-simple"].type == ConsumerGroupType.CLASSIC  # DescribeGroups
        assert described["admin-simple"].members == []
        (busy,) = admin.delete_consumer_groups(["admin-live"], request_timeout=10).values()
        with pytest.raises(KafkaException, match="NON_EMPTY_GROUP"):
            busy.result()
        (done,) = admin.delete_consumer_groups(["admin-simple"], request_timeout=10).values()
        assert done.result() is None
        after = admin.list_consumer_groups(request_timeout=10).result()
        assert "admin-simple" not in {g.group_id for g in after.valid}
    finally:
        live.close()
