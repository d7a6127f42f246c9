"""Broker processes dying and stopping: kill -9 and fencing, restart and log recovery,
controlled shutdown. Each test gets its own cluster (three controllers, brokers 4, 5, 6)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.common.records.builder import build_batch
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from tests.conditions import eventually
from tests.integration.support.broker_rpc import broker_stub, fetch, latest_offset, produce
from tests.integration.support.brokers import (
    broker_states,
    log_events,
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
    wait_unfenced,
)
from tests.integration.support.quorum import FAST_CONTROLLER, client_for, create_topic

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = int(FAST_CONTROLLER["broker_session_timeout_ms"]) / 1000
SHUTDOWN_TIMEOUT_MS = 10_000


@pytest.fixture
def brokers3(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = start_broker_cluster(
        tmp_path / "cluster",
        controllers=3,
        brokers=3,
        broker_settings={"controlled_shutdown_timeout_ms": SHUTDOWN_TIMEOUT_MS},
    )
    try:
        yield cluster
    finally:
        stop_broker_cluster(cluster)


async def setup_topics(cluster: LocalCluster) -> tuple[dict[int, int], dict[int, int]]:
    """``solo``: 3 partitions with one replica each; ``tri``: 6 partitions with three."""
    async with client_for(cluster) as client:
        await create_topic(client, "solo", partitions=3, rf=1)
        await create_topic(client, "tri", partitions=6, rf=3)
    solo = await wait_partition_leaders(cluster, "solo", 3)
    tri = await wait_partition_leaders(cluster, "tri", 6)
    return solo, tri


async def metadata(cluster: LocalCluster, broker_id: int, topic: str) -> bpb.MetadataResponse:
    async with broker_stub(cluster.brokers[broker_id].address) as stub:
        return await stub.Metadata(bpb.MetadataRequest(topics=[topic]), timeout=5)  # type: ignore[no-any-return]


def opened(cluster: LocalCluster, broker_id: int, partition_dir: str) -> list[dict[str, object]]:
    return [
        e
        for e in log_events(cluster, broker_id, "log_opened")
        if str(e.get("directory", "")).endswith(f"/{partition_dir}")
    ]


def test_killed_broker_is_fenced_recovers_its_logs_and_rejoins(brokers3: LocalCluster) -> None:
    cluster = brokers3

    async def main() -> None:
        solo, tri = await setup_topics(cluster)
        victim = solo[0]
        survivor = next(b for b in cluster.brokers if b != victim)
        victim_address = cluster.brokers[victim].address
        ts = int(time.time() * 1000)
        for i in range(5):
            batch = build_batch([(ts + i, f"k{i}".encode(), f"v{i}".encode() * 100, ())] * 4)
            result = await produce(victim_address, "solo", 0, batches=bytes(batch))
            assert result.error_code == cpb.NONE, result.error_message
            assert result.base_offset == 4 * i
        stored = (await fetch(victim_address, "solo", 0, 0)).batches
        assert len(stored) > 0
        before = (await broker_states(cluster))[victim]
        assert not before.fenced

        cluster.kill(victim)
        killed_at = time.monotonic()

        async def fenced() -> float | None:
            state = (await broker_states(cluster))[victim]
            return time.monotonic() - killed_at if state.fenced else None

        elapsed = await eventually(fenced, timeout_s=4 * SESSION_TIMEOUT_S, what="fencing")
        # fenced without waiting out its session: its peers' follower fetches are refused,
        # they report it, and the controller's probe finds nothing listening (at the latest,
        # its session expires)
        assert elapsed <= SESSION_TIMEOUT_S + 2.0, elapsed
        reported = [
            e
            for b in cluster.brokers
            if b != victim
            for e in log_events(cluster, b, "peer_unreachable_reported")
            if e.get("peer") == victim
        ]
        assert reported or elapsed >= SESSION_TIMEOUT_S * 0.5, elapsed

        async with client_for(cluster) as client:
            (solo_desc,) = await client.describe_topics(["solo"])
            (tri_desc,) = await client.describe_topics(["tri"])
        for p in solo_desc.partitions:  # one replica: offline while its broker is fenced
            assert p.leader == (-1 if solo[p.partition] == victim else solo[p.partition])
        moved = [p.partition for p in tri_desc.partitions if tri[p.partition] == victim]
        assert moved, "the victim led no partition of tri"
        for p in tri_desc.partitions:  # three replicas: leadership moves off the victim
            assert p.leader != victim and p.leader in p.isr and victim not in p.isr
            if p.partition not in moved:
                assert p.leader == tri[p.partition]

        # the surviving brokers see it too, and answer for the offline partition
        async def offline_seen() -> bpb.MetadataResponse | None:
            meta = await metadata(cluster, survivor, "solo")
            return meta if meta.topics[0].partitions[0].leader_id == -1 else None

        meta = await eventually(offline_seen, timeout_s=10, what="solo-0 offline on a survivor")
        p0 = meta.topics[0].partitions[0]
        assert p0.error_code == cpb.LEADER_NOT_AVAILABLE and list(p0.offline_replicas) == [victim]
        assert victim not in {b.broker_id for b in meta.brokers}
        refused = await produce(
            cluster.brokers[survivor].address, "solo", 0, records=[bpb.Record(value=b"x")]
        )
        assert refused.error_code in {cpb.NOT_LEADER_OR_FOLLOWER, cpb.LEADER_NOT_AVAILABLE}
        assert refused.current_leader.leader_id == -1
        new_tri = await wait_partition_leaders(cluster, "tri", 6, brokers=[survivor])
        for pid in moved:
            result = await produce(
                cluster.brokers[new_tri[pid]].address, "tri", pid, records=[bpb.Record(value=b"m")]
            )
            assert result.error_code == cpb.NONE, result.error_message

        # restart: a new incarnation, its logs recovered, unfenced, leading solo-0 again
        opened_before = len(opened(cluster, victim, "solo-0"))
        cluster.start(victim)
        await wait_unfenced(cluster, [victim], timeout_s=30)
        after = (await broker_states(cluster))[victim]
        assert after.incarnation_id != before.incarnation_id
        assert after.broker_epoch > before.broker_epoch
        leaders = await wait_partition_leaders(cluster, "solo", 3)
        assert leaders == solo
        reopened = opened(cluster, victim, "solo-0")[opened_before:]
        assert len(reopened) == 1
        assert reopened[0]["clean_shutdown"] is False and reopened[0]["log_end_offset"] == 20
        assert await latest_offset(cluster, victim, "solo", 0) == 20
        again = await fetch(victim_address, "solo", 0, 0)
        assert again.error_code == cpb.NONE and again.batches == stored
        result = await produce(victim_address, "solo", 0, records=[bpb.Record(value=b"next")])
        assert result.error_code == cpb.NONE and result.base_offset == 20

    asyncio.run(main())


def test_controlled_shutdown_moves_leadership_before_exit(brokers3: LocalCluster) -> None:
    cluster = brokers3

    async def main() -> None:
        _solo, tri = await setup_topics(cluster)
        victim = tri[0]
        led = sorted(p for p, b in tri.items() if b == victim)
        survivors = [b for b in cluster.brokers if b != victim]

        started = time.monotonic()
        exit_code = await asyncio.to_thread(cluster.stop, victim, 20.0)
        took = time.monotonic() - started
        assert exit_code == 0
        assert took < SHUTDOWN_TIMEOUT_MS / 1000, f"controlled shutdown took {took:.1f}s"

        # by the time the process has exited, it leads nothing
        async with client_for(cluster) as client:
            (tri_desc,) = await client.describe_topics(["tri"])
        for p in tri_desc.partitions:
            assert p.leader != victim and p.leader in p.isr, p
            assert victim not in p.isr, p
            if p.partition not in led:
                assert p.leader == tri[p.partition]
        state = (await broker_states(cluster))[victim]
        assert state.fenced or state.in_controlled_shutdown

        shutdowns = log_events(cluster, victim, "broker_controlled_shutdown")
        assert [e["confirmed"] for e in shutdowns] == [True]
        events = [e.get("event") for e in log_events(cluster, victim, "broker_stopped")]
        assert events == ["broker_stopped"]

        # the survivors learn the new leaders and serve them
        new = await wait_partition_leaders(cluster, "tri", 6, brokers=survivors)
        assert victim not in new.values()
        for pid in led:
            result = await produce(
                cluster.brokers[new[pid]].address, "tri", pid, records=[bpb.Record(value=b"s")]
            )
            assert result.error_code == cpb.NONE, result.error_message

        # a restart after a clean shutdown opens clean logs and rejoins (a log's creation is
        # logged at debug level, its reopening at info)
        opened_before = len(opened(cluster, victim, "tri-0"))
        cluster.start(victim)
        await wait_unfenced(cluster, [victim], timeout_s=30)
        reopened = opened(cluster, victim, "tri-0")[opened_before:]
        assert len(reopened) == 1 and reopened[0]["clean_shutdown"] is True

    asyncio.run(main())
