"""The group coordinator on 3 real brokers, through the raw GroupService stub: FindCoordinator
creates __consumer_offsets, a member gets partitions, committed offsets survive a kill -9 of the
coordinator, and a stream member learns of a revocation by push."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

import grpc
import pytest

from raftka.broker.groups.placement import OFFSETS_TOPIC, partition_for
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import controller_pb2 as cpb
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub
from tests.conditions import eventually
from tests.integration.support.broker_rpc import broker_stub, produce_request
from tests.integration.support.brokers import (
    log_events,
    start_broker_cluster,
    stop_broker_cluster,
    wait_unfenced,
)
from tests.integration.support.quorum import client_for

pytestmark = pytest.mark.integration

OFFSETS_PARTITIONS = 6
HEARTBEAT_INTERVAL_MS = 60_000
"""The brokers' setting; a member is told at most a third of its session timeout (45 s by
default): 15 s, so within a test only a push tells members news."""
TOLD_INTERVAL_MS = min(HEARTBEAT_INTERVAL_MS, 45_000 // 3)
TOPIC = "orders"
TOPIC_PARTITIONS = 4
RETRIABLE = {"NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS", "COORDINATOR_NOT_AVAILABLE"}

T = TypeVar("T")


@pytest.fixture(scope="module")
def groups_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("groups"),
        broker_settings={
            "offsets_topic_num_partitions": OFFSETS_PARTITIONS,
            "group_consumer_heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        },
    )
    try:
        asyncio.run(_create_topic(c))
        yield c
    finally:
        stop_broker_cluster(c)


async def _create_topic(cluster: LocalCluster) -> None:
    async with client_for(cluster, timeout_s=10.0) as client:
        (result,) = await client.create_topics(
            [cpb.NewTopic(name=TOPIC, num_partitions=TOPIC_PARTITIONS, replication_factor=3)]
        )
        assert result.error_code == ErrorCode.NONE, result.error_message


def _error_name(e: grpc.aio.AioRpcError) -> str:
    return str(dict(e.trailing_metadata() or ()).get("raftka-error", ""))


async def find(cluster: LocalCluster, group: str) -> gpb.Coordinator:
    """FindCoordinator through any running broker, until it names one."""
    last: list[str] = [""]

    async def named() -> gpb.Coordinator | None:
        for node in cluster.brokers.values():
            if not node.running:
                continue
            try:
                async with grpc.aio.insecure_channel(node.address) as channel:
                    answer: gpb.FindCoordinatorResponse = await GroupServiceStub(
                        channel
                    ).FindCoordinator(gpb.FindCoordinatorRequest(keys=[group]), timeout=3)
            except grpc.aio.AioRpcError as e:
                last[0] = str(e.details())
                continue
            (coordinator,) = answer.coordinators
            if coordinator.error_code == ErrorCode.NONE:
                return coordinator
            last[0] = coordinator.error_message
        return None

    try:
        return await eventually(named, timeout_s=30, what=f"a coordinator for {group}")
    except AssertionError as e:
        raise AssertionError(f"{e} (last: {last[0]})") from None


async def on_coordinator(
    cluster: LocalCluster, group: str, call: Callable[[GroupServiceStub], Awaitable[T]]
) -> T:
    """Finds the group's coordinator and runs ``call`` there, again while it fails with a
    retriable coordinator error (as a client does)."""
    answered: list[T] = []

    async def attempt() -> bool | None:
        coordinator = await find(cluster, group)
        try:
            async with grpc.aio.insecure_channel(f"{coordinator.host}:{coordinator.port}") as ch:
                answered.append(await call(GroupServiceStub(ch)))
                return True
        except grpc.aio.AioRpcError as e:
            if _error_name(e) in RETRIABLE or e.code() == grpc.StatusCode.UNAVAILABLE:
                return None
            raise

    await eventually(attempt, timeout_s=40, what=f"an answer from {group}'s coordinator")
    return answered[0]


def _owned(assignment: gpb.Assignment) -> set[tuple[str, int]]:
    return {(t.topic, p) for t in assignment.topic_partitions for p in t.partitions}


def _join(group: str) -> gpb.ConsumerGroupHeartbeatRequest:
    return gpb.ConsumerGroupHeartbeatRequest(
        group_id=group,
        member_epoch=0,
        rebalance_timeout_ms=30_000,
        subscribed_topic_names=[TOPIC],
        subscription_set=True,
    )


def _heartbeat(group: str, member: gpb.ConsumerGroupHeartbeatResponse, owned: set[tuple[str, int]]) -> gpb.ConsumerGroupHeartbeatRequest:  # fmt: skip
    return gpb.ConsumerGroupHeartbeatRequest(
        group_id=group,
        member_id=member.member_id,
        member_epoch=member.member_epoch,
        owned_partitions=[
            gpb.GroupTopicPartitions(topic=TOPIC, partitions=sorted(p for _, p in owned))
        ],
        owned_partitions_set=True,
    )


def test_find_coordinator_creates_the_offsets_topic_and_names_the_partition_leader(
    groups_cluster: LocalCluster,
) -> None:
    async def body() -> None:
        coordinator = await find(groups_cluster, "payments")
        assert coordinator.partition == partition_for("payments", OFFSETS_PARTITIONS)
        async with client_for(groups_cluster, timeout_s=10.0) as client:
            (topic,) = await client.describe_topics([OFFSETS_TOPIC])
        assert len(topic.partitions) == OFFSETS_PARTITIONS
        assert {len(p.replicas) for p in topic.partitions} == {3}
        assert topic.configs["cleanup.policy"] == "compact"
        assert topic.configs["min.insync.replicas"] == "2"
        leader = next(p.leader for p in topic.partitions if p.partition == coordinator.partition)
        assert coordinator.node_id == leader
        assert f"{coordinator.host}:{coordinator.port}" == groups_cluster.brokers[leader].address

    asyncio.run(body())


def test_a_stream_member_learns_of_a_revocation_by_push(groups_cluster: LocalCluster) -> None:
    group = "analytics"

    async def body() -> None:
        # Once the coordinator serves the group (it may still be loading its partition).
        await on_coordinator(
            groups_cluster,
            group,
            lambda s: s.OffsetFetch(gpb.OffsetFetchRequest(group_id=group), timeout=5),
        )
        coordinator = await find(groups_cluster, group)
        address = f"{coordinator.host}:{coordinator.port}"
        async with grpc.aio.insecure_channel(address) as channel:
            stub = GroupServiceStub(channel)
            outbox: asyncio.Queue[gpb.ConsumerGroupHeartbeatRequest] = asyncio.Queue()

            async def requests() -> AsyncIterator[gpb.ConsumerGroupHeartbeatRequest]:
                while True:
                    yield await outbox.get()

            call = stub.ConsumerGroupStream(requests())
            await outbox.put(_join(group))
            member = await asyncio.wait_for(call.read(), 10)
            assert isinstance(member, gpb.ConsumerGroupHeartbeatResponse)
            assert member.error_code == ErrorCode.NONE, member.error_message
            owned = _owned(member.assignment)
            everything = {(TOPIC, p) for p in range(TOPIC_PARTITIONS)}
            while owned != everything:
                await outbox.put(_heartbeat(group, member, owned))
                reply = await asyncio.wait_for(call.read(), 10)
                assert isinstance(reply, gpb.ConsumerGroupHeartbeatResponse)
                member = reply
                if reply.has_assignment:
                    owned = _owned(reply.assignment)
            # A second member joins (unary). The first sends nothing more, and was told to
            # heartbeat once a minute: the revocation can only reach it as a push.
            started = time.monotonic()
            second = await stub.ConsumerGroupHeartbeat(_join(group), timeout=5)
            assert second.error_code == ErrorCode.NONE
            pushed = await asyncio.wait_for(call.read(), 10)
            assert isinstance(pushed, gpb.ConsumerGroupHeartbeatResponse)
            assert time.monotonic() - started < HEARTBEAT_INTERVAL_MS / 1000
            assert pushed.member_id == member.member_id and pushed.has_assignment
            kept = _owned(pushed.assignment)
            assert kept < everything and kept  # some partitions revoked, some kept
            call.cancel()

    asyncio.run(body())


def test_bad_group_ids_are_refused_per_key_beside_good_ones(
    groups_cluster: LocalCluster,
) -> None:
    async def body() -> None:
        address = next(iter(groups_cluster.brokers.values())).address
        async with grpc.aio.insecure_channel(address) as channel:
            answer = await GroupServiceStub(channel).FindCoordinator(
                gpb.FindCoordinatorRequest(keys=["", "x" * 250, "payments"]), timeout=5
            )
        assert [c.error_code for c in answer.coordinators] == [
            ErrorCode.INVALID_GROUP_ID,
            ErrorCode.INVALID_GROUP_ID,
            ErrorCode.NONE,
        ]

    asyncio.run(body())


def test_clients_cannot_produce_to_the_offsets_topic(groups_cluster: LocalCluster) -> None:
    async def body() -> None:
        coordinator = await find(groups_cluster, "payments")
        request = produce_request(
            OFFSETS_TOPIC, coordinator.partition, records=[bpb.Record(value=b"forged")]
        )
        async with broker_stub(f"{coordinator.host}:{coordinator.port}") as stub:
            (result,) = (await stub.Produce(request, timeout=5)).results
        assert result.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
        assert "internal topic" in result.error_message and result.base_offset == -1
        assert (await find(groups_cluster, "payments")).node_id == coordinator.node_id

    asyncio.run(body())


def test_a_member_gets_partitions_and_its_commits_survive_a_coordinator_kill(
    groups_cluster: LocalCluster,
) -> None:
    group = "billing"

    async def body() -> int:
        member = await on_coordinator(
            groups_cluster, group, lambda s: s.ConsumerGroupHeartbeat(_join(group), timeout=5)
        )
        assert member.error_code == ErrorCode.NONE and member.member_epoch > 0
        assert member.heartbeat_interval_ms == TOLD_INTERVAL_MS
        owned = _owned(member.assignment)
        # The only member: it gets every partition (at once, or after a reconciling heartbeat).
        deadline = time.monotonic() + 10
        while owned != {(TOPIC, p) for p in range(TOPIC_PARTITIONS)}:
            assert time.monotonic() < deadline, f"assignment stuck at {owned}"
            request = _heartbeat(group, member, owned)
            reply = await on_coordinator(
                groups_cluster,
                group,
                lambda s, r=request: s.ConsumerGroupHeartbeat(r, timeout=5),  # type: ignore[misc]
            )
            member = reply
            if reply.has_assignment:
                owned = _owned(reply.assignment)
        commit = gpb.OffsetCommitRequest(
            group_id=group,
            member_id=member.member_id,
            member_epoch=member.member_epoch,
            topics=[
                gpb.OffsetCommitTopic(
                    name=TOPIC,
                    partitions=[
                        gpb.OffsetCommitPartition(partition=p, offset=100 + p, leader_epoch=-1)
                        for p in range(TOPIC_PARTITIONS)
                    ],
                )
            ],
        )
        committed = await on_coordinator(
            groups_cluster, group, lambda s: s.OffsetCommit(commit, timeout=10)
        )
        assert {p.error_code for t in committed.topics for p in t.partitions} == {ErrorCode.NONE}
        expected = {p: 100 + p for p in range(TOPIC_PARTITIONS)}
        assert await _fetch(group) == expected
        # kill -9 the coordinator: another broker takes its partition over, loads it from the
        # replicated log, and answers with the same offsets.
        victim = (await find(groups_cluster, group)).node_id
        groups_cluster.kill(victim)
        assert await _fetch(group, avoid=victim) == expected
        successor = await find(groups_cluster, group)
        loads = log_events(groups_cluster, successor.node_id, "coordinator_loaded")
        assert any(
            e["partition"] == successor.partition and int(str(e["records"])) >= 2 for e in loads
        ), loads  # it replayed the member and the commit from the log
        return victim

    async def _fetch(group: str, avoid: int = -1) -> dict[int, int]:
        async def fetch(stub: GroupServiceStub) -> dict[int, int]:
            response = await stub.OffsetFetch(
                gpb.OffsetFetchRequest(
                    group_id=group,
                    topics=[gpb.GroupTopicPartitions(topic=TOPIC, partitions=[0, 1, 2, 3])],
                ),
                timeout=5,
            )
            return {p.partition: p.offset for t in response.topics for p in t.partitions}

        async def moved() -> gpb.Coordinator | None:
            coordinator = await find(groups_cluster, group)
            return coordinator if coordinator.node_id != avoid else None

        await eventually(moved, timeout_s=40, what="the coordinator moving")
        return await on_coordinator(groups_cluster, group, fetch)

    victim = asyncio.run(body())
    groups_cluster.start(victim)  # the module's cluster stays whole
    asyncio.run(wait_unfenced(groups_cluster, [victim]))
