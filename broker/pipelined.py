"""Answers to a stream of requests, worked on several at a time and sent in the order asked.

A stream handler that reads request after request (ProduceStream) must not wait for one
answer before reading the next, or a stream is no better than one call at a time; nor may it
answer out of order, since the client matches answers to requests by order (as Kafka's
clients do on a connection). :func:`in_order` starts work on up to ``max_in_flight`` requests
while earlier ones are still being answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

Q = TypeVar("Q")
A = TypeVar("A")

_END = None


async def in_order(
    requests: AsyncIterator[Q], handle: Callable[[Q], Awaitable[A]], *, max_in_flight: int
) -> AsyncIterator[A]:
    """``handle(request)`` for each request, at most ``max_in_flight`` at once, the answers
    yielded in request order. The first error (of reading or of a request) ends the iteration
    with it; the requests still being worked on are cancelled."""
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
    slots = asyncio.Semaphore(max_in_flight)
    started: asyncio.Queue[asyncio.Future[A] | None] = asyncio.Queue()  # bounded by slots

    async def read() -> None:
        try:
            async for request in requests:
                await slots.acquire()
                started.put_nowait(asyncio.ensure_future(handle(request)))
        finally:
            started.put_nowait(_END)

    reader = asyncio.create_task(read())
    try:
        while (work := await started.get()) is not _END:
            try:
                answer = await work
            finally:
                slots.release()
            yield answer
        await reader  # a read error ends the stream with it
    finally:
        reader.cancel()
        while not started.empty():
            left = started.get_nowait()
            if left is not None:
                left.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
