"""Three real controller processes: leader crash, leader pause, full restart, torn log tail."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from raftka.common.data_dir import METADATA_LOG_DIR
from raftka.common.errors import NotControllerError
from raftka.common.rpc.status import error_from_rpc
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import controller_pb2 as pb
from raftka.v1.controller_pb2_grpc import ControllerServiceStub
from tests.conditions import eventually
from tests.integration.support.quorum import (
    client_for,
    create_topic,
    leader_of,
    start_brokers,
    stop_brokers,
    topic_names,
)

pytestmark = pytest.mark.integration


def test_kill_9_leader_then_new_leader_serves_admin(cluster: LocalCluster) -> None:
    async def main() -> None:
        old = await leader_of(cluster)
        brokers = await start_brokers(cluster)
        try:
            async with client_for(cluster) as client:
                await create_topic(client, "before")
                cluster.kill(old)
                new = await leader_of(cluster, exclude=old)
                assert new != old
                await create_topic(client, "after")
                assert {"before", "after"} <= await topic_names(client)
        finally:
            await stop_brokers(brokers)

    asyncio.run(main())


def test_sigstop_leader_is_replaced_and_steps_down_on_resume(cluster: LocalCluster) -> None:
    async def main() -> None:
        old = await leader_of(cluster)
        brokers = await start_brokers(cluster)
        try:
            cluster.pause(old)
            new = await leader_of(cluster, exclude=old)
            async with client_for(cluster) as client:
                await create_topic(client, "while-paused")
            cluster.resume(old)

            async def old_follows_new() -> bool | None:
                async with client_for(cluster, old, timeout_s=1.0) as pinned:
                    q = await pinned.describe_quorum(allow_follower=True)
                    return True if q.answered_by == old and q.leader_id == new else None

            await eventually(old_follows_new, what=f"node {old} following node {new}")
            # The old leader must not accept writes any more: asked directly (no redirection),
            # it refuses with NOT_CONTROLLER and names the new leader.
            async with grpc.aio.insecure_channel(cluster.nodes[old].address) as channel:
                request = pb.CreateTopicsRequest(
                    topics=[
                        pb.NewTopic(name="via-old-leader", num_partitions=1, replication_factor=1)
                    ]
                )
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await ControllerServiceStub(channel).CreateTopics(request, timeout=5)
                error = error_from_rpc(refused.value)
                assert isinstance(error, NotControllerError) and error.leader_id == new
            async with client_for(cluster) as client:
                names = await topic_names(client)
                assert "while-paused" in names and "via-old-leader" not in names
        finally:
            await stop_brokers(brokers)

    asyncio.run(main())


def test_restart_all_three_keeps_metadata(cluster: LocalCluster) -> None:
    async def main() -> dict[str, tuple[str, int]]:
        await leader_of(cluster)
        brokers = await start_brokers(cluster)
        try:
            async with client_for(cluster) as client:
                for i in range(5):
                    await create_topic(client, f"t{i}", partitions=i + 1)
                before = {
                    t.name: (t.topic_id, len(t.partitions)) for t in await client.describe_topics()
                }
        finally:
            await stop_brokers(brokers)
        return before

    before = asyncio.run(main())
    for node_id in cluster.nodes:
        cluster.kill(node_id)
    cluster.start()

    async def after_restart() -> dict[str, tuple[str, int]]:
        await leader_of(cluster)
        async with client_for(cluster) as client:
            return {t.name: (t.topic_id, len(t.partitions)) for t in await client.describe_topics()}

    assert asyncio.run(after_restart()) == before


def test_torn_log_tail_is_truncated_and_node_rejoins(cluster: LocalCluster) -> None:
    async def main() -> int:
        leader = await leader_of(cluster)
        brokers = await start_brokers(cluster)
        try:
            async with client_for(cluster) as client:
                await create_topic(client, "torn")
        finally:
            await stop_brokers(brokers)
        return leader

    leader = asyncio.run(main())
    victim = next(n for n in cluster.nodes if n != leader)
    cluster.kill(victim)
    log_dir = cluster.nodes[victim].data_dir / METADATA_LOG_DIR
    segment = sorted(log_dir.glob("*.log"))[-1]
    with segment.open("ab") as f:  # half a batch: a write torn by the crash
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x63\x00\x00\x01\x00garbage")
    cluster.start(victim)

    async def caught_up() -> bool | None:
        async with client_for(cluster, victim, timeout_s=2.0) as pinned:
            own = await pinned.describe_quorum(allow_follower=True)
        async with client_for(cluster, timeout_s=2.0) as client:
            lead = await client.describe_quorum()
        own_index = next(v.last_index for v in own.voters if v.node_id == victim)
        in_sync = own.answered_by == victim and own.leader_id == lead.leader_id >= 0
        return True if in_sync and own_index >= lead.commit_index > 0 else None

    asyncio.run(eventually(caught_up, what=f"node {victim} catching up after truncation"))
    events = [
        json.loads(line)
        for line in cluster.nodes[victim].log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    assert any(e.get("event") == "truncated_torn_tail" for e in events), (
        "recovery did not report the truncation"
    )
