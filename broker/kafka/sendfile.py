"""Writing one answer to a client: bytes through the transport, file regions with ``sendfile``.

asyncio's ``loop.sendfile`` is not implemented by uvloop (the broker's loop), so regions are
sent here: the transport's buffer is flushed first (its write limits set to 0 for the
moment, so ``drain`` waits until it is empty), then ``os.sendfile`` moves the region from
the page cache to the socket on the event loop for as long as the socket takes it. When the
socket buffer is full, the loop waits for it to drain through a duplicate of the socket's
descriptor (the transport owns the original's place in the event loop, where no writer
callback may be added) and sends on. The transport writes nothing meanwhile: answers go out
one at a time.

A region whose file ends early (truncated after the read) cannot complete the frame its
size prefix announced: that is a ConnectionError, and the connection is closed.
"""

from __future__ import annotations

import asyncio
import os

from raftka.broker.kafka.regions import Answer
from raftka.common.storage.region import FileRegion


class SendTimeoutError(ConnectionError):
    """The client read nothing for the whole send timeout."""


async def send_answer(writer: asyncio.StreamWriter, answer: Answer, *, timeout_s: float) -> None:
    """Write ``answer``; regions are closed whatever happens."""
    if isinstance(answer, bytes):
        writer.write(answer)
        await writer.drain()
        return
    try:
        for part in answer:
            if isinstance(part, bytes):
                writer.write(part)
            else:
                await _flush(writer)
                await send_region(_socket_fd(writer), part, timeout_s=timeout_s)
        await writer.drain()
    finally:
        for part in answer:
            if isinstance(part, FileRegion):
                part.close()


def can_sendfile(writer: asyncio.StreamWriter) -> bool:
    """Whether regions can go straight to this connection's socket (not under TLS)."""
    if writer.get_extra_info("sslcontext") is not None:
        return False
    sock = writer.get_extra_info("socket")
    return sock is not None and hasattr(sock, "fileno") and hasattr(os, "sendfile")


def _socket_fd(writer: asyncio.StreamWriter) -> int:
    fd: int = writer.get_extra_info("socket").fileno()
    return fd


async def _flush(writer: asyncio.StreamWriter) -> None:
    """Wait until the transport has written everything it holds."""
    transport = writer.transport
    if transport.get_write_buffer_size() == 0:
        return
    high, low = transport.get_write_buffer_limits()[::-1]
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        await writer.drain()
    finally:
        transport.set_write_buffer_limits(high=high, low=low)
    if transport.get_write_buffer_size():
        raise ConnectionError("the connection's write buffer did not empty before a sendfile")


async def send_region(sock_fd: int, region: FileRegion, *, timeout_s: float) -> None:
    """Send all of ``region`` to the non-blocking socket ``sock_fd``."""
    position = region.position
    left = region.length
    waiter: int | None = None
    try:
        while left > 0:
            try:
                sent = os.sendfile(sock_fd, region.fd, position, left)
            except BlockingIOError:
                if waiter is None:
                    waiter = os.dup(sock_fd)
                await _writable(waiter, timeout_s)
                continue
            if sent == 0:
                raise ConnectionError(
                    f"{region!r} ended {left} bytes early (the segment was truncated after "
                    "the read): the frame cannot be completed"
                )
            position += sent
            left -= sent
    finally:
        if waiter is not None:
            os.close(waiter)


async def _writable(fd: int, timeout_s: float) -> None:
    """Wait until the socket ``fd`` (a duplicate of the transport's: the event loop refuses
    a writer callback on the transport's own descriptor) can take more bytes."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await asyncio.wait_for(ready, timeout_s)
    except TimeoutError:
        raise SendTimeoutError(
            f"the client read nothing for {timeout_s:g}s of a Fetch answer"
        ) from None
    finally:
        loop.remove_writer(fd)
