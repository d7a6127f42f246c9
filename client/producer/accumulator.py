"""Per-partition queues of batches, filled by send() and drained by the sender.

A partition is *ready* to send when its first batch is full (or has a successor), has waited
linger.ms, is a retry whose backoff has passed, when the producer is flushing, closing or out
of buffer memory (Kafka's RecordAccumulator.ready), or when its leader is *idle*: no produce
request of this producer is in flight to it (the sender says which). So a lone record goes at
once, and records batch up only while an earlier request is on its way: linger_ms bounds how
long they wait for it (Nagle's rule, and librdkafka's behaviour under light load).

Appending is synchronous and O(1): a buffer-memory reservation, a dict lookup and four list
appends; :meth:`RecordAccumulator.try_append` never waits (None when memory is short), and
:meth:`RecordAccumulator.append` waits for memory (up to max_block_ms).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from raftka.client.producer.batch import ProducerBatch, record_size
from raftka.client.producer.buffer_pool import BufferPool
from raftka.client.producer.config import ProducerConfig
from raftka.client.producer.delivery import RecordDelivery
from raftka.client.types import TopicPartition
from raftka.common.records.builder import RecordHeaders


class Wakeup:
    """A flag the sender sleeps on: asyncio.Event's set/clear, and a timed wait that costs a
    future and a timer rather than a task (asyncio.wait_for's)."""

    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        if not self._flag:
            self._flag = True
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    async def wait(self, timeout_s: float) -> None:
        """Until set, or ``timeout_s`` passed."""
        if self._flag:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout_s, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class RecordAccumulator:
    def __init__(
        self,
        config: ProducerConfig,
        pool: BufferPool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._pool = pool
        self._clock = clock
        self._queues: dict[TopicPartition, deque[ProducerBatch]] = {}
        self.incomplete: set[ProducerBatch] = set()
        """Every batch created and not yet completed or failed (flush waits for them)."""
        self.flushing = 0
        self.closing = False
        self.aborted = False
        """Closing without waiting: nothing is retried any more."""
        self.wakeup = Wakeup()
        """Set when something may have become ready: the sender waits on it."""

    def queued(self, tp: TopicPartition) -> int:
        q = self._queues.get(tp)
        return len(q) if q else 0

    @property
    def has_queued(self) -> bool:
        return any(self._queues.values())

    # ------------------------------------------------------------------ send()'s side

    def try_append(
        self,
        tp: TopicPartition,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: RecordHeaders,
        size: int,
    ) -> RecordDelivery | None:
        """Add a record of ``size`` (``batch.record_size``) to its partition's open batch (or
        a new one) and return its delivery; None, adding nothing, if buffer memory is short.
        Each record holds its size of buffer memory until its batch completes, so memory
        follows what is queued, not batch_size."""
        if not self._pool.try_reserve(size):
            return None
        q = self._queues.get(tp)
        if q:  # (_add, inlined: this is every send's path)
            last = q[-1]
            index = last.try_append(timestamp, key, value, headers, size)
            if index >= 0:
                last.reserved_bytes += size
                if last.estimated_size >= last.batch_size:
                    self.wakeup.set()
                return RecordDelivery(last, index)
        batch = self._new_batch(tp)
        batch.try_append(timestamp, key, value, headers, size)
        batch.reserved_bytes = size
        return RecordDelivery(batch, 0)

    async def append(
        self,
        tp: TopicPartition,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: RecordHeaders,
    ) -> RecordDelivery:
        """:meth:`try_append`, waiting (up to max_block_ms) while buffer memory is short."""
        size = record_size(key, value, headers)
        delivery = self.try_append(tp, timestamp, key, value, headers, size)
        if delivery is not None:
            return delivery
        await self._pool.reserve(size, self._config.max_block_ms / 1000)
        batch, index = self._add(tp, timestamp, key, value, headers, size)
        return RecordDelivery(batch, index)

    async def append_many(
        self,
        tp: TopicPartition,
        timestamp: int,
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
        headers: Sequence[RecordHeaders] | None,
        sizes: Sequence[int],
    ) -> list[tuple[ProducerBatch, int, int]]:
        """Add records to one partition a batch's worth at a time (a list extend per column,
        one reservation per batch); returns (batch, first index, count) spans."""
        spans: list[tuple[ProducerBatch, int, int]] = []
        start, total = 0, len(values)
        while start < total:
            batch, end, nbytes = self._fit(tp, sizes, start)
            if not self._pool.try_reserve(nbytes):
                await self._pool.reserve(nbytes, self._config.max_block_ms / 1000)
                if batch.closed:  # the sender took it meanwhile: the records start a new one
                    batch = self._new_batch(tp)
            first = batch.extend(
                timestamp,
                keys[start:end],
                values[start:end],
                headers[start:end] if headers is not None else None,
                nbytes,
            )
            batch.reserved_bytes += nbytes
            spans.append((batch, first, end - start))
            start = end
            if batch.is_full():
                self.wakeup.set()
        return spans

    def _add(
        self,
        tp: TopicPartition,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: RecordHeaders,
        size: int,
    ) -> tuple[ProducerBatch, int]:
        q = self._queues.get(tp)
        if q:
            last = q[-1]
            index = last.try_append(timestamp, key, value, headers, size)
            if index >= 0:
                last.reserved_bytes += size
                if last.estimated_size >= last.batch_size:
                    self.wakeup.set()
                return last, index
        batch = self._new_batch(tp)
        batch.try_append(timestamp, key, value, headers, size)
        batch.reserved_bytes = size
        return batch, 0

    def _fit(
        self, tp: TopicPartition, sizes: Sequence[int], start: int
    ) -> tuple[ProducerBatch, int, int]:
        """The batch that takes records ``start..end`` (``end`` as far as fits, at least one
        record), and their bytes."""
        q = self._queues.get(tp)
        batch = q[-1] if q and not q[-1].closed else None
        for _ in range(2):
            if batch is None:
                batch = self._new_batch(tp)
            room = min(batch.batch_size - batch.estimated_size, self._pool.total)
            end, nbytes = start, 0
            while end < len(sizes) and nbytes + sizes[end] <= room:
                nbytes += sizes[end]
                end += 1
            if end > start:
                return batch, end, nbytes
            if not batch.record_count:  # a batch always takes its first record
                return batch, start + 1, sizes[start]
            batch = None
        raise AssertionError("a new batch takes at least one record")

    def _new_batch(self, tp: TopicPartition) -> ProducerBatch:
        batch = ProducerBatch(
            tp,
            self._config.compression,
            self._config.batch_size,
            created=self._clock(),
            transactional=self._config.transactional,
        )
        self._queues.setdefault(tp, deque()).append(batch)
        self.incomplete.add(batch)
        self.wakeup.set()
        return batch

    # ------------------------------------------------------------------ the sender's side

    def ready(
        self, now: float, idle: Callable[[TopicPartition], bool] | None = None
    ) -> tuple[list[TopicPartition], float]:
        """Partitions whose first batch may be sent now, and how long until the next one
        may become ready (linger or backoff), for the sender's wait. ``idle(tp)``: nothing of
        this producer is in flight to the partition's leader, so its batch need not linger."""
        linger = self._config.linger_ms / 1000
        urgent = self.flushing > 0 or self.closing or self._pool.exhausted
        ready: list[TopicPartition] = []
        next_check = float("inf")
        for tp, q in self._queues.items():
            if not q:
                continue
            head = q[0]
            if head.attempts > 0:
                if head.retry_at <= now:
                    ready.append(tp)
                else:
                    next_check = min(next_check, head.retry_at - now)
            elif (
                urgent
                or len(q) > 1
                or head.is_full()
                or now - head.created >= linger
                or (idle is not None and idle(tp))
            ):
                ready.append(tp)
            else:
                next_check = min(next_check, head.created + linger - now)
        return ready, next_check

    def head(self, tp: TopicPartition) -> ProducerBatch | None:
        q = self._queues.get(tp)
        return q[0] if q else None

    def pop(self, tp: TopicPartition) -> ProducerBatch:
        return self._queues[tp].popleft()

    def requeue(self, batch: ProducerBatch) -> None:
        """Put a batch to be retried back at the front of its queue, before every batch with a
        later sequence (or none yet), so retries keep the partition's order."""
        q = self._queues.setdefault(batch.tp, deque())
        index = 0
        while index < len(q) and q[index].attempts > 0 and q[index].sequence < batch.sequence:
            index += 1
        q.insert(index, batch)
        self.wakeup.set()

    def finished(self, batch: ProducerBatch) -> None:
        """The batch completed or failed: give its memory back."""
        if batch in self.incomplete:
            self.incomplete.discard(batch)
            self._pool.release(batch.reserved_bytes)

    def expired(self, now: float) -> Iterator[ProducerBatch]:
        """Remove and yield queued batches past delivery.timeout.ms."""
        timeout = self._config.delivery_timeout_ms / 1000
        for q in self._queues.values():
            while q and now - q[0].created >= timeout:
                yield q.popleft()

    def queued_batches(self) -> list[ProducerBatch]:
        return [b for q in self._queues.values() for b in q]

    def remove(self, batch: ProducerBatch) -> None:
        self._queues[batch.tp].remove(batch)

    def drain_all(self) -> Iterator[ProducerBatch]:
        for q in self._queues.values():
            while q:
                yield q.popleft()
