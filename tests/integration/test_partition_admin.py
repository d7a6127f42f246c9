"""Partition leadership and placement end to end, against three real controllers: AlterPartition
validation, preferred (manual and automatic) elections, reassignment. The tests play the
partition leader themselves (in-process BrokerLifecycle agents register and heartbeat; the test
sends their AlterPartition requests)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from raftka.broker.lifecycle import BrokerLifecycle
from raftka.common.errors import StaleBrokerEpochError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
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


def code(name: str) -> int:
    return cpb.ErrorCode.Value(name)


async def describe(client: ControllerClient, topic: str) -> pb.TopicDescription:
    (desc,) = await client.describe_topics([topic])
    assert desc.error_code == cpb.NONE, desc.error_message
    return desc


def by_id(brokers: Sequence[BrokerLifecycle]) -> dict[int, BrokerLifecycle]:
    return {b.broker_id: b for b in brokers}


class Sender(Protocol):
    @property
    def broker_id(self) -> int: ...
    @property
    def broker_epoch(self) -> int: ...


@dataclass(frozen=True)
class StaleSender:
    broker_id: int
    broker_epoch: int


async def alter_isr(
    client: ControllerClient,
    sender: Sender,
    topic_id: str,
    partition: pb.PartitionDescription,
    isr: Sequence[int],
    *,
    epochs: dict[int, int] | None = None,
    leader_epoch: int | None = None,
    partition_epoch: int | None = None,
) -> pb.AlterPartitionResult:
    """``sender`` asks for ``isr`` on one partition, at the epochs of ``partition`` unless
    given; member broker epochs are -1 (unchecked) unless given."""
    request = pb.AlterPartitionRequest(
        broker_id=sender.broker_id,
        broker_epoch=sender.broker_epoch,
        topics=[
            pb.AlterPartitionTopic(
                topic_id=topic_id,
                partitions=[
                    pb.AlterPartitionData(
                        partition_index=partition.partition,
                        leader_epoch=partition.leader_epoch
                        if leader_epoch is None
                        else leader_epoch,
                        partition_epoch=partition.partition_epoch
                        if partition_epoch is None
                        else partition_epoch,
                        new_isr_with_epochs=[
                            pb.BrokerEpochPair(broker_id=b, broker_epoch=(epochs or {}).get(b, -1))
                            for b in isr
                        ],
                    )
                ],
            )
        ],
    )
    response = await client.alter_partition(request)
    ((result,),) = [t.partitions for t in response.topics]
    return result


def test_alter_partition_validation_end_to_end(cluster: LocalCluster) -> None:
    async def main() -> None:
        await leader_of(cluster)
        brokers = by_id(await start_brokers(cluster))
        try:
            async with client_for(cluster) as client:
                created = await create_topic(client, "isr", partitions=1, rf=3)
                (p,) = (await describe(client, "isr")).partitions
                leader = brokers[p.leader]
                follower = next(b for b in p.replicas if b != p.leader)
                tid = created.topic_id

                # a shrink: partition epoch +1, leader epoch unchanged
                shrunk = [b for b in p.isr if b != follower]
                ok = await alter_isr(client, leader, tid, p, shrunk)
                assert ok.error_code == cpb.NONE, ok.error_message
                assert list(ok.isr) == shrunk and ok.leader_id == p.leader
                assert ok.leader_epoch == p.leader_epoch
                assert ok.partition_epoch == p.partition_epoch + 1
                (now,) = (await describe(client, "isr")).partitions
                assert list(now.isr) == shrunk and now.partition_epoch == ok.partition_epoch

                # the same request again: its partition epoch is now stale
                stale = await alter_isr(client, leader, tid, p, shrunk)
                assert stale.error_code == code("INVALID_UPDATE_VERSION")
                # epochs from the future
                ahead = await alter_isr(client, leader, tid, now, shrunk, leader_epoch=99)
                assert ahead.error_code == code("NOT_CONTROLLER")
                # an older leader epoch
                fenced = await alter_isr(client, leader, tid, now, shrunk, leader_epoch=-1)
                assert fenced.error_code == code("FENCED_LEADER_EPOCH")
                # not sent by the leader
                other = await alter_isr(client, brokers[follower], tid, now, list(now.replicas))
                assert other.error_code == code("INVALID_REQUEST")
                # without the leader, and with a non-replica
                assert (await alter_isr(client, leader, tid, now, [follower])).error_code == code(
                    "INVALID_REQUEST"
                )
                assert (
                    await alter_isr(client, leader, tid, now, [p.leader, 42])
                ).error_code == code("INVALID_REQUEST")
                # a member at a wrong broker epoch
                wrong = await alter_isr(
                    client,
                    leader,
                    tid,
                    now,
                    [*shrunk, follower],
                    epochs={follower: brokers[follower].broker_epoch + 1000},
                )
                assert wrong.error_code == code("INELIGIBLE_REPLICA")
                # unknown topic id
                assert (await alter_isr(client, leader, "nope", now, shrunk)).error_code == code(
                    "UNKNOWN_TOPIC_ID"
                )
                assert (await describe(client, "isr")).partitions[0] == now, "errors wrote nothing"

                # the whole request at a stale broker epoch
                stale_sender = StaleSender(leader.broker_id, leader.broker_epoch - 1)
                with pytest.raises(StaleBrokerEpochError):
                    await alter_isr(client, stale_sender, tid, now, shrunk)

                # expand again, checking the follower's broker epoch
                back = await alter_isr(
                    client,
                    leader,
                    tid,
                    now,
                    [*shrunk, follower],
                    epochs={follower: brokers[follower].broker_epoch},
                )
                assert back.error_code == cpb.NONE and set(back.isr) == set(p.replicas)
                assert back.leader_epoch == p.leader_epoch
        finally:
            await stop_brokers(list(brokers.values()))

    asyncio.run(main())


def test_preferred_election_after_the_leader_moved(cluster: LocalCluster) -> None:
    async def main() -> None:
        await leader_of(cluster)
        brokers = by_id(await start_brokers(cluster))
        try:
            async with client_for(cluster) as client:
                created = await create_topic(client, "pref", partitions=1, rf=3)
                (p,) = (await describe(client, "pref")).partitions
                preferred = p.replicas[0]
                assert p.leader == preferred
                await brokers[preferred].close()  # silent: fenced when its session lapses

                async def moved() -> pb.PartitionDescription | None:
                    (q,) = (await describe(client, "pref")).partitions
                    return q if q.leader not in (-1, preferred) else None

                q = await eventually(moved, what="leadership moving off the silent broker")
                assert preferred not in q.isr and q.leader_epoch > p.leader_epoch

                (r,) = (await client.elect_leaders(pb.ELECTION_TYPE_PREFERRED, [("pref", 0)]))[
                    0
                ].partitions
                assert r.error_code == code("PREFERRED_LEADER_NOT_AVAILABLE")

                # a new incarnation of the preferred broker comes back (not yet in sync)
                reborn = BrokerLifecycle(
                    cluster.bootstrap,
                    broker_id=preferred,
                    cluster_id=cluster.cluster_id,
                    listeners=[cpb.Endpoint(name="CLIENT", host="127.0.0.1", port=29500)],
                    heartbeat_interval_s=0.2,
                )
                brokers[preferred] = reborn
                await reborn.start()
                await asyncio.wait_for(reborn.wait_unfenced(), 30)
                (r,) = (await client.elect_leaders(pb.ELECTION_TYPE_PREFERRED, [("pref", 0)]))[
                    0
                ].partitions
                assert r.error_code == code("PREFERRED_LEADER_NOT_AVAILABLE")

                # the current leader brings it back into the ISR ...
                (q,) = (await describe(client, "pref")).partitions
                joined = await alter_isr(
                    client,
                    brokers[q.leader],
                    created.topic_id,
                    q,
                    [*q.isr, preferred],
                    epochs={preferred: reborn.broker_epoch},
                )
                assert joined.error_code == cpb.NONE, joined.error_message
                # ... and a preferred election gives it the leadership back
                (r,) = (await client.elect_leaders(pb.ELECTION_TYPE_PREFERRED, [("pref", 0)]))[
                    0
                ].partitions
                assert r.error_code == cpb.NONE and r.leader == preferred and not r.unclean
                (final,) = (await describe(client, "pref")).partitions
                assert final.leader == preferred and final.leader_epoch == q.leader_epoch + 1
                # nothing left to do, for this partition or for all
                again = await client.elect_leaders(pb.ELECTION_TYPE_PREFERRED, [("pref", 0)])
                assert again[0].partitions[0].error_code == code("ELECTION_NOT_NEEDED")
                assert await client.elect_leaders(pb.ELECTION_TYPE_PREFERRED) == []
        finally:
            await stop_brokers(list(brokers.values()))

    asyncio.run(main())


def test_reassignment_adds_a_replica_and_completes(cluster: LocalCluster) -> None:
    async def main() -> None:
        await leader_of(cluster)
        brokers = by_id(await start_brokers(cluster, count=4))
        try:
            async with client_for(cluster) as client:
                created = await create_topic(client, "move", partitions=1, rf=2)
                (p,) = (await describe(client, "move")).partitions
                old = list(p.replicas)
                newcomer = next(b for b in sorted(brokers) if b not in old)
                target = [old[1], newcomer]  # drop the leader old[0], add the newcomer

                results = await client.alter_partition_reassignments({("move", 0): target})
                assert results[0].partitions[0].error_code == cpb.NONE
                (ongoing,) = await client.list_partition_reassignments()
                assert list(ongoing.replicas) == [*target, old[0]]
                assert list(ongoing.adding_replicas) == [newcomer]
                assert list(ongoing.removing_replicas) == [old[0]]
                assert ongoing.leader == old[0]
                listed = _cli(cluster, "partitions", "reassignments")
                assert listed.returncode == 0, listed.stderr
                assert f"Adding: {newcomer}" in listed.stdout

                # the leader reports the newcomer in sync: the move completes in that change
                (q,) = (await describe(client, "move")).partitions
                done = await alter_isr(
                    client, brokers[q.leader], created.topic_id, q, [*q.isr, newcomer]
                )
                assert done.error_code == cpb.NONE, done.error_message
                assert set(done.isr) == set(target) and done.leader_id == old[1]
                (final,) = (await describe(client, "move")).partitions
                assert list(final.replicas) == target and set(final.isr) == set(target)
                assert final.leader == old[1] and final.leader_epoch == q.leader_epoch + 1
                assert await client.list_partition_reassignments() == []

                # a second move, cancelled: back to the original replicas
                spare = next(b for b in sorted(brokers) if b not in target)
                await client.alter_partition_reassignments({("move", 0): [*target, spare]})
                cancel = _cli(
                    cluster,
                    "partitions",
                    "reassign",
                    "--topic",
                    "move",
                    "--partition",
                    "0",
                    "--cancel",
                )
                assert cancel.returncode == 0, cancel.stdout + cancel.stderr
                (reverted,) = (await describe(client, "move")).partitions
                assert list(reverted.replicas) == target
                assert await client.list_partition_reassignments() == []

                # bad targets get per-partition errors
                bad = await client.alter_partition_reassignments(
                    {("move", 0): [target[0], target[0]], ("move", 5): [1], ("nope", 0): [1]}
                )
                codes = {(t.name, r.partition): r.error_code for t in bad for r in t.partitions}
                assert codes == {
                    ("move", 0): code("INVALID_REPLICA_ASSIGNMENT"),
                    ("move", 5): code("UNKNOWN_TOPIC_OR_PARTITION"),
                    ("nope", 0): code("UNKNOWN_TOPIC_OR_PARTITION"),
                }
                unregistered = await client.alter_partition_reassignments({("move", 0): [99]})
                assert unregistered[0].partitions[0].error_code == code(
                    "INVALID_REPLICA_ASSIGNMENT"
                )
                assert (await client.alter_partition_reassignments({("move", 0): None}))[
                    0
                ].partitions[0].error_code == code("NO_REASSIGNMENT_IN_PROGRESS")
        finally:
            await stop_brokers(list(brokers.values()))

    asyncio.run(main())


def _cli(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "raftka.client.cli",
            *args,
            "--bootstrap-controller",
            ",".join(cluster.bootstrap),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def rebalancing_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three controllers that check leader imbalance every half second."""
    settings = {**FAST_CONTROLLER, "leader_imbalance_check_interval_ms": 500}
    c = LocalCluster(tmp_path / "cluster", controllers=3, controller_settings=settings)
    c.prepare()
    c.start()
    try:
        yield c
    finally:
        c.stop_all()
        for node_id in c.nodes:
            print(f"--- node {node_id} log tail ---\n{c.log_tail(node_id, 15)}")


def test_automatic_rebalance_returns_leadership_to_preferred_replicas(
    rebalancing_cluster: LocalCluster,
) -> None:
    cluster = rebalancing_cluster

    async def main() -> None:
        await leader_of(cluster)
        brokers = by_id(await start_brokers(cluster))
        try:
            async with client_for(cluster) as client:
                created = await create_topic(client, "auto", partitions=3, rf=3)
                # broker 1 stops heartbeating: the partitions it led move elsewhere
                await brokers[1].close()

                async def moved() -> bool | None:
                    desc = await describe(client, "auto")
                    return True if all(p.leader not in (-1, 1) for p in desc.partitions) else None

                await eventually(moved, what="leaders moving off broker 1")
                reborn = BrokerLifecycle(
                    cluster.bootstrap,
                    broker_id=1,
                    cluster_id=cluster.cluster_id,
                    listeners=[cpb.Endpoint(name="CLIENT", host="127.0.0.1", port=29501)],
                    heartbeat_interval_s=0.2,
                )
                brokers[1] = reborn
                await reborn.start()
                await asyncio.wait_for(reborn.wait_unfenced(), 30)
                # the leaders bring broker 1 back into every ISR
                for p in (await describe(client, "auto")).partitions:
                    result = await alter_isr(
                        client, brokers[p.leader], created.topic_id, p, [*p.isr, 1]
                    )
                    assert result.error_code == cpb.NONE, result.error_message

                async def balanced() -> bool | None:
                    desc = await describe(client, "auto")
                    return True if all(p.leader == p.replicas[0] for p in desc.partitions) else None

                await eventually(
                    balanced, timeout_s=15, what="automatic preferred-leader rebalance"
                )
                assert any(log_events(cluster, n, "leaders_rebalanced") for n in cluster.nodes)
        finally:
            await stop_brokers(list(brokers.values()))

    asyncio.run(main())
