"""write_request: a write to a stream call that is over raises an AioRpcError with the call's
own status (UNAVAILABLE when it ended without one), never grpc.aio's InvalidStateError or a
CancelledError that would read as the writer's task being cancelled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from raftka.common.rpc.stream_call import write_request
from tests.conditions import until
from tests.unit.inprocess_server import serve

METHOD = "/test.Echo/Chat"


def _register(server: grpc.aio.Server) -> None:
    async def chat(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            if request == b"deny":
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not you")
            yield request
            if request == b"last":
                return  # ends the call with status OK

    handler = grpc.stream_stream_rpc_method_handler(chat)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Echo", {"Chat": handler}),)
    )


def _open(channel: grpc.aio.Channel) -> Any:
    return channel.stream_stream(METHOD)()


@pytest.mark.parametrize(
    ("ending", "code", "details"),
    [
        (b"last", grpc.StatusCode.UNAVAILABLE, "had ended before the request was written"),
        (b"deny", grpc.StatusCode.PERMISSION_DENIED, "not you"),
    ],
)
def test_a_write_after_the_call_ended_raises_its_status(
    ending: bytes, code: grpc.StatusCode, details: str
) -> None:
    async def body(channel: grpc.aio.Channel) -> None:
        call = _open(channel)
        await write_request(call, ending)
        if ending == b"last":
            assert await call.read() == b"last"  # the status follows the last answer
        await until(call.done, timeout_s=5, what="the end of the call")
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await write_request(call, b"more")
        assert failed.value.code() == code
        assert details in (failed.value.details() or "")

    serve(_register, body)


def test_a_write_to_a_call_cancelled_here_raises_unavailable() -> None:
    async def body(channel: grpc.aio.Channel) -> None:
        call = _open(channel)
        await write_request(call, b"hello")
        assert await call.read() == b"hello"
        call.cancel()
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await write_request(call, b"more")
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE

    serve(_register, body)


def test_a_live_call_takes_the_write() -> None:
    async def body(channel: grpc.aio.Channel) -> None:
        call = _open(channel)
        for message in (b"a", b"b"):
            await write_request(call, message)
            assert await call.read() == message
        call.cancel()

    serve(_register, body)
