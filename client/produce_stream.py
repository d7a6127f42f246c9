"""A producer's Produce requests to one broker over one ProduceStream.

Requests are written to the stream as the sender makes them and answered in the order
written, so each waits only for its own answer and for those before it (as on a Kafka
connection). It is called like the unary Produce (``await stream(request_bytes,
timeout=...)``): the sender needs no change. A broken stream fails every request still
waiting on it, with the error a unary call would have got (the sender retries them: they may
have been written), and the next request opens a new stream. A request unanswered within its
timeout ends the stream too, as Kafka's clients close a connection on a request timeout. A
broker without the stream (UNIMPLEMENTED) is sent unary calls from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import grpc

from raftka.common.rpc.produce_wire import ProduceRawCall, produce_call
from raftka.common.rpc.status import transport_loss
from raftka.common.rpc.stream_call import stream_failure, write_request
from raftka.v1 import broker_pb2 as pb

PRODUCE_STREAM_METHOD = "/raftka.v1.BrokerService/ProduceStream"


class ProduceStream:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._open = channel.stream_stream(
            PRODUCE_STREAM_METHOD,
            request_serializer=None,
            response_deserializer=pb.ProduceResponse.FromString,
        )
        self._unary: ProduceRawCall = produce_call(channel)
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: deque[asyncio.Future[pb.ProduceResponse]] = deque()
        self._writing = asyncio.Lock()
        self.streaming = True
        """False once the broker answered UNIMPLEMENTED: unary Produce from then on."""

    # `timeout`: the unary call's keyword, which the sender passes either way.
    async def __call__(self, request: bytes, *, timeout: float) -> pb.ProduceResponse:  # noqa: ASYNC109
        if not self.streaming:
            return await self._unary(request, timeout=timeout)
        if self._call is None:
            self._call = self._open()
            self._reader = asyncio.create_task(self._read(self._call), name="produce-stream")
        call = self._call
        answer: asyncio.Future[pb.ProduceResponse] = asyncio.get_running_loop().create_future()
        self._waiting.append(answer)
        try:
            async with self._writing:  # one write at a time on a call
                await write_request(call, request)
            return await asyncio.wait_for(asyncio.shield(answer), timeout)
        except TimeoutError:
            late = stream_failure(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer within {timeout:g} s"
            )
            self._end(call, late)
            raise late from None
        except grpc.aio.AioRpcError as failed:
            e = transport_loss(failed)
            self._end(call, e)
            if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise e from None
            self.streaming = False  # nothing was written: send it as a unary call
            return await self._unary(request, timeout=timeout)

    async def _read(self, call: Any) -> None:
        try:
            while True:
                answer = await call.read()
                if answer is grpc.aio.EOF:
                    raise stream_failure(grpc.StatusCode.UNAVAILABLE, "the broker ended the stream")
                if not self._waiting:
                    raise stream_failure(grpc.StatusCode.INTERNAL, "an answer to no request")
                waiting = self._waiting.popleft()
                if not waiting.done():
                    waiting.set_result(answer)
        except grpc.aio.AioRpcError as e:
            self._end(call, transport_loss(e))
        except asyncio.CancelledError:
            self._end(
                call, stream_failure(grpc.StatusCode.CANCELLED, "the produce stream was closed")
            )
            raise

    def _end(self, call: Any, error: grpc.aio.AioRpcError) -> None:
        """Ends ``call`` (if still the current one): every request waiting on it fails."""
        if call is not self._call:
            return
        self._call = None
        call.cancel()
        waiting, self._waiting = self._waiting, deque()
        for answer in waiting:
            if not answer.done():
                answer.set_exception(error)
                answer.exception()  # retrieved here: a caller may have timed out already
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()

    async def close(self) -> None:
        reader = self._reader
        if self._call is not None:
            self._end(self._call, stream_failure(grpc.StatusCode.CANCELLED, "the producer closed"))
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reader
