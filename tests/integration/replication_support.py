"""Shared by the replication tests: one topic ``rep`` with one partition, and ways to wait on
its state and to read what each broker holds on disk."""

from __future__ import annotations

import asyncio
import json

import grpc

from raftka.common.data_dir import PARTITION_LOGS_DIR
from raftka.common.records.decoder import iter_records
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from raftka.v1.broker_pb2_grpc import BrokerServiceStub
from tests.integration.helpers import LATEST, client_for, eventually, list_offset, produce

TOPIC = "rep"


async def create(cluster: LocalCluster, min_isr: int = 2, rf: int = 3) -> None:
    async with client_for(cluster) as client:
        (r,) = await client.create_topics(
            [
                pb.NewTopic(
                    name=TOPIC,
                    num_partitions=1,
                    replication_factor=rf,
                    configs={"min.insync.replicas": str(min_isr)},
                )
            ]
        )
        assert r.error_code == cpb.NONE, r.error_message
    p = await wait_isr(cluster, rf)

    async def leader_serves() -> bool | None:  # the leader broker has applied the metadata
        result = await list_offset(cluster.brokers[p.leader].address, TOPIC, 0, LATEST)
        return True if result.error_code == cpb.NONE else None

    await eventually(leader_serves, what="the leader broker serving the new partition")


async def partition_state(cluster: LocalCluster) -> pb.PartitionDescription:
    async with client_for(cluster, timeout_s=3.0) as client:
        (t,) = await client.describe_topics([TOPIC])
    return t.partitions[0]


async def wait_isr(
    cluster: LocalCluster, size: int, timeout_s: float = 30.0
) -> pb.PartitionDescription:
    async def probe() -> pb.PartitionDescription | None:
        p = await partition_state(cluster)
        return p if len(p.isr) == size and p.leader >= 0 else None

    return await eventually(probe, timeout_s=timeout_s, what=f"ISR of size {size}")


async def wait_leader(cluster: LocalCluster, exclude: int = -1) -> pb.PartitionDescription:
    async def probe() -> pb.PartitionDescription | None:
        p = await partition_state(cluster)
        return p if p.leader >= 0 and p.leader != exclude else None

    return await eventually(probe, what="a partition leader")


def records_on_disk(cluster: LocalCluster, broker: int) -> list[tuple[int, bytes]]:
    """(offset, value) of every record in the broker's log files for rep-0."""
    directory = cluster.brokers[broker].data_dir / PARTITION_LOGS_DIR / f"{TOPIC}-0"
    data = b"".join(p.read_bytes() for p in sorted(directory.glob("*.log")))
    return [(r.offset, r.value or b"") for r in iter_records(data)]


def events(cluster: LocalCluster, broker: int, name: str) -> list[dict[str, object]]:
    lines = cluster.brokers[broker].log_path.read_text().splitlines()
    return [
        e for e in (json.loads(x) for x in lines if x.startswith("{")) if e.get("event") == name
    ]


def cpb_record(value: bytes) -> bpb.Record:
    return bpb.Record(value=value)


async def at_least(acked: dict[bytes, int], n: int) -> bool | None:
    await asyncio.sleep(0)  # let the producer run between probes
    return True if len(acked) >= n else None


async def produce_when_leading(address: str, value: bytes) -> bool | None:
    """Produce once the broker has applied its leadership (NOT_LEADER before: nothing written)."""
    r = await produce(address, TOPIC, 0, records=[cpb_record(value)], acks=-1)
    if r.error_code == cpb.NOT_LEADER_OR_FOLLOWER:
        return None
    assert r.error_code == cpb.NONE, r.error_message
    return True


async def leader_sees_isr(address: str, size: int) -> bool | None:
    async with grpc.aio.insecure_channel(address) as channel:
        meta = await BrokerServiceStub(channel).Metadata(
            bpb.MetadataRequest(topics=[TOPIC]), timeout=5
        )
    return True if len(meta.topics[0].partitions[0].isr) == size else None


async def replicas_agree(cluster: LocalCluster, brokers: list[int]) -> bool | None:
    contents = [records_on_disk(cluster, b) for b in brokers]
    return True if all(c == contents[0] for c in contents) else None
