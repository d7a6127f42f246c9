"""Controllers and brokers as real processes (LocalCluster): start and stop them, wait for
brokers and partition leaders, read a node's structured log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc

from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from tests.conditions import eventually
from tests.integration.support.broker_rpc import (
    LATEST,
    broker_stub,
    list_offset,
)
from tests.integration.support.quorum import (
    FAST_CONTROLLER,
    client_for,
)

FAST_BROKER = {"heartbeat_interval_ms": 200}
"""Broker settings for tests: heartbeats well inside FAST_CONTROLLER's 1.5 s session."""


def start_broker_cluster(
    base_dir: Path,
    *,
    controllers: int = 3,
    brokers: int = 3,
    broker_settings: Mapping[str, object] | None = None,
    controller_settings: Mapping[str, object] | None = None,
    timeout_s: float = 30.0,
    faults: bool = False,
    tls: bool = False,
    metrics: bool = False,
    split_listeners: bool = False,
    security_settings: Mapping[str, object] | None = None,
    kafka: bool = False,
) -> LocalCluster:
    """Start controllers and brokers as real processes; return once every broker is unfenced.
    Stop it with :func:`stop_broker_cluster` (which also prints the log tails). ``metrics``
    gives every node a Prometheus endpoint (``cluster.node(id).metrics_url``);
    ``split_listeners`` and ``security_settings`` are LocalCluster's."""
    cluster = LocalCluster(
        base_dir,
        controllers=controllers,
        brokers=brokers,
        controller_settings={**FAST_CONTROLLER, **(controller_settings or {})},
        broker_settings={**FAST_BROKER, **(broker_settings or {})},
        faults=faults,
        tls=tls,
        metrics=metrics,
        split_listeners=split_listeners,
        security_settings=security_settings,
        kafka=kafka,
    )
    cluster.prepare()
    cluster.start()
    try:
        asyncio.run(wait_unfenced(cluster, list(cluster.brokers), timeout_s=timeout_s))
    except BaseException:
        stop_broker_cluster(cluster)
        raise
    return cluster


def stop_broker_cluster(cluster: LocalCluster, tail: int = 15) -> None:
    """A test's cluster is thrown away: every node is killed at once (a graceful stop's
    controlled shutdowns cost seconds per test; the tests of shutdown stop nodes themselves)."""
    for node_id in [*cluster.brokers, *cluster.nodes]:
        cluster.kill(node_id)
    for node_id in [*cluster.nodes, *cluster.brokers]:
        print(f"--- node {node_id} log tail ---\n{cluster.log_tail(node_id, tail)}")


async def broker_states(cluster: LocalCluster) -> dict[int, pb.BrokerDescription]:
    async with client_for(cluster, timeout_s=2.0) as client:
        described = await client.describe_cluster()
    return {b.broker_id: b for b in described.brokers}


async def wait_unfenced(
    cluster: LocalCluster, broker_ids: Sequence[int], *, timeout_s: float = 30.0
) -> None:
    """Until the controller reports every broker in ``broker_ids`` registered and unfenced."""

    async def probe() -> bool | None:
        states = await broker_states(cluster)
        ok = all(b in states and not states[b].fenced for b in broker_ids)
        return True if ok else None

    await eventually(probe, timeout_s=timeout_s, what=f"brokers {list(broker_ids)} unfenced")


async def wait_partition_leaders(
    cluster: LocalCluster,
    topic: str,
    partitions: int,
    *,
    brokers: Sequence[int] | None = None,
    timeout_s: float = 20.0,
) -> dict[int, int]:
    """Until every running broker's Metadata shows a leader for each partition of ``topic``
    (the same one everywhere) and each leader serves the partition (ListOffsets succeeds);
    return ``{partition: leader broker id}``."""
    ids = (
        list(brokers)
        if brokers is not None
        else [b for b, n in cluster.brokers.items() if n.running]
    )

    async def probe() -> dict[int, int] | None:
        views: list[dict[int, int]] = []
        try:
            for broker_id in ids:
                async with broker_stub(cluster.brokers[broker_id].address) as stub:
                    meta = await stub.Metadata(bpb.MetadataRequest(topics=[topic]), timeout=2)
                (t,) = meta.topics
                leaders = {p.partition: p.leader_id for p in t.partitions}
                if len(leaders) != partitions or any(v < 0 for v in leaders.values()):
                    return None
                views.append(leaders)
            if any(v != views[0] for v in views):
                return None
            for pid, leader in views[0].items():
                result = await list_offset(cluster.brokers[leader].address, topic, pid, LATEST)
                if result.error_code != cpb.NONE:
                    return None
        except grpc.aio.AioRpcError:
            return None  # a broker still starting
        return views[0]

    return await eventually(probe, timeout_s=timeout_s, what=f"leaders of {topic}")


def log_events(cluster: LocalCluster, node_id: int, event: str) -> list[dict[str, object]]:
    """The JSON log lines of one node whose "event" is ``event``."""
    path = cluster.node(node_id).log_path
    found: list[dict[str, object]] = []
    if not path.exists():
        return found
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append(entry)
    return found
