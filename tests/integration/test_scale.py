"""One large CreateTopics on a default cluster (3 controllers + 3 brokers, default settings, real
processes): every partition gets a leader and its whole replica set in the ISR, and an acks=all
write to every partition succeeds (each follower fetched it), with no controller election (the
Raft term stays) and no broker fenced meanwhile. The default suite creates 600 partitions;
``--long`` adds 5,000."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from tests.conditions import eventually
from tests.integration.support.broker_rpc import broker_stub
from tests.integration.support.brokers import log_events, stop_broker_cluster, wait_unfenced
from tests.integration.support.quorum import client_for
from tests.unit.common.storage.support import batch

pytestmark = pytest.mark.integration

RF = 3
PER_REQUEST = 500


@pytest.fixture
def default_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path, controllers=3, brokers=3)
    cluster.prepare()
    cluster.start()
    try:
        asyncio.run(wait_unfenced(cluster, list(cluster.brokers), timeout_s=60))
        yield cluster
    finally:
        stop_broker_cluster(cluster)


async def under_replicated(client: ControllerClient, topic: str, count: int) -> int | None:
    (t,) = await client.describe_topics([topic])
    if len(t.partitions) != count:
        return None
    return sum(1 for p in t.partitions if p.leader < 0 or len(p.isr) < RF)


async def write_everywhere(
    cluster: LocalCluster, client: ControllerClient, topic: str, done: set[int]
) -> int:
    """One acks=all write to every partition not in ``done`` (added there once written),
    PER_REQUEST partitions per request to each leader; returns how many partitions refused
    (not leading yet, not replicated in time)."""
    (t,) = await client.describe_topics([topic])
    by_leader: dict[int, list[int]] = {}
    for p in t.partitions:
        if p.partition not in done:
            by_leader.setdefault(p.leader, []).append(p.partition)
    data = bytes(batch(1))
    failed = 0

    async def send(leader: int, partitions: list[int]) -> None:
        nonlocal failed
        async with broker_stub(cluster.brokers[leader].address) as stub:
            for i in range(0, len(partitions), PER_REQUEST):
                chunk = partitions[i : i + PER_REQUEST]
                request = bpb.ProduceRequest(
                    acks=-1,
                    timeout_ms=5000,
                    topics=[
                        bpb.TopicProduceData(
                            topic=topic,
                            partitions=[
                                bpb.PartitionProduceData(partition=p, batches=data) for p in chunk
                            ],
                        )
                    ],
                )
                response = await stub.Produce(request, timeout=30)
                failed += sum(1 for r in response.results if r.error_code != cpb.NONE)
                done.update(r.partition for r in response.results if r.error_code == cpb.NONE)

    await asyncio.gather(*(send(leader, ps) for leader, ps in by_leader.items() if leader >= 0))
    return failed + len(by_leader.get(-1, []))


def fencings(cluster: LocalCluster) -> int:
    return sum(
        len(log_events(cluster, node, "broker_fenced_session_expired")) for node in cluster.nodes
    )


def create_and_check(cluster: LocalCluster, partitions: int, timeout_s: float) -> None:
    async def run() -> None:
        async with client_for(cluster, timeout_s=30) as client:
            term = (await client.describe_quorum()).term
            fenced_before = fencings(cluster)
            started = time.monotonic()
            (result,) = await client.create_topics(
                [pb.NewTopic(name="big", num_partitions=partitions, replication_factor=RF)]
            )
            assert result.error_code == cpb.NONE, result.error_message

            async def in_sync() -> bool | None:
                return (await under_replicated(client, "big", partitions)) == 0 or None

            await eventually(in_sync, timeout_s=timeout_s, what="every partition in sync")

            written: set[int] = set()

            async def replicated() -> bool | None:
                return (await write_everywhere(cluster, client, "big", written)) == 0 or None

            await eventually(replicated, timeout_s=timeout_s, what="a write to every partition")
            print(
                f"{partitions} partitions created and replicated in {time.monotonic() - started:.1f}s"
            )
            assert written == set(range(partitions))
            assert await under_replicated(client, "big", partitions) == 0
            assert (await client.describe_quorum()).term == term, "a controller election"
            assert fencings(cluster) == fenced_before, "a broker was fenced"

    asyncio.run(run())


def test_a_600_partition_topic_comes_in_sync_without_elections_or_fencing(
    default_cluster: LocalCluster,
) -> None:
    create_and_check(default_cluster, 600, timeout_s=60)


@pytest.mark.slow
def test_a_five_thousand_partition_topic_comes_in_sync_without_elections_or_fencing(
    default_cluster: LocalCluster,
) -> None:
    create_and_check(default_cluster, 5000, timeout_s=180)
