"""buffer.memory: the bytes of unsent records a producer may hold. Each record reserves its
size until its batch completes; send() waits (up to max.block.ms) while the pool is exhausted,
so a producer faster than the cluster slows down instead of growing without bound."""

from __future__ import annotations

import asyncio
from collections import deque

from raftka.common.errors import RaftkaError
from raftka.common.records.errors import RecordTooLargeError


class BufferExhaustedError(RaftkaError):
    """send() waited max.block.ms for buffer memory. Retriable: the producer is fine, it is
    just being asked for more than the cluster accepts."""

    retriable = True


class BufferPool:
    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.available = total_bytes
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def exhausted(self) -> bool:
        """Someone is waiting for memory: the sender should send what it has right away."""
        return bool(self._waiters)

    def try_reserve(self, nbytes: int) -> bool:
        """Take ``nbytes`` at once if they are free and nobody waits (the common case)."""
        if self._waiters or nbytes > self.available:
            return False
        self.available -= nbytes
        return True

    async def reserve(self, nbytes: int, timeout_s: float) -> None:
        if nbytes > self.total:
            raise RecordTooLargeError(
                f"a record of {nbytes} bytes does not fit in buffer_memory={self.total}: raise "
                "buffer_memory or send smaller records"
            )
        if not self._waiters and nbytes <= self.available:
            self.available -= nbytes
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (nbytes, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            if future.done():  # granted just as the wait ran out: keep it
                return
            self._waiters.remove(entry)
            future.cancel()
            self._grant()
            raise BufferExhaustedError(
                f"buffer_memory ({self.total} bytes) stayed full for max_block_ms "
                f"({timeout_s * 1000:.0f} ms): records are produced faster than the cluster "
                "accepts them; slow down, raise buffer_memory, or check that the brokers are up"
            ) from None
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(nbytes)
            elif entry in self._waiters:
                self._waiters.remove(entry)
            raise

    def release(self, nbytes: int) -> None:
        self.available += nbytes
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.available:
            nbytes, future = self._waiters.popleft()
            self.available -= nbytes
            future.set_result(None)
