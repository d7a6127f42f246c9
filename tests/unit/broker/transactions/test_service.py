"""The TransactionService over a real in-process gRPC server, with the fake shard: bad input is
refused with INVALID_REQUEST and changes nothing, unknown partitions are answered per
partition, coordinator errors fail the call, WriteTxnMarkers goes to the marker writer; and
GroupService.FindCoordinator for transactional ids."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import pytest

from raftka.broker.groups.service import GroupServicer
from raftka.broker.transactions.service import TransactionServicer
from raftka.common.rpc.channels import open_channel
from raftka.common.rpc.status import ERROR_KEY
from raftka.v1 import groups_pb2 as gpb
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub, add_GroupServiceServicer_to_server
from raftka.v1.transactions_pb2_grpc import (
    TransactionServiceStub,
    add_TransactionServiceServicer_to_server,
)
from tests.unit.broker.groups.test_runtime import Harness as GroupHarness
from tests.unit.broker.transactions.test_runtime import TID, Harness

OTHER = "t2"  # partition 2 of 4: led by broker 2


class FakeMarkerWriter:
    def __init__(self) -> None:
        self.requests: list[tpb.WriteTxnMarkersRequest] = []

    async def write(self, request: tpb.WriteTxnMarkersRequest) -> tpb.WriteTxnMarkersResponse:
        self.requests.append(request)
        return tpb.WriteTxnMarkersResponse(
            markers=[tpb.TxnMarkerResult(producer_id=m.producer_id) for m in request.markers]
        )


class FakeTopicView:
    """__transaction_state for FindCoordinator."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.exists = True
        self.ensured = 0

    def ensure(self) -> int | None:
        self.ensured += 1
        return self.h.topic.partitions if self.exists else None

    def leader_of(self, partition: int) -> int:
        return self.h.topic.leader_of(partition)

    def client_endpoint(self, broker_id: int) -> tuple[str, int] | None:
        return (f"broker{broker_id}.example", 9000 + broker_id)

    def topics(self) -> dict[str, int]:
        return self.h.topic.topics()


class Stubs:
    def __init__(self, channel: grpc.aio.Channel, view: FakeTopicView) -> None:
        self.txn = TransactionServiceStub(channel)
        self.groups = GroupServiceStub(channel)
        self.view = view  # __transaction_state as FindCoordinator sees it


Body = Callable[[Harness, Stubs], Awaitable[None]]


def run(body: Body, *, writer: FakeMarkerWriter | None = None) -> None:
    async def main() -> None:
        h = Harness()
        h.topic.leaders[2] = 2
        h.lead()
        await h.loaded()
        groups = GroupHarness()
        server = grpc.aio.server()
        add_TransactionServiceServicer_to_server(
            TransactionServicer(
                coordinator=h.coordinator, marker_writer=writer or FakeMarkerWriter()
            ),
            server,
        )
        view = FakeTopicView(h)
        add_GroupServiceServicer_to_server(
            GroupServicer(
                coordinator=groups.coordinator,
                offsets_topic=FakeTopicView(h),
                transaction_topic=view,
            ),
            server,
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with open_channel(f"127.0.0.1:{port}") as channel:
                await body(h, Stubs(channel, view))
        finally:
            await server.stop(None)
            await h.coordinator.close()
            await groups.coordinator.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def _error_of(info: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> str:
    return str(dict(info.value.trailing_metadata() or ()).get(ERROR_KEY, ""))


def _add(tid: str, pid: int, epoch: int, *tps: tuple[str, int]) -> tpb.AddPartitionsToTxnRequest:
    request = tpb.AddPartitionsToTxnRequest(
        transactional_id=tid, producer_id=pid, producer_epoch=epoch
    )
    for topic, partition in tps:
        request.topics.add(topic=topic, partitions=[partition])
    return request


def test_bad_ids_and_bounds_are_refused_before_anything_changes() -> None:
    async def body(h: Harness, stubs: Stubs) -> None:
        ids = await h.coordinator.init_producer_id(TID, 60_000)
        appended = len(h.log.appends)
        pid, epoch = ids.producer_id, ids.producer_epoch
        bad = [
            stubs.txn.AddPartitionsToTxn(_add("", pid, epoch, ("events", 0))),
            stubs.txn.AddPartitionsToTxn(_add("x" * 250, pid, epoch, ("events", 0))),
            stubs.txn.AddPartitionsToTxn(_add(TID, pid, epoch)),  # no partitions
            stubs.txn.AddPartitionsToTxn(_add(TID, -1, epoch, ("events", 0))),
            stubs.txn.AddPartitionsToTxn(_add(TID, pid, -1, ("events", 0))),
            stubs.txn.AddPartitionsToTxn(_add(TID, pid, epoch, ("events", -1))),
            stubs.txn.AddPartitionsToTxn(_add(TID, pid, epoch, ("", 0))),
            stubs.txn.AddPartitionsToTxn(
                tpb.AddPartitionsToTxnRequest(
                    transactional_id=TID,
                    producer_id=pid,
                    producer_epoch=epoch,
                    topics=[tpb.TxnTopicPartitions(topic="events", partitions=[0] * 10_001)],
                )
            ),
            stubs.txn.AddOffsetsToTxn(
                tpb.AddOffsetsToTxnRequest(
                    transactional_id=TID, producer_id=pid, producer_epoch=epoch, group_id=""
                )
            ),
            stubs.txn.EndTxn(tpb.EndTxnRequest(transactional_id="é" * 125, producer_id=pid)),
            stubs.txn.DescribeTransactions(tpb.DescribeTransactionsRequest()),
            stubs.txn.ListTransactions(
                tpb.ListTransactionsRequest(producer_id_filters=list(range(10_001)))
            ),
        ]
        for call in bad:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert _error_of(info) in ("INVALID_REQUEST", "INVALID_GROUP_ID")
            assert info.value.details()  # says what was wrong
        assert len(h.log.appends) == appended

    run(body)


def test_unknown_partitions_are_answered_per_partition_and_nothing_is_added() -> None:
    async def body(h: Harness, stubs: Stubs) -> None:
        ids = await h.coordinator.init_producer_id(TID, 60_000)
        pid, epoch = ids.producer_id, ids.producer_epoch
        response = await stubs.txn.AddPartitionsToTxn(
            _add(TID, pid, epoch, ("events", 0), ("events", 9), ("nope", 0))
        )
        assert [(r.topic, r.partition, r.error_code) for r in response.results] == [
            ("events", 0, ErrorCode.OPERATION_NOT_ATTEMPTED),
            ("events", 9, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
            ("nope", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ]
        assert h.shards[-1].txns[TID].state == "Empty"
        response = await stubs.txn.AddPartitionsToTxn(_add(TID, pid, epoch, ("events", 0)))
        assert [r.error_code for r in response.results] == [ErrorCode.NONE]
        assert h.shards[-1].txns[TID].state == "Ongoing"

    run(body)


def test_end_txn_answers_the_next_epoch_and_errors_fail_the_call() -> None:
    async def body(h: Harness, stubs: Stubs) -> None:
        ids = await h.coordinator.init_producer_id(TID, 60_000)
        pid, epoch = ids.producer_id, ids.producer_epoch
        await stubs.txn.AddPartitionsToTxn(_add(TID, pid, epoch, ("events", 1)))
        ended = await stubs.txn.EndTxn(
            tpb.EndTxnRequest(
                transactional_id=TID, producer_id=pid, producer_epoch=epoch, committed=True
            )
        )
        assert (ended.producer_id, ended.producer_epoch) == (pid, epoch + 1)
        with pytest.raises(grpc.aio.AioRpcError) as info:  # the old epoch
            await stubs.txn.AddPartitionsToTxn(_add(TID, pid, epoch, ("events", 1)))
        assert _error_of(info) == "PRODUCER_FENCED"
        with pytest.raises(grpc.aio.AioRpcError) as info:  # coordinated by broker 2
            await stubs.txn.EndTxn(tpb.EndTxnRequest(transactional_id=OTHER, producer_id=1))
        assert _error_of(info) == "NOT_COORDINATOR"

    run(body)


def test_describe_answers_per_id() -> None:
    async def body(h: Harness, stubs: Stubs) -> None:
        await h.coordinator.init_producer_id(TID, 60_000)
        response = await stubs.txn.DescribeTransactions(
            tpb.DescribeTransactionsRequest(transactional_ids=[TID, OTHER, "x" * 250, "t5"])
        )
        assert [(d.transactional_id[:5], d.error_code) for d in response.transactions] == [
            (TID, ErrorCode.NONE),
            (OTHER, ErrorCode.NOT_COORDINATOR),
            ("xxxxx", ErrorCode.INVALID_REQUEST),
            ("t5", ErrorCode.TRANSACTIONAL_ID_NOT_FOUND),
        ]
        assert response.transactions[0].state == "Empty"
        listed = await stubs.txn.ListTransactions(tpb.ListTransactionsRequest())
        assert [t.transactional_id for t in listed.transactions] == [TID]

    run(body)


def test_write_txn_markers_goes_to_the_marker_writer() -> None:
    writer = FakeMarkerWriter()

    async def body(h: Harness, stubs: Stubs) -> None:
        request = tpb.WriteTxnMarkersRequest(
            markers=[
                tpb.TxnMarker(
                    producer_id=7,
                    producer_epoch=1,
                    committed=True,
                    topics=[tpb.TxnTopicPartitions(topic="events", partitions=[0])],
                )
            ]
        )
        response = await stubs.txn.WriteTxnMarkers(request)
        assert [m.producer_id for m in response.markers] == [7]
        assert writer.requests == [request]

    run(body, writer=writer)


def test_find_coordinator_for_transactional_ids_creates_the_topic_and_names_the_leader() -> None:
    async def body(h: Harness, stubs: Stubs) -> None:
        view = stubs.view
        view.exists = False
        request = gpb.FindCoordinatorRequest(
            key_type=gpb.COORDINATOR_TYPE_TRANSACTION, keys=[TID, OTHER, ""]
        )
        response = await stubs.groups.FindCoordinator(request)
        assert view.ensured == 1
        assert [c.error_code for c in response.coordinators] == [
            ErrorCode.COORDINATOR_NOT_AVAILABLE,
            ErrorCode.COORDINATOR_NOT_AVAILABLE,
            ErrorCode.INVALID_REQUEST,
        ]
        assert "__transaction_state is being created" in response.coordinators[0].error_message
        view.exists = True
        response = await stubs.groups.FindCoordinator(request)
        assert [(c.node_id, c.partition, c.port) for c in response.coordinators[:2]] == [
            (1, 1, 9001),
            (2, 2, 9002),
        ]

    run(body)
