"""ReplicaFetchStream on both ends, in one process: the follower's side (one stream, answers
in order, a new stream after a silent leader, unary Fetch for a leader without the stream)
and the broker's (followers only)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from raftka.broker.replication.fetch_stream import ReplicaFetchStream
from raftka.broker.service import BrokerServicer
from raftka.common.rpc.fetch_wire import FETCH_CODEC, FetchAnswer, FetchResult, serialize_fetch
from raftka.common.rpc.registration import add_servicer
from raftka.v1 import broker_pb2 as pb
from raftka.v1.broker_pb2_grpc import BrokerServiceServicer, add_BrokerServiceServicer_to_server
from tests.conditions import until
from tests.unit.inprocess_server import serve as run_with_server
from tests.unit.inprocess_server import unary_only


def _answer(request: pb.FetchRequest, by: str) -> FetchAnswer:
    (topic,) = request.topics
    (p,) = topic.partitions
    return FetchAnswer(
        [FetchResult(topic=by, partition=p.partition, high_watermark=p.fetch_offset)]
    )


class Leader(BrokerServiceServicer):
    """Answers each fetch with its offset as the high watermark, naming the path it took."""

    def __init__(self, *, silent_at: int = -1) -> None:
        self.streams = 0
        self.unary = 0
        self._silent_at = silent_at

    async def Fetch(self, request: pb.FetchRequest, context: Any) -> FetchAnswer:  # type: ignore[override]
        self.unary += 1
        return _answer(request, "unary")

    async def ReplicaFetchStream(  # type: ignore[override]
        self, requests: AsyncIterator[pb.FetchRequest], context: Any
    ) -> AsyncIterator[FetchAnswer]:
        self.streams += 1
        async for request in requests:
            if request.topics[0].partitions[0].fetch_offset == self._silent_at:
                self._silent_at = -1
                await asyncio.Event().wait()  # a paused leader: never answers
            yield _answer(request, "stream")


def _request(offset: int) -> pb.FetchRequest:
    return pb.FetchRequest(
        replica_id=5,
        topics=[pb.FetchTopic(topic="t", partitions=[pb.FetchPartition(fetch_offset=offset)])],
    )


def serve(
    servicer: BrokerServiceServicer,
    body: Callable[[grpc.aio.Channel], Awaitable[None]],
    *,
    stream: bool = True,
) -> None:
    def register(server: grpc.aio.Server) -> None:
        codecs = {"Fetch": FETCH_CODEC, "ReplicaFetchStream": FETCH_CODEC}
        add_servicer(add_BrokerServiceServicer_to_server, servicer, server, codecs)

    older = unary_only(
        "Fetch", servicer.Fetch, pb.FetchRequest.FromString, serialize_fetch
    )  # no ReplicaFetchStream
    run_with_server(register if stream else older, body)


def test_fetches_go_over_one_stream_and_are_answered_in_order() -> None:
    leader = Leader()  # type: ignore[abstract]

    async def body(channel: grpc.aio.Channel) -> None:
        stream = ReplicaFetchStream(channel)
        for offset in range(5):
            answer = await stream.fetch(_request(offset), answer_within_s=5)
            assert [(r.topic, r.high_watermark) for r in answer.results] == [("stream", offset)]
        stream.close()

    serve(leader, body)
    assert (leader.streams, leader.unary) == (1, 0)


def test_a_silent_leader_times_out_and_the_next_fetch_opens_a_new_stream() -> None:
    leader = Leader(silent_at=1)  # type: ignore[abstract]

    async def body(channel: grpc.aio.Channel) -> None:
        stream = ReplicaFetchStream(channel)
        await stream.fetch(_request(0), answer_within_s=5)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stream.fetch(_request(1), answer_within_s=0.2)
        assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        answer = await stream.fetch(_request(2), answer_within_s=5)
        assert answer.results[0].high_watermark == 2
        stream.close()

    serve(leader, body)
    assert leader.streams == 2


def test_a_leader_without_the_stream_is_fetched_from_with_unary_calls() -> None:
    leader = Leader()  # type: ignore[abstract]

    async def body(channel: grpc.aio.Channel) -> None:
        stream = ReplicaFetchStream(channel)
        for offset in range(3):
            answer = await stream.fetch(_request(offset), answer_within_s=5)
            assert [(r.topic, r.high_watermark) for r in answer.results] == [("unary", offset)]
        assert not stream.streaming

    serve(leader, body, stream=False)
    assert leader.unary == 3


def test_the_broker_takes_only_followers_on_the_stream() -> None:
    servicer = BrokerServicer.__new__(BrokerServicer)  # the check comes before any state is used

    async def body(channel: grpc.aio.Channel) -> None:
        call = channel.stream_stream(
            "/raftka.v1.BrokerService/ReplicaFetchStream",
            request_serializer=pb.FetchRequest.SerializeToString,
            response_deserializer=pb.FetchResponse.FromString,
        )()
        await call.write(pb.FetchRequest(topics=[pb.FetchTopic(topic="t")]))  # no replica_id
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call.read()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "for followers" in (refused.value.details() or "")

    serve(servicer, body)


class EndingLeader(Leader):
    """Ends each stream (status OK) right after answering its first request."""

    async def ReplicaFetchStream(  # type: ignore[override]
        self, requests: AsyncIterator[pb.FetchRequest], context: Any
    ) -> AsyncIterator[FetchAnswer]:
        self.streams += 1
        async for request in requests:
            yield _answer(request, "stream")
            return


def test_a_stream_the_leader_ended_fails_the_next_fetch_as_unavailable_then_reopens() -> None:
    leader = EndingLeader()  # type: ignore[abstract]

    async def body(channel: grpc.aio.Channel) -> None:
        stream = ReplicaFetchStream(channel)
        await stream.fetch(_request(0), answer_within_s=5)
        ended = stream._call
        await until(ended.done, timeout_s=5, what="the end of the stream")
        # written after the call finished: an AioRpcError like any lost stream, which the
        # fetcher handles, not asyncio's InvalidStateError, which would end its task
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stream.fetch(_request(1), answer_within_s=5)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        answer = await stream.fetch(_request(2), answer_within_s=5)
        assert answer.results[0].high_watermark == 2
        stream.close()

    serve(leader, body)
    assert leader.streams == 2
