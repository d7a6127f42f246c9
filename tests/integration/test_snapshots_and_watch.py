"""Snapshots on real controllers (log truncation, InstallSnapshot to a lagging node, restart from
a snapshot), WatchMetadata, and leadership transfer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.common.data_dir import METADATA_LOG_DIR
from raftka.common.metadata.image import MetadataImage
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import controller_pb2 as pb
from raftka.v1 import metadata_pb2 as mpb
from tests.conditions import eventually
from tests.integration.support.brokers import log_events
from tests.integration.support.quorum import (
    FAST_CONTROLLER,
    client_for,
    create_topic,
    leader_of,
    start_brokers,
    stop_brokers,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def snapshotting_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Snapshots every few KiB of log, so a handful of topics forces several."""
    settings = {**FAST_CONTROLLER, "snapshot_after_bytes": 4096}
    c = LocalCluster(tmp_path / "cluster", controllers=3, controller_settings=settings)
    c.prepare()
    c.start()
    try:
        yield c
    finally:
        c.stop_all()


async def describe(cluster: LocalCluster) -> dict[str, tuple[str, int]]:
    async with client_for(cluster) as client:
        return {t.name: (t.topic_id, len(t.partitions)) for t in await client.describe_topics()}


def test_lagging_node_gets_snapshot_and_all_restart_from_snapshots(
    snapshotting_cluster: LocalCluster,
) -> None:
    cluster = snapshotting_cluster

    async def main() -> int:
        leader = await leader_of(cluster)
        lagging = next(n for n in cluster.nodes if n != leader)
        brokers = await start_brokers(cluster)
        try:
            cluster.kill(lagging)
            async with client_for(cluster) as client:
                for i in range(40):
                    await create_topic(client, f"snap-{i}", partitions=2, rf=3, exist_ok=True)
            assert log_events(cluster, leader, "snapshot_taken"), "the leader took no snapshot"
            leader_dir = cluster.nodes[leader].data_dir / METADATA_LOG_DIR
            assert list(leader_dir.glob("*.checkpoint"))
            cluster.start(lagging)

            async def installed() -> bool | None:
                async with client_for(cluster, lagging, timeout_s=2.0) as pinned:
                    own = await pinned.describe_quorum(allow_follower=True)
                async with client_for(cluster, timeout_s=2.0) as client:
                    lead = await client.describe_quorum()
                own_index = next(v.last_index for v in own.voters if v.node_id == lagging)
                return (
                    True
                    if own_index >= lead.commit_index > 0 and own.leader_id == lead.leader_id
                    else None
                )

            await eventually(installed, timeout_s=30, what="the lagging node catching up")
            lagging_dir = cluster.nodes[lagging].data_dir / METADATA_LOG_DIR
            assert list(lagging_dir.glob("*.checkpoint")), "the lagging node holds no snapshot"
        finally:
            await stop_brokers(brokers)
        return lagging

    asyncio.run(main())
    before = asyncio.run(describe(cluster))
    assert len(before) == 40
    for node_id in cluster.nodes:
        cluster.kill(node_id)
    cluster.start()

    async def after() -> dict[str, tuple[str, int]]:
        await leader_of(cluster)
        return await describe(cluster)

    assert asyncio.run(after()) == before


def test_watch_metadata_rebuilds_the_image(snapshotting_cluster: LocalCluster) -> None:
    cluster = snapshotting_cluster

    async def main() -> None:
        await leader_of(cluster)
        brokers = await start_brokers(cluster)
        try:
            async with client_for(cluster) as client:
                for i in range(30):
                    await create_topic(client, f"w-{i}", partitions=1, rf=2)
                expected = {t.name: t.topic_id for t in await client.describe_topics()}
                # a watcher starting from 0 after snapshots gets a snapshot first, then deltas
                image = MetadataImage()
                saw_snapshot = False
                stream = client.watch_metadata(0)
                deadline = time.monotonic() + 20
                async for event in stream:
                    kind = event.WhichOneof("event")
                    if kind == "snapshot":
                        if event.snapshot.first:
                            image = MetadataImage()
                            saw_snapshot = True
                        for record in event.snapshot.records:
                            image.apply(record, event.snapshot.last_index)
                    elif kind == "delta":
                        image.apply_batch(
                            mpb.MetadataBatch(records=event.delta.records), event.delta.index
                        )
                    if {n: image.topic(n).topic_id for n in image.topic_names()} == expected:  # type: ignore[union-attr]
                        break
                    assert time.monotonic() < deadline, "the watch did not deliver the whole image"
                stream.cancel()
                assert saw_snapshot
                # a new topic arrives on a live stream as a delta
                stream = client.watch_metadata(image.last_applied_index)
                await create_topic(client, "late", partitions=1, rf=1)
                async for event in stream:
                    if event.WhichOneof("event") == "delta":
                        names = [
                            r.topic.name
                            for r in event.delta.records
                            if r.WhichOneof("record") == "topic"
                        ]
                        if "late" in names:
                            break
                stream.cancel()
        finally:
            await stop_brokers(brokers)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_transfer_leadership_and_graceful_leader_shutdown(cluster: LocalCluster) -> None:
    async def main() -> None:
        first = await leader_of(cluster)
        target = next(n for n in cluster.nodes if n != first)
        async with client_for(cluster) as client:
            before = await client.describe_quorum()
            moved = await client.transfer_leadership(target)
            assert moved.new_leader_id == target and moved.term == before.term + 1
            assert await leader_of(cluster) == target
            with pytest.raises(Exception, match="not a voter"):
                await client.transfer_leadership(42)
            # SIGTERM on the leader hands leadership over before exiting: one term, no timeout
            term_before = (await client.describe_quorum()).term
            started = time.monotonic()
            assert cluster.stop(target) == 0
            successor = await leader_of(cluster, exclude=target)
            assert successor != target
            after = await eventually(lambda: client.describe_quorum(), what="quorum after shutdown")
            assert after.term == term_before + 1, "graceful shutdown went through an election"
            assert time.monotonic() - started < 10
            assert log_events(cluster, target, "leadership_handed_over")

    asyncio.run(main())


def test_watch_rejects_negative_index(cluster: LocalCluster) -> None:
    import grpc

    from raftka.v1.controller_pb2_grpc import ControllerServiceStub

    async def main() -> None:
        await leader_of(cluster)
        async with grpc.aio.insecure_channel(cluster.bootstrap[0]) as channel:
            stream = ControllerServiceStub(channel).WatchMetadata(
                pb.WatchMetadataRequest(after_index=-1)
            )
            with pytest.raises(grpc.aio.AioRpcError) as e:
                async for _ in stream:
                    pass
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(main())
