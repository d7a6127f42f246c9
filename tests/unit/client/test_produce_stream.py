"""The producer's ProduceStream against an in-process broker: answers matched to requests by
order, a broken stream fails what waits on it and the next request opens a new one, a silent
broker times out, and a broker without the stream gets unary calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from raftka.broker.pipelined import in_order
from raftka.client.produce_stream import ProduceStream
from raftka.common.rpc.produce_wire import encode_produce_request
from raftka.v1 import broker_pb2 as pb
from raftka.v1.broker_pb2_grpc import BrokerServiceServicer, add_BrokerServiceServicer_to_server
from tests.conditions import until
from tests.unit.inprocess_server import serve as run_with_server
from tests.unit.inprocess_server import unary_only


def _request(partition: int) -> bytes:
    return encode_produce_request(-1, 1000, "", [("t", [(partition, b"batch")])])


def _answer(request: pb.ProduceRequest, path: str) -> pb.ProduceResponse:
    p = request.topics[0].partitions[0].partition
    return pb.ProduceResponse(results=[pb.PartitionProduceResult(topic=path, partition=p)])


class Broker(BrokerServiceServicer):
    """Answers each request with its partition; ``hold`` keeps chosen partitions' answers
    until released; partition 99 breaks the stream."""

    def __init__(self) -> None:
        self.streams = 0
        self.unary = 0
        self.hold: dict[int, asyncio.Event] = {}

    async def Produce(self, request: pb.ProduceRequest, context: Any) -> pb.ProduceResponse:
        self.unary += 1
        return _answer(request, "unary")

    async def ProduceStream(
        self, requests: AsyncIterator[pb.ProduceRequest], context: Any
    ) -> AsyncIterator[pb.ProduceResponse]:
        self.streams += 1

        async def handle(request: pb.ProduceRequest) -> pb.ProduceResponse:
            p = request.topics[0].partitions[0].partition
            if p == 99:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "broken on purpose")
            if p in self.hold:
                await self.hold[p].wait()
            return _answer(request, "stream")

        async for answer in in_order(requests, handle, max_in_flight=8):
            yield answer


def serve(
    broker: BrokerServiceServicer,
    body: Callable[[grpc.aio.Channel], Awaitable[None]],
    *,
    stream: bool = True,
) -> None:
    older = unary_only(
        "Produce",
        broker.Produce,
        pb.ProduceRequest.FromString,
        pb.ProduceResponse.SerializeToString,
    )  # no ProduceStream
    run_with_server(
        (lambda server: add_BrokerServiceServicer_to_server(broker, server)) if stream else older,
        body,
    )


def test_requests_in_flight_get_their_own_answers_in_order() -> None:
    broker = Broker()  # type: ignore[abstract]

    async def body(channel: grpc.aio.Channel) -> None:
        stream = ProduceStream(channel)
        broker.hold[0] = asyncio.Event()
        calls = [asyncio.create_task(stream(_request(p), timeout=5)) for p in range(4)]
        await until(lambda: len(stream._waiting) == 4, what="four requests written")
        assert not any(c.done() for c in calls), "answers wait for the first, held one"
        broker.hold[0].set()
        answers = await asyncio.gather(*calls)
        assert [a.results[0].partition for a in answers] == [0, 1, 2, 3]
        await stream.close()

    serve(broker, body)
    assert (broker.streams, broker.unary) == (1, 0)


def test_a_broken_stream_fails_what_waits_and_the_next_request_opens_a_new_one() -> None:
    broker = Broker()  # type: ignore[abstract]

    async def body(channel: grpc.aio.Channel) -> None:
        stream = ProduceStream(channel)
        broker.hold[1] = asyncio.Event()
        waiting = asyncio.create_task(stream(_request(1), timeout=5))
        await until(lambda: len(stream._waiting) == 1, what="the first request written")
        with pytest.raises(grpc.aio.AioRpcError) as broken:
            await stream(_request(99), timeout=5)
        assert broken.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError):
            await waiting  # it may have been written: the sender retries it
        answer = await stream(_request(2), timeout=5)
        assert answer.results[0].partition == 2
        await stream.close()

    serve(broker, body)
    assert broker.streams == 2


def test_an_unanswered_request_times_out_and_ends_the_stream() -> None:
    broker = Broker()  # type: ignore[abstract]

    async def body(channel: grpc.aio.Channel) -> None:
        stream = ProduceStream(channel)
        broker.hold[3] = asyncio.Event()  # never set: a frozen broker
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await stream(_request(3), timeout=0.2)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert (await stream(_request(4), timeout=5)).results[0].partition == 4
        await stream.close()

    serve(broker, body)
    assert broker.streams == 2


def test_a_broker_without_the_stream_gets_unary_calls() -> None:
    broker = Broker()  # type: ignore[abstract]

    async def body(channel: grpc.aio.Channel) -> None:
        stream = ProduceStream(channel)
        for p in range(3):
            answer = await stream(_request(p), timeout=5)
            assert (answer.results[0].topic, answer.results[0].partition) == ("unary", p)
        assert not stream.streaming
        await stream.close()

    serve(broker, body, stream=False)
    assert broker.unary == 3
