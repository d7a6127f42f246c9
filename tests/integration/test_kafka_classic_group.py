"""Kafka's classic group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) over the Kafka
listener, with real clients against a real cluster (one controller, one broker): three
confluent-kafka consumer processes with the default group.protocol share a 6-partition topic,
one is killed -9 and the survivors take its partitions with nothing lost; three
cooperative-sticky ones converge without sharing a partition, and so do classic and KIP-848
members in one group; kafka-python's KafkaConsumer and
aiokafka's consumer subscribe with a group and commit too."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioPartition
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPythonPartition

from raftka.ops.local_cluster import LocalCluster
from tests.conditions import wait_until
from tests.integration.support.brokers import start_broker_cluster, stop_broker_cluster
from tests.integration.support.classic_member import MemberProcess

pytestmark = pytest.mark.integration

PARTITIONS = 6


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("kafka-classic"),
        controllers=1,
        brokers=1,
        kafka=True,
        broker_settings={"offsets_topic_num_partitions": 3},
    )
    try:
        yield c
    finally:
        stop_broker_cluster(c)


def bootstrap(cluster: LocalCluster) -> str:
    return ",".join(cluster.kafka_bootstrap_servers)


def create(cluster: LocalCluster, name: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(15)


def produce(cluster: LocalCluster, topic: str, keys: list[str]) -> None:
    """Each key once to partition hash(key) % PARTITIONS (explicit, so every partition gets
    records), acknowledged by all replicas."""
    producer = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all"})
    failed: list[object] = []
    for i, key in enumerate(keys):
        producer.produce(
            topic,
            key=key.encode(),
            value=b"v",
            partition=i % PARTITIONS,
            on_delivery=lambda e, _m: failed.append(e) if e is not None else None,
        )
    assert producer.flush(20) == 0
    assert failed == []


def owners(members: list[MemberProcess]) -> dict[str, set[int]] | None:
    """Each live member's partitions once all have one and they are disjoint and complete."""
    owned = {m.name: m.assignment() for m in members}
    if any(ps is None for ps in owned.values()):
        return None
    sets = [ps for ps in owned.values() if ps is not None]
    union = set().union(*sets)
    if sum(len(ps) for ps in sets) != len(union) or union != set(range(PARTITIONS)):
        return None
    return {name: ps for name, ps in owned.items() if ps is not None}


def test_three_confluent_consumers_share_partitions_and_survive_a_kill(
    kafka_cluster: LocalCluster, tmp_path: Path
) -> None:
    topic, group = "classic-shared", "classic-group"
    create(kafka_cluster, topic)
    members: list[MemberProcess] = []
    try:
        for name in ("c1", "c2", "c3"):
            members.append(
                MemberProcess(tmp_path, name, bootstrap(kafka_cluster), group, topic, commit=True)
            )
        wait_until(
            lambda: (o := owners(members)) is not None and all(o.values()),
            "three members owning disjoint, complete, non-empty shares",
            timeout_s=30,
        )
        first = [f"a-{i}" for i in range(120)]
        produce(kafka_cluster, topic, first)
        wait_until(
            lambda: {k for m in members for _, _, k in m.consumed()} >= set(first),
            "every record of the first batch consumed",
        )
        victim = members[0]
        held = victim.assignment()
        assert held
        victim.kill()
        survivors = members[1:]
        second = [f"b-{i}" for i in range(120)]
        produce(kafka_cluster, topic, second)
        wait_until(
            lambda: (o := owners(survivors)) is not None and all(o.values()),
            "the survivors owning every partition between them",
            timeout_s=30,
        )
        wanted = set(first) | set(second)
        wait_until(
            lambda: {k for m in members for _, _, k in m.consumed()} >= wanted,
            "every record consumed (none lost)",
            timeout_s=20,
        )
        seen = Counter((p, o) for m in members for p, o, _ in m.consumed())
        twice = {p for (p, _), n in seen.items() if n > 1}
        assert twice <= held, f"duplicates away from the killed member's partitions: {twice}"
        final = owners(survivors)
        assert final is not None
        assert sorted(p for ps in final.values() for p in ps) == list(range(PARTITIONS))
    finally:
        for m in members:
            m.stop()


def test_cooperative_consumers_converge_without_sharing_a_partition(
    kafka_cluster: LocalCluster, tmp_path: Path
) -> None:
    """cooperative-sticky members keep their partitions across rebalances: the ownership each
    reports (incremental assignments and revocations) is never overlapping, and converges."""
    topic, group = "classic-coop", "classic-coop-group"
    create(kafka_cluster, topic)
    members: list[MemberProcess] = []
    overlaps: list[dict[str, set[int]]] = []

    def converged() -> bool:
        owned = {m.name: m.assignment() or set() for m in members}
        claimed = [p for ps in owned.values() for p in ps]
        if len(claimed) != len(set(claimed)):
            overlaps.append(owned)
        share = PARTITIONS // len(members)  # the uniform assignor's target
        return owners(members) is not None and all(len(ps) == share for ps in owned.values())

    try:
        for name in ("k1", "k2", "k3"):
            members.append(
                MemberProcess(
                    tmp_path,
                    name,
                    bootstrap(kafka_cluster),
                    group,
                    topic,
                    commit=False,
                    assignor="cooperative-sticky",
                )
            )
            wait_until(converged, f"{len(members)} cooperative members converged", timeout_s=30)
        assert overlaps == []
        # Sticky and incremental: the first member only ever gave partitions up.
        held = [set(e["partitions"]) for e in members[0].events() if e["ev"] == "assignment"]
        held = [ps for ps in held if ps]
        assert len(held[-1]) == 2
        assert all(later <= earlier for earlier, later in itertools.pairwise(held))
    finally:
        for m in members:
            m.stop()


def test_classic_and_kip848_members_share_one_group(
    kafka_cluster: LocalCluster, tmp_path: Path
) -> None:
    """An eager classic member, a cooperative one and a KIP-848 one in the same group end up
    owning two partitions each, never one partition twice."""
    topic, group = "classic-mixed", "classic-mixed-group"
    create(kafka_cluster, topic)
    overlaps: list[list[int]] = []
    members = [
        MemberProcess(tmp_path, "eager", bootstrap(kafka_cluster), group, topic, commit=False),
        MemberProcess(
            tmp_path,
            "coop",
            bootstrap(kafka_cluster),
            group,
            topic,
            commit=False,
            assignor="cooperative-sticky",
        ),
        MemberProcess(
            tmp_path, "kip848", bootstrap(kafka_cluster), group, topic, commit=False, kip848=True
        ),
    ]

    def converged() -> bool:
        owned = [m.assignment() or set() for m in members]
        claimed = [p for ps in owned for p in ps]
        if len(claimed) != len(set(claimed)):
            overlaps.append(sorted(claimed))
        return owners(members) is not None and all(len(ps) == 2 for ps in owned)

    try:
        wait_until(converged, "the three members owning two partitions each", timeout_s=30)
        assert overlaps == []
    finally:
        for m in members:
            m.stop()


def test_kafka_python_consumer_joins_a_group(kafka_cluster: LocalCluster) -> None:
    topic = "classic-kafka-python"
    create(kafka_cluster, topic, partitions=2)
    keys = [f"k-{i}" for i in range(12)]
    produce_to(kafka_cluster, topic, keys)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap(kafka_cluster),
        group_id="classic-kp",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15_000,
    )
    try:
        got = []
        for message in consumer:
            got.append(message.key.decode())
            if len(got) == len(keys):
                break
        assert sorted(got) == sorted(keys)
        assert {tp.partition for tp in consumer.assignment()} == {0, 1}
        consumer.commit()  # with its generation: the member's epoch
        committed = {p: consumer.committed(KafkaPythonPartition(topic, p)) for p in (0, 1)}
        assert committed == {0: 6, 1: 6}
    finally:
        consumer.close()


def test_aiokafka_consumer_joins_a_group(kafka_cluster: LocalCluster) -> None:
    topic = "classic-aiokafka"
    create(kafka_cluster, topic, partitions=2)
    keys = [f"k-{i}" for i in range(12)]
    produce_to(kafka_cluster, topic, keys)

    async def consume() -> tuple[list[str], set[int]]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap(kafka_cluster),
            group_id="classic-aio",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            got: list[str] = []
            async with asyncio.timeout(15):
                async for message in consumer:
                    got.append(message.key.decode())
                    if len(got) == len(keys):
                        break
            await consumer.commit()
            for p in (0, 1):
                assert await consumer.committed(AioPartition(topic, p)) == 6
            return got, {tp.partition for tp in consumer.assignment()}
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    got, partitions = asyncio.run(consume())
    assert sorted(got) == sorted(keys)
    assert partitions == {0, 1}


def produce_to(cluster: LocalCluster, topic: str, keys: list[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all"})
    for i, key in enumerate(keys):
        producer.produce(topic, key=key.encode(), value=b"v", partition=i % 2)
    assert producer.flush(20) == 0
