"""Per-partition queues of batches, filled by send() and drained by the sender.

A partition is *ready* to send when its first batch is full (or has a successor), has waited
linger.ms, is a retry whose backoff has passed, or when the producer is flushing, closing or
out of buffer memory (Kafka's RecordAccumulator.ready).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator

from raftka.client.producer.batch import ProducerBatch
from raftka.client.producer.buffer_pool import BufferPool
from raftka.client.producer.config import ProducerConfig
from raftka.client.types import RecordMetadata, TopicPartition
from raftka.common.records.builder import RecordHeaders

RECORD_OVERHEAD = 21
"""Bytes a record adds beyond its key, value and headers, at most (varints, attributes)."""


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
        self.wakeup = asyncio.Event()
        """Set when something may have become ready: the sender waits on it."""

    def queued(self, tp: TopicPartition) -> int:
        q = self._queues.get(tp)
        return len(q) if q else 0

    @property
    def has_queued(self) -> bool:
        return any(self._queues.values())

    async def append(
        self,
        tp: TopicPartition,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: RecordHeaders,
    ) -> asyncio.Future[RecordMetadata]:
        """Add a record to its partition's open batch (or a new one); return its future.
        Waits (up to max_block_ms) while buffer memory is short: each record holds its size
        until its batch completes, so memory follows what is queued, not batch_size."""
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        size = len(key or b"") + len(value or b"") + RECORD_OVERHEAD
        if headers:
            size += sum(len(k) + len(v or b"") + 10 for k, v in headers)
        if not self._pool.try_reserve(size):
            await self._pool.reserve(size, self._config.max_block_ms / 1000)
        q = self._queues.get(tp)
        if q and q[-1].try_append(timestamp, key, value, headers, future):
            q[-1].reserved_bytes += size
            if q[-1].is_full() or len(q) > 1:
                self.wakeup.set()
            return future
        batch = ProducerBatch(
            tp,
            self._config.compression,
            self._config.batch_size,
            created=self._clock(),
            reserved_bytes=size,
            transactional=self._config.transactional,
        )
        batch.try_append(timestamp, key, value, headers, future)
        self._queues.setdefault(tp, deque()).append(batch)
        self.incomplete.add(batch)
        self.wakeup.set()
        return future

    # ------------------------------------------------------------------ the sender's side

    def ready(self, now: float) -> tuple[list[TopicPartition], float]:
        """Partitions whose first batch may be sent now, and how long until the next one
        may become ready (linger or backoff), for the sender's wait."""
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
            elif urgent or len(q) > 1 or head.is_full() or now - head.created >= linger:
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
