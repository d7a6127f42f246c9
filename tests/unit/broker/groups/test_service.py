"""The GroupService over a real in-process gRPC server, with the fake shard: bad input gets
clear per-item errors and changes nothing, coordinator errors fail the call, the stream form
answers heartbeats and forwards pushes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from raftka.broker.groups.api import TopicsView
from raftka.broker.groups.service import GroupServicer, peer_host
from raftka.broker.groups.validation import check_group_id
from raftka.common.errors import InvalidProducerEpochError
from raftka.common.group_errors import InvalidGroupIdError
from raftka.common.rpc.channels import open_channel
from raftka.common.rpc.status import ERROR_KEY
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub, add_GroupServiceServicer_to_server
from tests.unit.broker.groups.test_runtime import GROUP, Harness

OTHER_GROUP = "b"  # partition 2 of 4: led by broker 2


class FakeOffsetsTopic:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.exists = True
        self.ensured = 0

    def ensure(self) -> int | None:
        self.ensured += 1
        return self.harness.meta.partitions if self.exists else None

    def leader_of(self, partition: int) -> int:
        return self.harness.meta.leader_of(partition)

    def client_endpoint(self, broker_id: int) -> tuple[str, int] | None:
        return (f"broker{broker_id}.example", 9000 + broker_id) if broker_id in (1, 2) else None

    def topics(self) -> TopicsView:
        return self.harness.meta.topics()


Body = Callable[[Harness, FakeOffsetsTopic, GroupServiceStub], Awaitable[None]]


def run(body: Body) -> None:
    async def main() -> None:
        h = Harness()
        h.meta.leaders[2] = 2
        h.lead()
        await h.loaded()
        topic = FakeOffsetsTopic(h)
        server = grpc.aio.server()
        add_GroupServiceServicer_to_server(
            GroupServicer(coordinator=h.coordinator, offsets_topic=topic), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with open_channel(f"127.0.0.1:{port}", client_id="billing") as channel:
                await body(h, topic, GroupServiceStub(channel))
        finally:
            await server.stop(None)
            await h.coordinator.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def _error_of(info: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> str:
    return str(dict(info.value.trailing_metadata() or ()).get(ERROR_KEY, ""))


def _commit(group: str, partitions: int = 1) -> gpb.OffsetCommitRequest:
    return gpb.OffsetCommitRequest(
        group_id=group,
        member_epoch=-1,
        topics=[
            gpb.OffsetCommitTopic(
                name="events",
                partitions=[
                    gpb.OffsetCommitPartition(partition=i, offset=5) for i in range(partitions)
                ],
            )
        ],
    )


def test_group_ids_are_1_to_249_bytes_of_utf8() -> None:
    check_group_id("g")
    check_group_id("x" * 249)
    check_group_id("é" * 124)  # 248 bytes
    for bad in ("", "x" * 250, "é" * 125):
        with pytest.raises(InvalidGroupIdError, match="1 to 249 bytes"):
            check_group_id(bad)


def test_peer_host_strips_the_port() -> None:
    assert peer_host("ipv4:10.0.0.1:5000") == "10.0.0.1"
    assert peer_host("ipv6:[::1]:5000") == "::1"
    assert peer_host("unix:/tmp/sock") == "/tmp/sock"


def test_find_coordinator_answers_per_key() -> None:
    async def body(h: Harness, topic: FakeOffsetsTopic, stub: GroupServiceStub) -> None:
        response = await stub.FindCoordinator(
            gpb.FindCoordinatorRequest(keys=[GROUP, "", OTHER_GROUP, "c"])
        )
        mine, bad, other, leaderless = response.coordinators
        assert (mine.node_id, mine.host, mine.port, mine.partition) == (
            1,
            "broker1.example",
            9001,
            1,
        )
        assert bad.error_code == ErrorCode.INVALID_GROUP_ID and bad.node_id == -1
        assert (other.node_id, other.port, other.partition) == (2, 9002, 2)
        assert leaderless.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
        assert "no reachable leader" in leaderless.error_message
        topic.exists = False  # __consumer_offsets being created
        response = await stub.FindCoordinator(gpb.FindCoordinatorRequest(keys=[GROUP]))
        assert response.coordinators[0].error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
        assert topic.ensured == 2

    run(body)


@pytest.mark.parametrize("keys", [0, 10_001])
def test_find_coordinator_bounds_its_keys(keys: int) -> None:
    async def body(h: Harness, topic: FakeOffsetsTopic, stub: GroupServiceStub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.FindCoordinator(gpb.FindCoordinatorRequest(keys=["g"] * keys))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _error_of(info) == "INVALID_REQUEST"
        assert topic.ensured == 0  # refused before anything was done

    run(body)


def test_an_unknown_key_type_is_refused() -> None:
    async def body(h: Harness, topic: FakeOffsetsTopic, stub: GroupServiceStub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.FindCoordinator(
                gpb.FindCoordinatorRequest(key_type=1, keys=[GROUP])  # type: ignore[arg-type]
            )
        assert _error_of(info) == "INVALID_REQUEST" and "COORDINATOR_TYPE_GROUP" in str(
            info.value.details()
        )

    run(body)


def test_bad_input_gets_per_item_errors_and_changes_nothing() -> None:
    async def body(h: Harness, topic: FakeOffsetsTopic, stub: GroupServiceStub) -> None:
        commit = await stub.OffsetCommit(_commit("", partitions=2))
        codes = [p.error_code for t in commit.topics for p in t.partitions]
        assert codes == [ErrorCode.INVALID_GROUP_ID] * 2
        fetched = await stub.OffsetFetch(gpb.OffsetFetchRequest(group_id="x" * 250))
        assert fetched.error_code == ErrorCode.INVALID_GROUP_ID
        deleted = await stub.OffsetDelete(
            gpb.OffsetDeleteRequest(
                group_id="", topics=[gpb.GroupTopicPartitions(topic="events", partitions=[0])]
            )
        )
        assert deleted.error_code == ErrorCode.INVALID_GROUP_ID
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.OffsetCommit(_commit(GROUP, partitions=10_001))
        assert _error_of(info) == "INVALID_REQUEST" and "10001 items" in str(info.value.details())
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.OffsetCommit(_commit(GROUP, partitions=0))
        assert _error_of(info) == "INVALID_REQUEST"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.DeleteGroups(gpb.DeleteGroupsRequest(group_ids=["g"] * 10_001))
        assert _error_of(info) == "INVALID_REQUEST"
        assert h.log.appends == []  # nothing written
        # ... and the coordinator keeps serving.
        ok = await stub.OffsetCommit(_commit(GROUP))
        assert ok.topics[0].partitions[0].error_code == ErrorCode.NONE
        fetched = await stub.OffsetFetch(gpb.OffsetFetchRequest(group_id=GROUP))
        assert fetched.topics[0].partitions[0].offset == 5

    run(body)


def test_a_single_group_call_to_the_wrong_broker_fails_with_not_coordinator() -> None:
    async def body(h: Harness, topic: FakeOffsetsTopic, stub: GroupServiceStub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.OffsetCommit(_commit(OTHER_GROUP))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert _error_of(info) == "NOT_COORDINATOR"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ConsumerGroupHeartbeat(
                gpb.ConsumerGroupHeartbeatRequest(group_id=OTHER_GROUP)
            )
        assert _error_of(info) == "NOT_COORDINATOR"

    run(body)


def test_many_group_calls_report_errors_per_group() -> None:
    async def body(h: Harness, topic: FakeOffsetsTopic, stub: GroupServiceStub) -> None:
        await stub.OffsetCommit(_commit(GROUP))
        described = await stub.DescribeGroups(
            gpb.DescribeGroupsRequest(group_ids=[GROUP, "", OTHER_GROUP])
        )
        assert [g.error_code for g in described.groups] == [
            ErrorCode.NONE,
            ErrorCode.INVALID_GROUP_ID,
            ErrorCode.NOT_COORDINATOR,
        ]
        deleted = await stub.DeleteGroups(
            gpb.DeleteGroupsRequest(group_ids=[OTHER_GROUP, GROUP, ""])
        )
        assert [(r.group_id, r.error_code) for r in deleted.results] == [
            (OTHER_GROUP, ErrorCode.NOT_COORDINATOR),
            (GROUP, ErrorCode.NONE),
            ("", ErrorCode.INVALID_GROUP_ID),
        ]
        listed = await stub.ListGroups(gpb.ListGroupsRequest())
        assert [g.group_id for g in listed.groups] == []  # its offsets were deleted

    run(body)


def test_heartbeat_passes_the_client_id_and_host() -> None:
    async def body(h: Harness, topic: FakeOffsetsTopic, stub: GroupServiceStub) -> None:
        joined = await stub.ConsumerGroupHeartbeat(
            gpb.ConsumerGroupHeartbeatRequest(group_id=GROUP, member_epoch=0)
        )
        assert joined.member_id == "m1" and joined.member_epoch == 1
        assert h.shards[-1].heartbeats == [("billing", "127.0.0.1")]

    run(body)


def test_a_stream_member_gets_pushes_and_bad_requests_answered_in_stream() -> None:
    async def body(h: Harness, topic: FakeOffsetsTopic, stub: GroupServiceStub) -> None:
        outbox: asyncio.Queue[gpb.ConsumerGroupHeartbeatRequest | None] = asyncio.Queue()

        async def requests() -> AsyncIterator[gpb.ConsumerGroupHeartbeatRequest]:
            while (request := await outbox.get()) is not None:
                yield request

        call = stub.ConsumerGroupStream(requests())
        await outbox.put(gpb.ConsumerGroupHeartbeatRequest(group_id=GROUP, member_epoch=0))
        joined = await call.read()
        assert joined.member_id == "m1"
        # Another member joins (unary): the coordinator pushes to m1 without a heartbeat.
        await stub.ConsumerGroupHeartbeat(
            gpb.ConsumerGroupHeartbeatRequest(group_id=GROUP, member_epoch=0)
        )
        pushed = await call.read()
        assert pushed.member_id == "m1" and pushed.member_epoch == 2 and pushed.has_assignment
        # Bad input is answered on the stream, which stays open.
        await outbox.put(gpb.ConsumerGroupHeartbeatRequest(group_id="", member_epoch=0))
        refused = await call.read()
        assert refused.error_code == ErrorCode.INVALID_GROUP_ID
        await outbox.put(
            gpb.ConsumerGroupHeartbeatRequest(group_id=GROUP, member_id="m1", member_epoch=1)
        )
        stayed = await call.read()
        assert (stayed.error_code, stayed.member_id) == (ErrorCode.NONE, "m1")
        await outbox.put(None)
        assert await call.read() == grpc.aio.EOF
        assert h.coordinator._streams == {}  # unsubscribed at the stream's end

    run(body)


def test_a_stream_ends_with_not_coordinator_when_leadership_moves() -> None:
    async def body(h: Harness, topic: FakeOffsetsTopic, stub: GroupServiceStub) -> None:
        outbox: asyncio.Queue[gpb.ConsumerGroupHeartbeatRequest] = asyncio.Queue()

        async def requests() -> AsyncIterator[gpb.ConsumerGroupHeartbeatRequest]:
            while True:
                yield await outbox.get()

        call = stub.ConsumerGroupStream(requests())
        await outbox.put(gpb.ConsumerGroupHeartbeatRequest(group_id=GROUP, member_epoch=0))
        assert (await call.read()).member_id == "m1"
        h.log.led.clear()
        h.meta.leaders[1] = 2
        h.coordinator.sync()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert _error_of(info) == "NOT_COORDINATOR"

    run(body)


def _txn_commit(group: str, partitions: int = 1) -> gpb.TxnOffsetCommitRequest:
    return gpb.TxnOffsetCommitRequest(
        transactional_id="tx",
        group_id=group,
        producer_id=42,
        producer_epoch=0,
        member_epoch=-1,
        topics=_commit(group, partitions).topics,
    )


def test_txn_offset_commit_is_checked_like_offset_commit_and_stays_pending() -> None:
    async def body(h: Harness, topic: FakeOffsetsTopic, stub: GroupServiceStub) -> None:
        refused = await stub.TxnOffsetCommit(_txn_commit("", partitions=2))
        codes = [p.error_code for t in refused.topics for p in t.partitions]
        assert codes == [ErrorCode.INVALID_GROUP_ID] * 2
        for count in (0, 10_001):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.TxnOffsetCommit(_txn_commit(GROUP, partitions=count))
            assert _error_of(info) == "INVALID_REQUEST"
        assert h.log.appends == []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.TxnOffsetCommit(_txn_commit(OTHER_GROUP))
        assert _error_of(info) == "NOT_COORDINATOR"
        ok = await stub.TxnOffsetCommit(_txn_commit(GROUP))
        assert ok.topics[0].partitions[0].error_code == ErrorCode.NONE
        assert h.log.producers == [(42, 0)]
        fetched = await stub.OffsetFetch(gpb.OffsetFetchRequest(group_id=GROUP))
        assert list(fetched.topics) == []  # pending until the marker

    run(body)


def test_txn_offset_commit_of_a_fenced_producer_answers_producer_fenced() -> None:
    async def body(h: Harness, topic: FakeOffsetsTopic, stub: GroupServiceStub) -> None:
        h.log.fail_next = InvalidProducerEpochError("producer 42 has epoch 1 on the partition")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.TxnOffsetCommit(_txn_commit(GROUP))
        assert _error_of(info) == "PRODUCER_FENCED"
        assert "close this producer" in str(info.value.details())

    run(body)
