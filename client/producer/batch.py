"""One partition's batch of records on its way to the leader, and the futures of its records."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from raftka.client.types import RecordMetadata, TopicPartition
from raftka.common.errors import RaftkaError
from raftka.common.records.batch import NO_SEQUENCE, Compression, set_producer_state
from raftka.common.records.builder import RecordBatchBuilder, RecordHeaders


@dataclass(frozen=True, slots=True)
class _Pending:
    future: asyncio.Future[RecordMetadata]
    offset_delta: int
    timestamp: int
    key_size: int
    value_size: int


@dataclass(eq=False)
class ProducerBatch:
    tp: TopicPartition
    compression: Compression
    batch_size: int
    created: float
    """Monotonic seconds when the first record was added (delivery.timeout.ms counts from it)."""
    reserved_bytes: int = 0
    """Bytes of buffer.memory held until the batch completes."""
    attempts: int = 0
    retry_at: float = 0.0
    sequence: int = NO_SEQUENCE
    producer_id: int = -1
    producer_epoch: int = -1
    maybe_written: bool = False
    """An attempt ended without a clear answer (lost response, timeout): the broker may hold it."""
    last_error: str = ""
    """Why the latest attempt failed (for the error the records finally fail with)."""
    payload: bytearray | None = None
    """The encoded batch, built when the batch is first sent and resent unchanged."""
    transactional: bool = False
    """Part of the producer's open transaction (attribute bit 0x10)."""
    _builder: RecordBatchBuilder = field(init=False)
    _pending: list[_Pending] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._builder = RecordBatchBuilder(
            compression=self.compression, transactional=self.transactional
        )

    @property
    def record_count(self) -> int:
        return self._builder.record_count

    @property
    def size(self) -> int:
        return self._builder.uncompressed_size

    @property
    def closed(self) -> bool:
        return self.payload is not None

    @property
    def last_sequence(self) -> int:
        return self.sequence + self.record_count - 1

    @property
    def done(self) -> bool:
        return all(p.future.done() for p in self._pending)

    def is_full(self) -> bool:
        return self.size >= self.batch_size

    def try_append(
        self,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: RecordHeaders,
        future: asyncio.Future[RecordMetadata],
    ) -> bool:
        """Add a record unless the batch is closed or it would grow past batch_size (a batch
        always takes its first record, however large)."""
        if self.closed:
            return False
        estimate = len(key or b"") + len(value or b"") + 21
        if headers:
            estimate += sum(len(k) + len(v or b"") + 10 for k, v in headers)
        if self.record_count and self.size + estimate > self.batch_size:
            return False
        delta = self._builder.append(timestamp, key, value, headers)
        self._pending.append(_Pending(future, delta, timestamp, len(key or b""), len(value or b"")))
        return True

    def close(
        self, producer_id: int = -1, producer_epoch: int = -1, sequence: int = NO_SEQUENCE
    ) -> bytearray:
        """Encode the batch (once) and stamp its producer id, epoch and base sequence."""
        if self.payload is None:
            self.payload = self._builder.build()
        self.stamp(producer_id, producer_epoch, sequence)
        return self.payload

    def stamp(self, producer_id: int, producer_epoch: int, sequence: int) -> None:
        self.producer_id, self.producer_epoch, self.sequence = producer_id, producer_epoch, sequence
        if self.payload is not None:
            set_producer_state(self.payload, producer_id, producer_epoch, sequence)

    def futures(self) -> list[asyncio.Future[RecordMetadata]]:
        return [p.future for p in self._pending]

    def complete(self, base_offset: int, log_append_time_ms: int) -> None:
        for p in self._pending:
            if p.future.done():
                continue
            offset = base_offset + p.offset_delta if base_offset >= 0 else -1
            timestamp = log_append_time_ms if log_append_time_ms >= 0 else p.timestamp
            p.future.set_result(
                RecordMetadata(
                    self.tp.topic, self.tp.partition, offset, timestamp, p.key_size, p.value_size
                )
            )

    def fail(self, error: RaftkaError) -> None:
        for p in self._pending:
            if not p.future.done():
                p.future.set_exception(error)
