"""The controller quorum as real processes: fast settings, clients, the active controller,
topics, and in-process broker registrations (BrokerLifecycle) against it."""

from __future__ import annotations

import asyncio

from raftka.broker.lifecycle import BrokerLifecycle
from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from tests.conditions import eventually

# Fast timeouts keep failover tests short; the defaults are tested by the benchmark script.
FAST_CONTROLLER = {
    "tick_ms": 20,
    "election_timeout_ms": 300,
    "heartbeat_interval_ms": 60,
    "broker_session_timeout_ms": 2500,
}


def client_for(
    cluster: LocalCluster, node_id: int | None = None, timeout_s: float = 10.0
) -> ControllerClient:
    """A client for the whole quorum, or pinned to one node (no redirection possible)."""
    addresses = cluster.bootstrap if node_id is None else [cluster.nodes[node_id].address]
    return ControllerClient(
        addresses,
        timeout_s=timeout_s,
        attempt_timeout_s=min(1.0, timeout_s),
        security=cluster.client_security() if cluster.tls else None,
    )


async def leader_of(
    cluster: LocalCluster, *, exclude: int | None = None, timeout_s: float = 20.0
) -> int:
    """Wait for an active controller (not ``exclude``) that serves admin reads; return its id."""

    async def probe() -> int | None:
        async with client_for(cluster, timeout_s=2.0) as client:
            response = await client.describe_cluster()
            if response.controller_id >= 0 and response.controller_id != exclude:
                return int(response.controller_id)
        return None

    return await eventually(probe, timeout_s=timeout_s, what="a controller leader")


async def start_brokers(
    cluster: LocalCluster, count: int = 3, racks: str = "abc"
) -> list[BrokerLifecycle]:
    brokers = [
        BrokerLifecycle(
            cluster.bootstrap,
            broker_id=i + 1,
            cluster_id=cluster.cluster_id,
            listeners=[cpb.Endpoint(name="CLIENT", host="127.0.0.1", port=29092 + i)],
            rack=racks[i % len(racks)],
            heartbeat_interval_s=0.2,
        )
        for i in range(count)
    ]
    for b in brokers:
        await b.start()
    await asyncio.wait_for(asyncio.gather(*(b.wait_unfenced() for b in brokers)), 30)
    return brokers


async def stop_brokers(brokers: list[BrokerLifecycle]) -> None:
    for b in brokers:
        await b.close()


async def create_topic(
    client: ControllerClient, name: str, partitions: int = 3, rf: int = 3, *, exist_ok: bool = False
) -> pb.CreateTopicResult:
    """Create a topic. ``exist_ok``: a TOPIC_ALREADY_EXISTS answer counts as success (the
    client retries a create whose answer timed out, and the retry finds the topic there)."""
    (result,) = await client.create_topics(
        [pb.NewTopic(name=name, num_partitions=partitions, replication_factor=rf)]
    )
    if exist_ok and result.error_code == cpb.TOPIC_ALREADY_EXISTS:
        return result
    assert result.error_code == cpb.NONE, (
        f"{name}: {cpb.ErrorCode.Name(result.error_code)} {result.error_message}"
    )
    return result


async def topic_names(client: ControllerClient) -> set[str]:
    return {t.name for t in await client.describe_topics()}
