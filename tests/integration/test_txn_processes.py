"""Transactional producers and brokers as real processes, stopped and killed mid-transaction:
a SIGSTOPped producer whose transactional id was taken over can never commit (and nothing it
wrote is ever read committed), a kill -9ed producer's transaction is aborted at its timeout so
later transactions become readable, and a transaction survives the kill -9 of a partition
leader it wrote to."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from raftka.client import AsyncConsumer, ConsumerRecord, TopicPartition
from raftka.client.producer import AsyncProducer
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import controller_pb2 as cpb
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub
from tests.conditions import eventually
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
    wait_unfenced,
)
from tests.integration.support.quorum import client_for
from tests.integration.support.txn_producer import txn_producer_process

pytestmark = pytest.mark.integration

TOPICS = {"zombie": 2, "orphan": 2, "leader-kill": 3}
FAST: dict[str, Any] = {
    "linger_ms": 0,
    "retry_backoff_ms": 20,
    "request_timeout_ms": 5_000,
    "delivery_timeout_ms": 30_000,
    "max_block_ms": 30_000,
}
READ: dict[str, Any] = {"fetch_max_wait_ms": 100, "retry_backoff_ms": 20}
NOT_COMMITTED = {"ProducerFencedError", "ProducerFatalError", "AbortableTransactionError"}
"""What a fenced zombie's send or commit may raise: anything but success."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("txn-procs"),
        controllers=1,
        brokers=3,
        broker_settings={"transaction_state_num_partitions": 3, "offsets_topic_num_partitions": 3},
    )
    try:
        asyncio.run(_create_topics(c))
        yield c
    finally:
        stop_broker_cluster(c)


async def _create_topics(cluster: LocalCluster) -> None:
    async with client_for(cluster, timeout_s=10.0) as client:
        results = await client.create_topics(
            [
                cpb.NewTopic(
                    name=name,
                    num_partitions=partitions,
                    replication_factor=3,
                    configs={"min.insync.replicas": "2"},
                )
                for name, partitions in TOPICS.items()
            ]
        )
    assert [r.error_code for r in results] == [ErrorCode.NONE] * len(TOPICS), results
    for name, partitions in TOPICS.items():
        await wait_partition_leaders(cluster, name, partitions)


def servers(cluster: LocalCluster) -> list[str]:
    return [node.address for node in cluster.brokers.values()]


async def read_all(
    cluster: LocalCluster, topic: str, expected: int, isolation: str = "read_committed"
) -> list[bytes]:
    """The values of every record of ``topic`` a consumer with ``isolation`` reads from the
    start: waits for ``expected`` of them, then polls once more for any extra."""
    tps = [TopicPartition(topic, p) for p in range(TOPICS[topic])]
    out: list[ConsumerRecord] = []
    async with AsyncConsumer(
        bootstrap_servers=servers(cluster), isolation_level=isolation, **READ
    ) as consumer:
        consumer.assign(tps)
        consumer.seek_to_beginning()
        async with asyncio.timeout(30):
            while len(out) < expected:
                out += await consumer.poll(timeout_ms=500)
            out += await consumer.poll(timeout_ms=300)
    return sorted(r.value or b"" for r in out)


def test_a_paused_producer_whose_id_was_taken_over_never_commits(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    with (
        txn_producer_process(tmp_path, "zombie", servers(cluster), "zombie-id") as zombie,
        txn_producer_process(tmp_path, "successor", servers(cluster), "zombie-id") as successor,
    ):
        zombie.ok("init")
        zombie.ok("begin")
        zombie.ok("send", topic="zombie", partition=0, values=["z0"])
        zombie.ok("send", topic="zombie", partition=1, values=["z1"])
        zombie.pause()  # after sending, before committing
        successor.ok("init")  # fences the zombie and aborts its open transaction
        successor.ok("begin")
        successor.ok("send", topic="zombie", partition=0, values=["s0"])
        successor.ok("send", topic="zombie", partition=1, values=["s1"])
        successor.ok("commit")
        zombie.resume()
        more = zombie.call("send", topic="zombie", partition=0, values=["z0-late"])
        commit = zombie.call("commit")
        abort = zombie.call("abort")  # reaches the coordinator, which knows the newer epoch
    assert not more["ok"] and more["error"] in NOT_COMMITTED, more
    assert not commit["ok"] and commit["error"] in NOT_COMMITTED, commit
    assert not abort["ok"] and abort["fenced"], abort
    assert asyncio.run(read_all(cluster, "zombie", 2)) == [b"s0", b"s1"]
    written = asyncio.run(read_all(cluster, "zombie", 4, "read_uncommitted"))
    assert b"z0" in written and b"z1" in written  # written, and hidden by the abort markers
    assert b"z0-late" not in written  # refused by the partition leader


def test_a_killed_producers_transaction_is_aborted_at_its_timeout(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    with txn_producer_process(
        tmp_path, "orphan", servers(cluster), "orphan-id", transaction_timeout_ms=3_000
    ) as orphan:
        orphan.ok("init")
        orphan.ok("begin")
        orphan.ok("send", topic="orphan", partition=0, values=["o0"])
        orphan.ok("send", topic="orphan", partition=1, values=["o1"])
        orphan.kill()

    async def body() -> None:
        async with AsyncProducer(
            bootstrap_servers=servers(cluster), transactional_id="after-orphan", **FAST
        ) as later:
            await later.init_transactions()
            later.begin_transaction()
            await later.send("orphan", b"n0", partition=0)
            await later.send("orphan", b"n1", partition=1)
            await later.commit_transaction()
        # Readable only once the orphan's transaction (before them on both partitions) is
        # aborted: the last stable offset stays at its first record until then.
        assert await read_all(cluster, "orphan", 2) == [b"n0", b"n1"]
        assert await read_all(cluster, "orphan", 4, "read_uncommitted") == [
            b"n0",
            b"n1",
            b"o0",
            b"o1",
        ]

    asyncio.run(body())


async def find_coordinator(cluster: LocalCluster, transactional_id: str) -> int:
    async def probe() -> int | None:
        request = gpb.FindCoordinatorRequest(
            key_type=gpb.COORDINATOR_TYPE_TRANSACTION, keys=[transactional_id]
        )
        async with grpc.aio.insecure_channel(servers(cluster)[0]) as channel:
            answer = await GroupServiceStub(channel).FindCoordinator(request, timeout=3)
        found: gpb.Coordinator = answer.coordinators[0]
        return int(found.node_id) if found.error_code == ErrorCode.NONE else None

    return await eventually(probe, timeout_s=15, what=f"coordinator of {transactional_id}")


def test_a_transaction_survives_the_kill_of_a_partition_leader(cluster: LocalCluster) -> None:
    topic, tid = "leader-kill", "leader-kill-id"
    expected = sorted(
        b"%s-%d-%d" % (tag, p, i) for tag in (b"a", b"b") for p in range(3) for i in range(4)
    )

    killed: list[int] = []

    async def body() -> None:
        async with AsyncProducer(
            bootstrap_servers=servers(cluster), transactional_id=tid, **FAST
        ) as producer:
            await producer.init_transactions()
            coordinator = await find_coordinator(cluster, tid)
            leaders = await wait_partition_leaders(cluster, topic, 3)
            victim = next(b for b in leaders.values() if b != coordinator)
            producer.begin_transaction()
            acked = [
                await producer.send(topic, b"a-%d-%d" % (p, i), partition=p)
                for p in range(3)
                for i in range(4)
            ]
            await asyncio.gather(*acked)
            cluster.kill(victim)
            killed.append(victim)
            for p in range(3):
                for i in range(4):
                    await producer.send(topic, b"b-%d-%d" % (p, i), partition=p)
            await producer.commit_transaction()  # the new leaders get the rest and the markers
        assert await read_all(cluster, topic, len(expected)) == expected

    try:
        asyncio.run(body())
    finally:
        for victim in killed:  # the module's cluster stays whole
            cluster.start(victim)
            asyncio.run(wait_unfenced(cluster, [victim]))
