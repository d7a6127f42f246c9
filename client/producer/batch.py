"""One partition's batch of records on its way to the leader.

Records are kept as columns (timestamps, keys, values, headers: no object per record) and
encoded in one call when the batch closes (``RecordBatchBuilder.extend_columns``: the compiled record
codec, or its pure-Python twin, over the whole batch). The batch has one
outcome (base offset and append time, or an error), set once when it is answered; each
record's :class:`~raftka.client.producer.delivery.RecordDelivery` resolves from it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat

from raftka.client.producer.delivery import DoneCallback, RecordDelivery, run_callbacks
from raftka.client.types import RecordMetadata, TopicPartition
from raftka.common.records.batch import HEADER_SIZE, NO_SEQUENCE, Compression, set_producer_state
from raftka.common.records.builder import RecordBatchBuilder, RecordHeaders

RECORD_OVERHEAD = 21
"""Bytes a record adds beyond its key, value and headers, at most (varints, attributes)."""
HEADER_OVERHEAD = 10
"""Bytes a header adds beyond its key and value, at most."""

PENDING, WRITTEN, FAILED = 0, 1, 2
_STATE_NAMES = ("pending", "written", "failed")

Callback = tuple[RecordDelivery | None, DoneCallback, object, contextvars.Context | None]
"""(the delivery it belongs to, or None for the batch's own; fn; fn's argument; context)"""


def record_size(key: bytes | None, value: bytes | None, headers: RecordHeaders) -> int:
    """What a record adds to a batch, at most: its buffer-memory reservation too."""
    size = (len(key) if key is not None else 0) + (len(value) if value is not None else 0)
    return size + RECORD_OVERHEAD + (headers_size(headers) if headers else 0)


def headers_size(headers: RecordHeaders) -> int:
    return sum(len(k) + len(v or b"") + HEADER_OVERHEAD for k, v in headers)


@dataclass(eq=False, slots=True)
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
    timestamps: list[int] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    headers: list[RecordHeaders] | None = None
    """Per record, once some record of the batch has headers (else every record has none)."""
    estimated_size: int = HEADER_SIZE
    """What the encoded, uncompressed batch will take at most."""
    state: int = PENDING
    base_offset: int = -1
    log_append_time_ms: int = -1
    error: BaseException | None = None
    _callbacks: list[Callback] | None = None

    @property
    def record_count(self) -> int:
        return len(self.timestamps)

    @property
    def size(self) -> int:
        """Bytes of the batch: encoded once closed, at most that before."""
        return len(self.payload) if self.payload is not None else self.estimated_size

    @property
    def closed(self) -> bool:
        return self.payload is not None

    @property
    def last_sequence(self) -> int:
        return self.sequence + self.record_count - 1

    @property
    def settled(self) -> bool:
        """Written or failed, for good."""
        return self.state != PENDING

    @property
    def state_name(self) -> str:
        return _STATE_NAMES[self.state]

    def is_full(self) -> bool:
        return self.estimated_size >= self.batch_size

    def try_append(
        self,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: RecordHeaders,
        size: int,
    ) -> int:
        """Add a record of ``size`` (:func:`record_size`) and return its index, or -1 if the
        batch is closed or would grow past batch_size (a batch always takes its first
        record, however large)."""
        if self.payload is not None:
            return -1
        index = len(self.timestamps)
        if index and self.estimated_size + size > self.batch_size:
            return -1
        self.timestamps.append(timestamp)
        self.keys.append(key)
        self.values.append(value)
        if headers:
            if self.headers is None:
                self.headers = [()] * index
            self.headers.append(headers)
        elif self.headers is not None:
            self.headers.append(())
        self.estimated_size += size
        return index

    def extend(
        self,
        timestamp: int,
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
        headers: Sequence[RecordHeaders] | None,
        nbytes: int,
    ) -> int:
        """Add records sharing one timestamp (``nbytes``: their :func:`record_size` sum, which
        the caller checked fits); returns the first one's index. The batch must be open."""
        assert self.payload is None, "records added to a closed batch"
        first = len(self.timestamps)
        count = len(values)
        self.timestamps.extend(repeat(timestamp, count))
        self.keys.extend(keys)
        self.values.extend(values)
        if headers is not None and any(headers):
            if self.headers is None:
                self.headers = [()] * first
            self.headers.extend(headers)
        elif self.headers is not None:
            self.headers.extend(repeat((), count))
        self.estimated_size += nbytes
        return first

    def close(
        self, producer_id: int = -1, producer_epoch: int = -1, sequence: int = NO_SEQUENCE
    ) -> bytearray:
        """Encode the batch (once) and stamp its producer id, epoch and base sequence."""
        if self.payload is None:
            self.payload = self._encode()
        self.stamp(producer_id, producer_epoch, sequence)
        return self.payload

    def _encode(self) -> bytearray:
        """One codec call for the whole batch (``RecordBatchBuilder.extend_columns``)."""
        builder = RecordBatchBuilder(compression=self.compression, transactional=self.transactional)
        builder.extend_columns(self.timestamps, self.keys, self.values, self.headers)
        return builder.build()

    def stamp(self, producer_id: int, producer_epoch: int, sequence: int) -> None:
        self.producer_id, self.producer_epoch, self.sequence = producer_id, producer_epoch, sequence
        if self.payload is not None:
            set_producer_state(self.payload, producer_id, producer_epoch, sequence)

    # ------------------------------------------------------------------ the outcome

    def complete(self, base_offset: int, log_append_time_ms: int) -> None:
        """The batch was written at ``base_offset`` (-1 with acks=0)."""
        if self.state != PENDING:
            return
        self.state = WRITTEN
        self.base_offset = base_offset
        self.log_append_time_ms = log_append_time_ms
        self._settle()

    def fail(self, error: BaseException) -> None:
        if self.state != PENDING:
            return
        self.state = FAILED
        self.error = error
        self._settle()

    def metadata(self, index: int) -> RecordMetadata:
        """Where record ``index`` was written; raises what failed the batch."""
        if self.state == WRITTEN:
            key, value = self.keys[index], self.values[index]
            return RecordMetadata(
                self.tp.topic,
                self.tp.partition,
                self.base_offset + index if self.base_offset >= 0 else -1,
                self.log_append_time_ms if self.log_append_time_ms >= 0 else self.timestamps[index],
                len(key) if key is not None else 0,
                len(value) if value is not None else 0,
            )
        if self.error is not None:
            raise self.error
        raise asyncio.InvalidStateError(f"the records of {self.tp} are not answered yet")

    def outcome_error(self) -> BaseException | None:
        """What failed the batch, None if it was written; InvalidStateError while pending."""
        if self.state == PENDING:
            raise asyncio.InvalidStateError(f"the records of {self.tp} are not answered yet")
        return self.error

    # ------------------------------------------------------------------ callbacks

    def on_settled(
        self,
        owner: RecordDelivery | None,
        fn: DoneCallback,
        arg: object,
        context: contextvars.Context | None,
    ) -> None:
        """Call ``fn(arg)`` once the batch is answered (from the event loop)."""
        if self._callbacks is None:
            self._callbacks = []
        self._callbacks.append((owner, fn, arg, context))

    def remove_callbacks(self, owner: RecordDelivery, fn: DoneCallback) -> int:
        if not self._callbacks:
            return 0
        kept = [c for c in self._callbacks if c[0] is not owner or c[1] != fn]
        removed = len(self._callbacks) - len(kept)
        self._callbacks = kept
        return removed

    def run_callbacks_of(self, owner: RecordDelivery) -> None:
        """``owner`` was cancelled: its callbacks run now (soon), the batch's others later."""
        if not self._callbacks:
            return
        mine = [(fn, arg, ctx) for o, fn, arg, ctx in self._callbacks if o is owner]
        self._callbacks = [c for c in self._callbacks if c[0] is not owner]
        if mine:
            asyncio.get_running_loop().call_soon(run_callbacks, mine)

    def settled_future(self) -> asyncio.Future[None]:
        """A future that completes (with None, whatever the outcome) once the batch is
        answered."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.state != PENDING:
            future.set_result(None)
        else:
            self.on_settled(None, _resolve, future, None)
        return future

    def _settle(self) -> None:
        if self._callbacks:
            entries, self._callbacks = self._callbacks, None
            asyncio.get_running_loop().call_soon(
                run_callbacks, [(fn, arg, ctx) for _owner, fn, arg, ctx in entries]
            )

    def deliveries(self) -> Iterable[RecordDelivery]:
        return (RecordDelivery(self, i) for i in range(self.record_count))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
