"""The demo ``raftka up --demo`` runs: create a topic, produce and consume through the brokers,
then kill -9 the controller leader and show that metadata and data paths carry on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc

from raftka.client.controller_client import ControllerClient
from raftka.client.local_cluster import LocalCluster
from raftka.client.partitioner import partition_for_key
from raftka.common.errors import RaftkaError
from raftka.controller.quorum.transport import GRPC_OPTIONS
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from raftka.v1.broker_pb2_grpc import BrokerServiceStub

TOPIC = "demo"
PARTITIONS = 3
KEYS = [b"alice", b"bob", b"carol", b"dave", b"erin", b"frank"]


async def _leaders(address: str) -> dict[int, str]:
    """Partition -> leader address, from a broker's Metadata."""
    async with grpc.aio.insecure_channel(address, options=GRPC_OPTIONS) as channel:
        meta = await BrokerServiceStub(channel).Metadata(
            bpb.MetadataRequest(topics=[TOPIC]), timeout=5
        )
    brokers = {b.broker_id: f"{b.host}:{b.port}" for b in meta.brokers}
    return {
        p.partition: brokers[p.leader_id]
        for t in meta.topics
        for p in t.partitions
        if p.leader_id in brokers
    }


async def _produce(address: str, partition: int, records: list[tuple[bytes, bytes]]) -> int:
    async with grpc.aio.insecure_channel(address, options=GRPC_OPTIONS) as channel:
        data = bpb.PartitionProduceData(
            partition=partition,
            records=[bpb.Record(key=k, value=v) for k, v in records],
            compression=bpb.COMPRESSION_LZ4,
        )
        request = bpb.ProduceRequest(
            acks=-1, topics=[bpb.TopicProduceData(topic=TOPIC, partitions=[data])]
        )
        (result,) = (await BrokerServiceStub(channel).Produce(request, timeout=10)).results
    if result.error_code != cpb.NONE:
        raise RaftkaError(
            f"produce to {TOPIC}-{partition}: {cpb.ErrorCode.Name(result.error_code)} {result.error_message}"
        )
    return int(result.base_offset)


async def _consume(address: str, partition: int) -> list[bpb.Record]:
    async with grpc.aio.insecure_channel(address, options=GRPC_OPTIONS) as channel:
        fetch = bpb.FetchRequest(
            max_wait_ms=500,
            decode_records=True,
            topics=[
                bpb.FetchTopic(
                    topic=TOPIC,
                    partitions=[bpb.FetchPartition(partition=partition, fetch_offset=0)],
                )
            ],
        )
        (result,) = (await BrokerServiceStub(channel).Fetch(fetch, timeout=10)).results
    if result.error_code != cpb.NONE:
        raise RaftkaError(f"fetch {TOPIC}-{partition}: {cpb.ErrorCode.Name(result.error_code)}")
    return list(result.records)


async def _produce_round(
    cluster: LocalCluster, round_name: str, count: int, via: str | None = None
) -> None:
    leaders = await _leaders(via or cluster.bootstrap_servers[0])
    by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
    for i in range(count):
        key = KEYS[i % len(KEYS)]
        by_partition.setdefault(partition_for_key(key, PARTITIONS), []).append(
            (key, f"{round_name} #{i}".encode())
        )
    for partition, records in sorted(by_partition.items()):
        offset = await _produce(leaders[partition], partition, records)
        print(f"  produced {len(records)} records to {TOPIC}-{partition} at offset {offset}")


async def run_demo(
    cluster: LocalCluster,
    client: ControllerClient,
    wait_for_leader: Callable[[ControllerClient], Awaitable[pb.DescribeQuorumResponse]],
) -> None:
    print(
        f"\n== demo: topic '{TOPIC}', {PARTITIONS} partitions, 3 replicas, min.insync.replicas=2 =="
    )
    (created,) = await client.create_topics(
        [
            pb.NewTopic(
                name=TOPIC,
                num_partitions=PARTITIONS,
                replication_factor=3,
                configs={"min.insync.replicas": "2"},
            )
        ]
    )
    if created.error_code != cpb.NONE:
        raise RaftkaError(
            f"create topic: {cpb.ErrorCode.Name(created.error_code)} {created.error_message}"
        )
    print(f"created topic {TOPIC} (id {created.topic_id})")
    await _wait_hosted(cluster)
    print("producing keyed records (same key -> same partition, Kafka's murmur2 partitioner) ...")
    await _produce_round(cluster, "first", 9)

    leader = (await client.describe_quorum()).leader_id
    print(f"\nkill -9 the controller leader (node {leader}) ...")
    started = time.monotonic()
    cluster.kill(leader)
    quorum = await wait_for_leader(client)
    print(
        f"  node {quorum.leader_id} leads term {quorum.term} after {time.monotonic() - started:.2f}s"
    )
    print("producing again (brokers keep serving through the controller failover) ...")
    await _produce_round(cluster, "second", 6)
    print(f"restarting node {leader}; it rejoins the quorum as a follower")
    cluster.start(leader)

    leaders = await _leaders(cluster.bootstrap_servers[0])
    victim = next(b for b, n in cluster.brokers.items() if n.address == leaders[0])
    print(f"\nkill -9 broker {victim}, the leader of {TOPIC}-0 ...")
    started = time.monotonic()
    cluster.kill(victim)
    survivor = next(n.address for b, n in cluster.brokers.items() if b != victim)
    await _wait_hosted(cluster, via=survivor, avoid=cluster.brokers[victim].address)
    print(f"  every partition has a new in-sync leader after {time.monotonic() - started:.2f}s")
    print("producing again (acks=all: each write is on at least 2 replicas) ...")
    await _produce_round(cluster, "third", 3, via=survivor)

    print("\nconsuming everything back (nothing acknowledged was lost):")
    leaders = await _leaders(survivor)
    for partition in range(PARTITIONS):
        for record in await _consume(leaders[partition], partition):
            print(
                f"  {TOPIC}-{partition} offset {record.offset}: key={record.key.decode()} value={record.value.decode()}"
            )
    print(f"\nrestarting broker {victim}; it catches up and rejoins the ISR")
    cluster.start(victim)


async def _wait_hosted(
    cluster: LocalCluster, timeout_s: float = 30.0, via: str | None = None, avoid: str = ""
) -> None:
    """Until every partition has a leader (other than ``avoid``) that serves it: brokers apply
    metadata asynchronously, and a dead leader is replaced once its session times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            leaders = await _leaders(via or cluster.bootstrap_servers[0])
            if len(leaders) == PARTITIONS and avoid not in leaders.values():
                for partition, address in leaders.items():
                    await _consume(address, partition)  # NOT_LEADER until the broker hosts it
                return
        except (RaftkaError, grpc.aio.AioRpcError, KeyError):
            pass
        await asyncio.sleep(0.1)
    raise RaftkaError(f"topic {TOPIC} was not served within {timeout_s:g}s")
