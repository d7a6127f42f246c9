"""What poll() returns, and the fetched bytes it is decoded from.

A fetch returns whole stored batches from the one holding the fetch offset, so the first
batch may start before it: records below the fetch offset are skipped. Control batches
(transaction markers) are never records, under either isolation level. Decoding is lazy, one
batch at a time as poll() takes records, so records dropped by a seek are never decoded.

read_committed: the fetch names the aborted transactions in its range (producer id, first
offset). Walking the batches in offset order, a producer id becomes "aborted" once a batch
reaches its first offset, and stops being so at its ABORT marker; the transactional batches of
an aborted producer id in between are dropped (Kafka's consumer does the same). The position
still moves past every dropped batch, so nothing is fetched twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from raftka.client.consumer.errors import InvalidBatchError
from raftka.client.types import TopicPartition
from raftka.common.records.batch import (
    HEADER_SIZE,
    NO_PARTITION_LEADER_EPOCH,
    BatchHeader,
    validate,
)
from raftka.common.records.control import is_end_txn_marker, parse_end_txn_marker
from raftka.common.records.decoder import decode_as
from raftka.common.records.errors import InvalidRecordError, RecordError

Headers = tuple[tuple[str, bytes | None], ...]


class ConsumerRecord(NamedTuple):
    """One record as poll() returns it (immutable).

    A named tuple rather than a frozen dataclass: made once per record delivered, it must be
    cheap to build (the record codec makes a batch's records in one call,
    ``decoder.decode_as``, rather than a Python ``__init__`` per record)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    """Milliseconds since the epoch (create time, or log-append time if the topic says so)."""
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    leader_epoch: int | None = None
    """The leader epoch of the batch the record was written in, if known."""

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class FetchedBatch:
    position: int
    header: BatchHeader


def batch_spans(data: bytes, *, verify: bool) -> list[FetchedBatch]:
    """The whole batches of a fetched buffer (a partial batch at the end is ignored), each
    checked (size, magic, CRC-32C) when ``verify``: O(1) Python work per batch."""
    view = memoryview(data)
    spans: list[FetchedBatch] = []
    pos, end = 0, len(data)
    while end - pos >= HEADER_SIZE:
        header = BatchHeader.parse(view, pos)
        if header.size > end - pos or header.size < HEADER_SIZE:
            break
        if verify:
            header = validate(view, pos)
        spans.append(FetchedBatch(pos, header))
        pos += header.size
    return spans


class CompletedFetch:
    """The batches one fetch returned for one partition, handed out record by record.

    ``next_offset`` is the position after what has been taken (it moves past a batch once its
    last record is taken, so gaps left by compaction and control batches are skipped);
    ``end_offset`` is where the next fetch for the partition starts. A batch whose records
    cannot be decoded (its CRC is fine: it was stored by a broker that did not validate records)
    stops the fetch: ``error`` then names it, and ``next_offset`` stays at the first offset not
    returned.
    """

    def __init__(
        self,
        tp: TopicPartition,
        data: bytes,
        fetch_offset: int,
        spans: Sequence[FetchedBatch],
        aborted: Iterable[tuple[int, int]] = (),
    ) -> None:
        """``aborted``: (producer id, first offset) of the aborted transactions the fetch
        named (read_committed)."""
        self.tp = tp
        self.fetch_offset = fetch_offset
        self.nbytes = len(data)
        self.next_offset = fetch_offset
        self.end_offset = max([fetch_offset, *(s.header.next_offset for s in spans)])
        self.end_epoch = _epoch(spans[-1].header.partition_leader_epoch) if spans else None
        """The leader epoch of the last batch (of the record before ``end_offset``)."""
        self.remaining_bytes = sum(s.header.size for s in spans)
        """Bytes of the batches not decoded yet (what prefetching is bounded by)."""
        self.error: InvalidBatchError | None = None
        self._data = data
        self._batches: deque[FetchedBatch] = deque(spans)
        # The open batch's records not taken yet: _pending[_taken:] (a list and an index, so
        # that a take is a slice, O(1) Python work per batch rather than per record).
        self._pending: list[ConsumerRecord] = []
        self._taken = 0
        self._batch_end: int | None = None
        self._batch_epoch: int | None = None
        self.position_epoch: int | None = None
        """The leader epoch of the last batch behind ``next_offset``: of the last record
        returned, or of a control or aborted batch skipped after it (as Kafka's consumer
        keeps it), so the next fetch's divergence check starts from the right epoch."""
        self._prefix = (tp.topic, tp.partition)
        self._aborted = deque(sorted(aborted, key=lambda a: a[1]))
        self._aborted_ids: set[int] = set()

    @property
    def exhausted(self) -> bool:
        return self._taken >= len(self._pending) and not self._batches

    def take(self, max_records: int) -> list[ConsumerRecord]:
        out: list[ConsumerRecord] = []
        while len(out) < max_records:
            pending, taken = self._pending, self._taken
            if taken < len(pending):
                chunk = pending[taken : taken + max_records - len(out)]
                self._taken = taken + len(chunk)
                out += chunk
                self.next_offset = chunk[-1].offset + 1
                self.position_epoch = chunk[-1].leader_epoch
                continue
            self._finish_batch()
            if not self._batches:
                break
            self._open(self._batches.popleft())
        if self._taken >= len(self._pending):
            self._finish_batch()
        return out

    def _finish_batch(self) -> None:
        if self._batch_end is not None:
            if self._batch_end > self.next_offset:
                self.next_offset = self._batch_end
                if self._batch_epoch is not None:
                    self.position_epoch = self._batch_epoch
            self._batch_end = None

    def _open(self, span: FetchedBatch) -> None:
        header = span.header
        self.remaining_bytes -= header.size
        self._pending, self._taken = [], 0
        if self._skipped_as_aborted(span):
            self._enter(header)
            return
        if header.is_control or header.next_offset <= self.next_offset:
            self._enter(header)
            return
        epoch = header.partition_leader_epoch
        leader_epoch = None if epoch == NO_PARTITION_LEADER_EPOCH else epoch
        try:
            # One codec call makes the batch's ConsumerRecords (below the fetch offset: left
            # out, when the fetch started inside this batch).
            self._pending = decode_as(
                self._data,
                span.position,
                ConsumerRecord,
                self._prefix,
                (leader_epoch,),
                self.next_offset - header.base_offset,
            )
        except RecordError as e:
            self._fail(header, e)
            return
        self._enter(header)

    def _enter(self, header: BatchHeader) -> None:
        """The batch is open: once its records (if any) are taken, the position moves past
        it (the records before it are all taken by now)."""
        self._batch_end = header.next_offset
        self._batch_epoch = _epoch(header.partition_leader_epoch)

    def _fail(self, header: BatchHeader, error: RecordError) -> None:
        """The batch's records cannot be read: stop here, before it (nothing of it is
        returned, and the position stays where it is)."""
        self.error = InvalidBatchError(
            self.tp, max(header.base_offset, self.next_offset), header.next_offset, error.message
        )
        self._batches.clear()
        self.remaining_bytes = 0

    def _skipped_as_aborted(self, span: FetchedBatch) -> bool:
        """read_committed: whether the batch belongs to an aborted transaction (its ABORT
        marker ends that transaction's range)."""
        header = span.header
        if not header.is_transactional or not (self._aborted or self._aborted_ids):
            return False
        while self._aborted and self._aborted[0][1] <= header.last_offset:
            self._aborted_ids.add(self._aborted.popleft()[0])
        if header.producer_id not in self._aborted_ids:
            return False
        if header.is_control and _is_abort_marker(self._data, span.position, header):
            self._aborted_ids.discard(header.producer_id)
        return True


def _is_abort_marker(data: bytes, position: int, header: BatchHeader) -> bool:
    if not is_end_txn_marker(header):
        return False
    try:
        return not parse_end_txn_marker(data, position).committed
    except InvalidRecordError:
        return False  # another kind of control batch: it ends no transaction


def _epoch(value: int) -> int | None:
    return value if value >= 0 else None
