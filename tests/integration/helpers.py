"""Shared helpers for integration tests against real processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import grpc

from raftka.broker.lifecycle import BrokerLifecycle
from raftka.common.errors import RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import broker_pb2_grpc as bpb_grpc
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb

T = TypeVar("T")

# Fast timeouts keep failover tests short; the defaults are tested by the benchmark script.
FAST_CONTROLLER = {
    "tick_ms": 20,
    "election_timeout_ms": 300,
    "heartbeat_interval_ms": 60,
    "broker_session_timeout_ms": 2500,
}


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout_s: float = 20.0, what: str = "condition"
) -> T:
    """Await ``probe`` until it returns something other than None (errors count as "not yet")."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = await probe()
            if value is not None:
                return value
        except RaftkaError as e:
            last = e.message
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout_s}s (last error: {last})")


def client_for(
    cluster: LocalCluster, node_id: int | None = None, timeout_s: float = 10.0
) -> ControllerClient:
    """A client for the whole quorum, or pinned to one node (no redirection possible)."""
    addresses = cluster.bootstrap if node_id is None else [cluster.nodes[node_id].address]
    return ControllerClient(addresses, timeout_s=timeout_s, attempt_timeout_s=min(1.0, timeout_s))


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


# ---- brokers as real processes (LocalCluster with brokers) ----

FAST_BROKER = {"heartbeat_interval_ms": 200}
"""Broker settings for tests: heartbeats well inside FAST_CONTROLLER's 1.5 s session."""

EARLIEST, LATEST = -2, -1
"""ListOffsets' special timestamps."""


def start_broker_cluster(
    base_dir: Path,
    *,
    controllers: int = 3,
    brokers: int = 3,
    broker_settings: Mapping[str, object] | None = None,
    timeout_s: float = 30.0,
    faults: bool = False,
) -> LocalCluster:
    """Start controllers and brokers as real processes; return once every broker is unfenced.
    Stop it with :func:`stop_broker_cluster` (which also prints the log tails)."""
    cluster = LocalCluster(
        base_dir,
        controllers=controllers,
        brokers=brokers,
        controller_settings=FAST_CONTROLLER,
        broker_settings={**FAST_BROKER, **(broker_settings or {})},
        faults=faults,
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
    cluster.stop_all()
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


@contextlib.asynccontextmanager
async def broker_stub(address: str) -> AsyncIterator[bpb_grpc.BrokerServiceStub]:
    """A BrokerService stub on its own channel to one broker."""
    async with grpc.aio.insecure_channel(address) as channel:
        yield bpb_grpc.BrokerServiceStub(channel)


def produce_request(
    topic: str,
    partition: int,
    *,
    batches: bytes = b"",
    records: Sequence[bpb.Record] = (),
    compression: int = bpb.COMPRESSION_NONE,
    acks: int = -1,
    timeout_ms: int = 5000,
) -> bpb.ProduceRequest:
    data = bpb.PartitionProduceData(
        partition=partition,
        batches=batches,
        records=list(records),
        compression=compression,  # type: ignore[arg-type]
    )
    return bpb.ProduceRequest(
        acks=acks,
        timeout_ms=timeout_ms,
        topics=[bpb.TopicProduceData(topic=topic, partitions=[data])],
    )


async def produce(
    address: str,
    topic: str,
    partition: int,
    *,
    batches: bytes = b"",
    records: Sequence[bpb.Record] = (),
    compression: int = bpb.COMPRESSION_NONE,
    acks: int = -1,
    timeout_ms: int = 5000,
) -> bpb.PartitionProduceResult:
    """Produce to one partition through ``address``; return its one result (whatever its
    error code: callers assert what they expect)."""
    request = produce_request(
        topic,
        partition,
        batches=batches,
        records=records,
        compression=compression,
        acks=acks,
        timeout_ms=timeout_ms,
    )
    async with broker_stub(address) as stub:
        response = await stub.Produce(request, timeout=timeout_ms / 1000 + 5)
    (result,) = response.results
    return result  # type: ignore[no-any-return]


async def fetch(
    address: str,
    topic: str,
    partition: int,
    offset: int,
    *,
    max_wait_ms: int = 0,
    min_bytes: int = 0,
    decode_records: bool = False,
    partition_max_bytes: int = 0,
) -> bpb.FetchPartitionResult:
    request = bpb.FetchRequest(
        replica_id=-1,
        max_wait_ms=max_wait_ms,
        min_bytes=min_bytes,
        decode_records=decode_records,
        topics=[
            bpb.FetchTopic(
                topic=topic,
                partitions=[
                    bpb.FetchPartition(
                        partition=partition,
                        fetch_offset=offset,
                        partition_max_bytes=partition_max_bytes,
                        current_leader_epoch=-1,
                    )
                ],
            )
        ],
    )
    async with broker_stub(address) as stub:
        response = await stub.Fetch(request, timeout=max_wait_ms / 1000 + 10)
    (result,) = response.results
    return result  # type: ignore[no-any-return]


async def list_offset(
    address: str, topic: str, partition: int, timestamp: int
) -> bpb.ListOffsetsResult:
    request = bpb.ListOffsetsRequest(
        topics=[
            bpb.ListOffsetsTopic(
                topic=topic,
                partitions=[bpb.ListOffsetsPartition(partition=partition, timestamp=timestamp)],
            )
        ]
    )
    async with broker_stub(address) as stub:
        response = await stub.ListOffsets(request, timeout=10)
    (result,) = response.results
    return result  # type: ignore[no-any-return]


async def latest_offset(cluster: LocalCluster, leader: int, topic: str, partition: int) -> int:
    result = await list_offset(cluster.brokers[leader].address, topic, partition, LATEST)
    assert result.error_code == cpb.NONE, cpb.ErrorCode.Name(result.error_code)
    return int(result.offset)


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
