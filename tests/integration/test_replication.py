"""Replication with real brokers: failover under acks=all, ISR shrink/expand, min.insync.replicas,
divergent tails truncated. Acknowledged records are checked on every replica's disk."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.client.local_cluster import LocalCluster
from raftka.common.data_dir import PARTITION_LOGS_DIR
from raftka.common.records.decoder import iter_records
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from tests.integration.helpers import (
    LATEST,
    client_for,
    eventually,
    fetch,
    list_offset,
    produce,
    start_broker_cluster,
    stop_broker_cluster,
)

pytestmark = pytest.mark.integration

TOPIC = "rep"
LAG_MS = 2000


@pytest.fixture
def rcluster(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = start_broker_cluster(
        tmp_path / "c", broker_settings={"replica_lag_time_max_ms": LAG_MS}
    )
    try:
        yield cluster
    finally:
        stop_broker_cluster(cluster)


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


def test_kill_9_leader_under_acks_all_loses_nothing(rcluster: LocalCluster) -> None:
    async def main() -> None:
        await create(rcluster)
        acked: dict[bytes, int] = {}
        stop = asyncio.Event()

        async def producer() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                value = f"v{i}".encode()  # never retried: a failed attempt gets a new value
                try:
                    p = await partition_state(rcluster)
                    if p.leader < 0:
                        continue
                    r = await produce(
                        rcluster.brokers[p.leader].address,
                        TOPIC,
                        0,
                        records=[cpb_record(value)],
                        acks=-1,
                    )
                    if r.error_code == cpb.NONE:
                        acked[value] = r.base_offset
                except Exception:
                    pass

        task = asyncio.create_task(producer())
        await eventually(lambda: _at_least(acked, 20), what="acknowledged writes before the kill")
        old = (await partition_state(rcluster)).leader
        rcluster.kill(old)
        before_kill = len(acked)
        await wait_leader(rcluster, exclude=old)
        await eventually(
            lambda: _at_least(acked, before_kill + 20), what="acknowledged writes after failover"
        )
        stop.set()
        await task
        rcluster.start(old)
        final = await wait_isr(rcluster, 3)
        # Every member of the ISR holds every acknowledged record exactly once, at its offset.
        await eventually(
            lambda: _replicas_agree(rcluster, list(final.isr)), what="replicas converging"
        )
        for broker in final.isr:
            on_disk = records_on_disk(rcluster, broker)
            values = [v for _o, v in on_disk]
            assert [o for o, _v in on_disk] == list(range(len(on_disk))), (
                "offsets are dense and ordered"
            )
            for value, offset in acked.items():
                assert values.count(value) == 1, (
                    f"{value!r} on broker {broker}: {values.count(value)} copies"
                )
                assert on_disk[offset] == (offset, value)
        result = await fetch(
            rcluster.brokers[final.leader].address,
            TOPIC,
            0,
            0,
            decode_records=True,
            partition_max_bytes=1 << 20,
        )
        assert result.high_watermark == len(records_on_disk(rcluster, final.leader))

    asyncio.run(main())


def test_paused_follower_leaves_and_rejoins_the_isr(rcluster: LocalCluster) -> None:
    async def main() -> None:
        await create(rcluster, min_isr=2)
        p = await partition_state(rcluster)
        follower = next(b for b in p.isr if b != p.leader)
        rcluster.pause(follower)
        try:
            shrunk = await wait_isr(rcluster, 2, timeout_s=LAG_MS / 1000 * 6)
            assert follower not in shrunk.isr
            for i in range(5):  # 2 of 3 in sync still satisfies min.insync.replicas=2
                r = await produce(
                    rcluster.brokers[shrunk.leader].address,
                    TOPIC,
                    0,
                    records=[cpb_record(b"x%d" % i)],
                    acks=-1,
                )
                assert r.error_code == cpb.NONE, r.error_message
        finally:
            rcluster.resume(follower)
        grown = await wait_isr(rcluster, 3)
        assert follower in grown.isr
        await eventually(
            lambda: _replicas_agree(rcluster, list(grown.isr)), what="the follower catching up"
        )

    asyncio.run(main())


def test_two_of_three_down_means_not_enough_replicas(rcluster: LocalCluster) -> None:
    async def main() -> None:
        await create(rcluster, min_isr=2)
        p = await partition_state(rcluster)
        leader = rcluster.brokers[p.leader].address
        r = await produce(leader, TOPIC, 0, records=[cpb_record(b"kept")], acks=-1)
        assert r.error_code == cpb.NONE
        for follower in [b for b in p.replicas if b != p.leader]:
            rcluster.kill(follower)
        await wait_isr(rcluster, 1, timeout_s=LAG_MS / 1000 * 6)
        before = (await list_offset(leader, TOPIC, 0, LATEST)).offset
        refused = await produce(leader, TOPIC, 0, records=[cpb_record(b"refused")], acks=-1)
        assert refused.error_code == cpb.NOT_ENOUGH_REPLICAS, cpb.ErrorCode.Name(refused.error_code)
        assert "min.insync.replicas" in refused.error_message
        assert (await list_offset(leader, TOPIC, 0, LATEST)).offset == before, "nothing was written"
        assert all(v != b"refused" for _o, v in records_on_disk(rcluster, p.leader))
        assert (0, b"kept") in records_on_disk(rcluster, p.leader)

    asyncio.run(main())


def cpb_record(value: bytes) -> bpb.Record:
    return bpb.Record(value=value)


async def _at_least(acked: dict[bytes, int], n: int) -> bool | None:
    await asyncio.sleep(0)  # let the producer run between probes
    return True if len(acked) >= n else None


async def _replicas_agree(cluster: LocalCluster, brokers: list[int]) -> bool | None:
    contents = [records_on_disk(cluster, b) for b in brokers]
    return True if all(c == contents[0] for c in contents) else None
