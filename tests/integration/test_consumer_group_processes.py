"""Consumer groups as real processes: members (``group_member`` processes) sharing a topic's
partitions while members and the coordinator's broker are killed, checked against a produced
history (at-least-once, no gap; see ops/experiments/group_rules.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from raftka.client import TopicPartition
from raftka.common.rpc.channels import open_channel
from raftka.ops.experiments.group_history import GroupEventKind
from raftka.ops.experiments.group_members import GroupMembers
from raftka.ops.experiments.group_rules import check_group
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import groups_pb2 as gpb
from raftka.v1 import groups_pb2_grpc as gpb_grpc
from tests.conditions import until
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_unfenced,
)
from tests.integration.support.groups import (
    HistoryProducer,
    consumed_offsets,
    owners,
    read_topic,
)
from tests.integration.support.quorum import client_for, create_topic

pytestmark = pytest.mark.integration

TOPIC = "shared"
PARTITIONS = 6
SESSION_MS = 4000
COMMIT_MS = 1000


async def _until(condition: Callable[[], bool], *, timeout_s: float, what: str = "") -> None:
    """Event files are re-read on every check: look five times a second."""
    await until(condition, timeout_s=timeout_s, what=what or "condition", poll_s=0.2)


@pytest.fixture
def group_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path / "cluster",
        controllers=1,
        brokers=3,
        broker_settings={"offsets_topic_num_partitions": 6},
    )
    try:
        yield c
    finally:
        stop_broker_cluster(c)


async def _coordinator(cluster: LocalCluster, group: str) -> int:
    async with open_channel(cluster.bootstrap_servers[0]) as channel:
        stub = gpb_grpc.GroupServiceStub(channel)
        answer = await stub.FindCoordinator(gpb.FindCoordinatorRequest(keys=[group]))
    node_id: int = answer.coordinators[0].node_id
    return node_id


def _alive(members: GroupMembers) -> set[str]:
    return {members.label(i) for i in members.indexes() if members.running(i)}


def _evenly_owned(members: GroupMembers, count: int) -> bool:
    alive = _alive(members)
    by_partition = owners(members.events(), alive)
    if len(by_partition) != PARTITIONS or any(len(m) != 1 for m in by_partition.values()):
        return False
    per_member = [sum(1 for m in by_partition.values() if label in m) for label in alive]
    return len(alive) == count and max(per_member) - min(per_member) <= 1 and min(per_member) > 0


def test_members_share_partitions_through_member_and_coordinator_kills(
    group_cluster: LocalCluster, tmp_path: Path
) -> None:
    async def body() -> None:
        cluster = group_cluster
        async with client_for(cluster) as admin:
            await create_topic(admin, TOPIC, partitions=PARTITIONS, rf=3)
        producer = HistoryProducer(cluster, TOPIC, PARTITIONS, rate=100)
        producer.start()
        members = GroupMembers(
            tmp_path / "members",
            cluster.bootstrap_servers,
            TOPIC,
            "g1",
            session_timeout_ms=SESSION_MS,
            auto_commit_interval_ms=COMMIT_MS,
        )
        try:
            for i in range(3):
                members.start(i)
            await _until(lambda: _evenly_owned(members, 3), timeout_s=40, what="3 members, 2 each")

            # kill -9 one member: its partitions move to the other two within the session timeout
            victim = members.label(0)
            lost = {tp for tp, m in owners(members.events(), {victim}).items()}
            members.kill(0)
            killed_at = time.monotonic()
            await _until(lambda: _evenly_owned(members, 2), timeout_s=SESSION_MS / 1000 + 15)
            taken = [
                e.time
                for e in members.events()
                if e.kind is GroupEventKind.ASSIGNED
                and e.member != victim
                and e.time > killed_at
                and lost & set(e.partitions)
            ]
            assert taken and min(taken) - killed_at < SESSION_MS / 1000 + 5

            # a fourth member gets partitions without anybody else doing anything
            members.start(3)
            await _until(
                lambda: _evenly_owned(members, 3), timeout_s=30, what="the new member's share"
            )

            # kill -9 the coordinator's broker: the group goes on with the same committed offsets
            coordinator = await _coordinator(cluster, "g1")
            cluster.kill(coordinator)
            mark = {tp: max(o, default=-1) for tp, o in consumed_offsets(members.events()).items()}

            def progressed() -> bool:
                now = consumed_offsets(members.events())
                tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
                return all(max(now.get(tp, {-1})) > mark.get(tp, -1) for tp in tps)

            await _until(progressed, timeout_s=40, what="every partition consumed after the kill")
            cluster.start(coordinator)
            await wait_unfenced(cluster, [coordinator], timeout_s=30)
        finally:
            await producer.stop()

        # drain: every acknowledged record is consumed by some member
        def drained() -> bool:
            seen = consumed_offsets(members.events())
            return all(
                set(offsets) <= seen.get(tp, set()) for tp, offsets in producer.acked.items()
            )

        try:
            await _until(drained, timeout_s=40, what="the group consumed every acknowledged record")
        finally:
            members.stop_all()
        final = await read_topic(cluster, TOPIC, PARTITIONS)
        for tp, acked in producer.acked.items():
            assert all(final[tp].get(o) == v for o, v in acked.items()), f"{tp} lost a write"
        result = check_group(members.events(), final)
        assert result.valid, result.anomalies
        assert result.consumed >= producer.total()

    asyncio.run(body())


def test_a_killed_member_restarted_re_reads_at_most_its_last_commit_interval(
    group_cluster: LocalCluster, tmp_path: Path
) -> None:
    async def body() -> None:
        cluster = group_cluster
        async with client_for(cluster) as admin:
            await create_topic(admin, TOPIC, partitions=2, rf=3)
        producer = HistoryProducer(cluster, TOPIC, 2, rate=200)
        producer.start()
        members = GroupMembers(
            tmp_path / "members",
            cluster.bootstrap_servers,
            TOPIC,
            "g2",
            session_timeout_ms=SESSION_MS,
            auto_commit_interval_ms=COMMIT_MS,
            static=True,
        )
        try:
            first = members.start(0)

            def committed_twice() -> bool:
                return sum(1 for e in members.events() if e.kind is GroupEventKind.COMMITTED) >= 2

            await _until(committed_twice, timeout_s=40, what="two auto-commits")
            members.kill(0)
            second = members.start(0)  # static: takes its partitions back within the session
            await _until(
                lambda: any(
                    e.member == second and e.kind is GroupEventKind.CONSUMED
                    for e in members.events()
                ),
                timeout_s=30,
                what="the restarted member reading",
            )
        finally:
            await producer.stop()
        try:
            await _until(
                lambda: all(
                    set(o) <= consumed_offsets(members.events()).get(tp, set())
                    for tp, o in producer.acked.items()
                ),
                timeout_s=30,
                what="everything consumed",
            )
        finally:
            members.stop_all()
        events = members.events()
        last_commit = {
            tp: (e.time, pos)
            for e in events
            if e.member == first and e.kind is GroupEventKind.COMMITTED
            for tp, pos in e.positions.items()
        }
        starts = {
            tp: pos
            for e in events
            if e.member == second and e.kind is GroupEventKind.ASSIGNED
            for tp, pos in e.positions.items()
        }
        for tp, (commit_time, position) in last_commit.items():
            assert starts[tp] >= position, f"{tp}: restarted behind the last commit"
            re_read = [
                (e.time, o)
                for e in events
                if e.member == first and e.kind is GroupEventKind.CONSUMED and e.partitions[0] == tp
                for o, _ in e.records
                if o >= starts[tp]
            ]
            # only what was read after the last acknowledged commit's interval began is read again
            assert all(t >= commit_time - COMMIT_MS / 1000 for t, _ in re_read), re_read[:3]
        final = await read_topic(cluster, TOPIC, 2)
        result = check_group(events, final)
        assert result.valid, result.anomalies

    asyncio.run(body())


def test_a_static_member_restarted_within_its_session_keeps_its_partitions(
    group_cluster: LocalCluster, tmp_path: Path
) -> None:
    async def body() -> None:
        async with client_for(group_cluster) as admin:
            await create_topic(admin, TOPIC, partitions=4, rf=3)
        members = GroupMembers(
            tmp_path / "members",
            group_cluster.bootstrap_servers,
            TOPIC,
            "g3",
            session_timeout_ms=20_000,
            static=True,
        )
        try:
            members.start(0)
            members.start(1)

            def split() -> dict[str, set[TopicPartition]]:
                by: dict[str, set[TopicPartition]] = {}
                for tp, m in owners(members.events(), _alive(members)).items():
                    for label in m:
                        by.setdefault(label, set()).add(tp)
                return by

            await _until(lambda: sorted(map(len, split().values())) == [2, 2], timeout_s=40)
            before = split()[members.label(0)]
            stopped_at = time.monotonic()
            assert members.stop(0) == 0  # SIGTERM: commit, then leave with epoch -2
            members.start(0)
            await _until(lambda: members.label(0) in split(), timeout_s=20, what="rejoined")
            assert split()[members.label(0)] == before
            # the other member never took any of them meanwhile
            other = [
                e
                for e in members.events()
                if e.member == members.label(1)
                and e.kind is GroupEventKind.ASSIGNED
                and e.time > stopped_at
            ]
            assert all(not (set(e.partitions) & before) for e in other)
        finally:
            members.stop_all()

    asyncio.run(body())
