"""A follower's fetches to one leader broker over one ReplicaFetchStream.

Each request written is answered by one message, in order: the same long poll and answer as
the unary Fetch, without a new gRPC call for each (a call's setup costs a Python broker about
as much again as its message). The stream is opened on first use and again after it breaks;
a leader that does not serve it (UNIMPLEMENTED: an older broker during a rolling upgrade) is
fetched from with the unary Fetch from then on.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import grpc

from raftka.common.rpc.fetch_wire import FetchAnswer, decode_fetch_response, fetch_call
from raftka.common.rpc.status import transport_loss
from raftka.common.rpc.stream_call import stream_failure, write_request
from raftka.v1 import broker_pb2 as pb

REPLICA_FETCH_STREAM_METHOD = "/raftka.v1.BrokerService/ReplicaFetchStream"


class ReplicaFetchStream:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._open = channel.stream_stream(
            REPLICA_FETCH_STREAM_METHOD,
            request_serializer=pb.FetchRequest.SerializeToString,
            response_deserializer=decode_fetch_response,
        )
        self._unary = fetch_call(channel)
        self._call: Any = None
        self.streaming = True
        """False once the leader answered UNIMPLEMENTED: unary Fetch from then on."""

    async def fetch(self, request: pb.FetchRequest, *, answer_within_s: float) -> FetchAnswer:
        """The leader's answer to ``request``; raises AioRpcError as a unary call would
        (DEADLINE_EXCEEDED when no answer came within ``answer_within_s`` seconds)."""
        if not self.streaming:
            return await self._unary(request, timeout=answer_within_s)
        if self._call is None:
            self._call = self._open()
        call = self._call
        try:
            # The write is bounded too: a paused leader stops taking them once its window
            # fills. (asyncio.timeout, not wait_for, which on Python 3.11 can drop a
            # cancellation that meets an answer, and the fetcher would not stop.)
            async with asyncio.timeout(answer_within_s):
                answer = await self._exchange(call, request)
        except TimeoutError:
            self.close()
            raise stream_failure(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer within {answer_within_s:g} s"
            ) from None
        except grpc.aio.AioRpcError as failed:
            self.close()
            e = transport_loss(failed)
            if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise e from None
            self.streaming = False
            return await self._unary(request, timeout=answer_within_s)
        if answer is grpc.aio.EOF:
            self.close()
            raise stream_failure(grpc.StatusCode.UNAVAILABLE, "the leader ended the fetch stream")
        return cast(FetchAnswer, answer)

    @staticmethod
    async def _exchange(call: Any, request: pb.FetchRequest) -> Any:
        await write_request(call, request)
        return await call.read()

    def close(self) -> None:
        """Ends the stream (the next fetch opens a new one)."""
        if self._call is not None:
            self._call.cancel()
            self._call = None
