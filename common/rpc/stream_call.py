"""Writing to a stream-stream call so that every way it can fail is an AioRpcError.

grpc.aio raises other things when a write meets a call that is over: ``InvalidStateError``
when the call finished before the write (the peer ended it, or its connection died, between
the last answer and this request), and ``CancelledError`` when another task cancelled the
call during the write. Either would end the writer's task as if it had crashed or been
cancelled; both are a lost stream, which the writer's callers already retry.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc


def stream_failure(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """An AioRpcError made on this side (no metadata from the peer)."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


async def write_request(call: Any, request: Any) -> None:
    """``call.write(request)``; a call already over raises its own status (UNAVAILABLE when
    it ended without an error, or was cancelled here)."""
    try:
        await call.write(request)
    except asyncio.InvalidStateError:
        raise await _ended(call) from None
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # this task is being cancelled: not the call's doing
        raise stream_failure(
            grpc.StatusCode.UNAVAILABLE, "the stream was closed while a request was written"
        ) from None


async def _ended(call: Any) -> grpc.aio.AioRpcError:
    code = await call.code()
    if code in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
        return stream_failure(
            grpc.StatusCode.UNAVAILABLE, "the stream had ended before the request was written"
        )
    return grpc.aio.AioRpcError(
        code,
        await call.initial_metadata(),
        await call.trailing_metadata(),
        await call.details(),
    )
