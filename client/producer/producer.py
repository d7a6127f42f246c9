"""AsyncProducer: the asyncio producer API.

    async with AsyncProducer(bootstrap_servers=["127.0.0.1:9092"]) as producer:
        delivery = await producer.send("orders", b"value", key=b"customer-7")
        metadata = await delivery            # RecordMetadata(topic, partition, offset, ...)
        await producer.send_and_wait("orders", b"another")
        await producer.flush()

``send`` returns once the record is queued (it waits only for the topic's metadata and for
buffer memory, at most max_block_ms); the returned ``RecordDelivery`` (delivery.py: future-like,
no asyncio future per record) completes when the record is acknowledged per ``acks``, or fails
with the error that stopped it. ``send_nowait`` is the same without a coroutine (None when it
would have to wait); ``send_many`` queues many records of a topic a batch at a time.

Garbage collection: the send path makes no per-record object the cyclic collector tracks but
the delivery it returns. An application that keeps many deliveries or callbacks in flight
gains from ``gc.freeze()`` after start-up and ``gc.set_threshold(10_000, 20, 20)``
(docs/client.md, "The producer's cost per record", has the figures).

With ``transactional_id`` the producer is transactional (transactions.py holds the logic):

    await producer.init_transactions()
    producer.begin_transaction()
    await producer.send("out", b"v")
    await producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
    await producer.commit_transaction()      # or abort_transaction()
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any

from raftka.client.connections import BrokerConnections
from raftka.client.metadata_cache import MetadataCache, TopicInfo
from raftka.client.metadata_watch import follow_metadata_changes
from raftka.client.producer.accumulator import RecordAccumulator
from raftka.client.producer.batch import RECORD_OVERHEAD, headers_size, record_size
from raftka.client.producer.buffer_pool import BufferPool
from raftka.client.producer.config import ProducerConfig
from raftka.client.producer.delivery import DeliveryGroup, RecordDelivery
from raftka.client.producer.metrics import ProducerCollector
from raftka.client.producer.partitioning import StickyPartitioner, keyed_partition
from raftka.client.producer.producer_ids import init_producer_id
from raftka.client.producer.sender import Sender
from raftka.client.producer.sequences import Sequences
from raftka.client.producer.transactions import TransactionManager
from raftka.client.producer.txn_calls import GroupMetadata
from raftka.client.security import security_of
from raftka.client.throttle import ThrottleStats
from raftka.client.types import OffsetAndMetadata, RecordMetadata, TopicPartition
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.records.batch import HEADER_SIZE
from raftka.common.records.builder import RecordHeaders
from raftka.common.records.errors import RecordTooLargeError
from raftka.common.rpc.retry import Deadline
from raftka.common.tasks import cancel_and_wait
from raftka.common.txn_errors import InvalidTxnStateError

Value = bytes | str | None
DeliveryCallback = Callable[[RecordMetadata | None, BaseException | None], object]


class ProducerClosedError(RaftkaError):
    """send() after close()."""


class AsyncProducer:
    def __init__(
        self,
        config: ProducerConfig | None = None,
        *,
        connections: BrokerConnections | None = None,
        **settings: Any,
    ) -> None:
        """``config``, or settings by name, or both; ``connections`` replaces the producer's
        own (tests)."""
        if config is None:
            config = ProducerConfig(**settings)
        elif settings:
            config = dataclasses.replace(config, **settings)
        self.config = config
        self._connections = connections or BrokerConnections(
            client_id=config.client_id, security=security_of(config)
        )
        self.metadata = MetadataCache(
            list(config.bootstrap_servers),
            self._connections,
            request_timeout_s=min(config.request_timeout_ms / 1000, 10.0),
            max_age_s=config.metadata_max_age_ms / 1000,
        )
        self._pool = BufferPool(config.buffer_memory)
        self._accumulator = RecordAccumulator(config, self._pool)
        self._sticky = StickyPartitioner(config.batch_size)
        self._txn: TransactionManager | None = None
        sequences = None
        if config.transactional:
            sequences = Sequences()
            self._txn = TransactionManager(
                config,
                self._connections,
                lambda: [*self.metadata.brokers.values(), *self.metadata.bootstrap],
                self._accumulator,
                sequences,
                lambda error: setattr(self._sender, "fatal", error),
            )
        self._sender = Sender(
            config,
            self._accumulator,
            self.metadata,
            self._connections.produce,
            (lambda: init_producer_id(self.metadata, self._connections))
            if config.idempotent and self._txn is None
            else None,
            gate=self._txn,
            sequences=sequences,
        )
        self._tps: dict[str, list[TopicPartition]] = {}
        self._max_record_size = config.max_request_size - HEADER_SIZE
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._closed = False

    def metrics(self) -> dict[str, float]:
        """This producer's counters (records and batches sent, retries, errors, average
        batch size and queue time) as a plain dict."""
        return self._sender.metrics.snapshot()

    def metrics_collector(self) -> ProducerCollector:
        """A prometheus_client Collector of this producer's metrics, labelled with its
        client id: ``registry.register(producer.metrics_collector())``."""
        return ProducerCollector(self._sender.metrics, self.config.client_id)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._tasks = [
            asyncio.create_task(self._sender.run(), name="producer-sender"),
            asyncio.create_task(self.metadata.run_periodic_refresh(), name="producer-metadata"),
        ]
        if self.config.metadata_watch_controllers:
            self._tasks.append(
                asyncio.create_task(
                    follow_metadata_changes(
                        self.config.metadata_watch_controllers,
                        self.metadata.refresh,
                        self._connections.security,
                    ),
                    name="producer-metadata-watch",
                )
            )

    async def __aenter__(self) -> AsyncProducer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ sending

    async def send(
        self,
        topic: str,
        value: Value = None,
        key: Value = None,
        *,
        partition: int | None = None,
        headers: RecordHeaders = (),
        timestamp_ms: int | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> RecordDelivery:
        """Queue one record; return its delivery, which completes (``await delivery``) with
        its RecordMetadata once it is acknowledged, or fails with what stopped it. Waits only
        when the topic's metadata is not known yet or buffer memory is short (up to
        max_block_ms)."""
        delivery = self.send_nowait(
            topic, value, key, partition=partition, headers=headers, timestamp_ms=timestamp_ms
        )
        if delivery is None:
            delivery = await self._send_waiting(topic, value, key, partition, headers, timestamp_ms)
        if on_delivery is not None:
            delivery.add_done_callback(functools.partial(_deliver, callback=on_delivery))
        return delivery

    def send_nowait(
        self,
        topic: str,
        value: Value = None,
        key: Value = None,
        *,
        partition: int | None = None,
        headers: RecordHeaders = (),
        timestamp_ms: int | None = None,
    ) -> RecordDelivery | None:
        """send() without waiting, from the event loop's thread: the record's delivery, or
        None (nothing queued) when send() would have to wait: before start(), for a topic
        whose metadata is not known (or is older than metadata_max_age_ms), or while buffer
        memory is short. Raises what send() raises for a bad record."""
        # The hot path of every send: O(1), no coroutine, no future, a handful of calls.
        if self._closed:
            raise ProducerClosedError("the producer is closed: create a new one to send")
        if self._sender.fatal is not None:
            raise self._sender.fatal
        metadata = self.metadata
        info = metadata.topics.get(topic)
        tps = self._tps.get(topic)
        if info is None or tps is None or len(tps) != len(info.partitions) or not metadata.fresh:
            info = metadata.fresh_topic(topic) if self._started else None
            if info is None:
                return None
            tps = self._topic_partitions(info)
        if key is not None and type(key) is not bytes:
            key = _as_bytes(key, "key")
        if value is not None and type(value) is not bytes:
            value = _as_bytes(value, "value")
        size = (len(key) if key is not None else 0) + (len(value) if value is not None else 0)
        size += RECORD_OVERHEAD + (headers_size(headers) if headers else 0)
        if size > self._max_record_size:
            raise self._too_large(size)
        if partition is None and key is None and self.config.partitioner is None:
            chosen = self._sticky.current(topic, len(tps))
            if chosen < 0:
                tp, sticky = self._partition(info, None, value, None)
            else:
                tp, sticky = tps[chosen], True
        else:
            tp, sticky = self._partition(info, key, value, partition)
        if self._txn is not None:
            self._txn.before_send(tp)
        delivery = self._accumulator.try_append(
            tp,
            timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            key,
            value,
            headers,
            size,
        )
        if delivery is not None and sticky:
            self._sticky.on_append(topic, tp.partition, size)
        return delivery

    async def _send_waiting(
        self,
        topic: str,
        value: Value,
        key: Value,
        partition: int | None,
        headers: RecordHeaders,
        timestamp_ms: int | None,
    ) -> RecordDelivery:
        """send()'s path when it may wait: for start(), metadata, or buffer memory."""
        if not self._started:
            await self.start()
        key_bytes, value_bytes = _as_bytes(key, "key"), _as_bytes(value, "value")
        size = record_size(key_bytes, value_bytes, headers)
        if size > self._max_record_size:
            raise self._too_large(size)
        info = self.metadata.fresh_topic(topic)
        if info is None:
            info = await self.metadata.topic(topic, Deadline(self.config.max_block_ms / 1000))
        tp, sticky = self._partition(info, key_bytes, value_bytes, partition)
        if self._txn is not None:
            self._txn.before_send(tp)
        timestamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        delivery = await self._accumulator.append(tp, timestamp, key_bytes, value_bytes, headers)
        if sticky:
            self._sticky.on_append(topic, tp.partition, size)
        return delivery

    async def send_many(
        self,
        topic: str,
        values: Sequence[Value],
        *,
        keys: Sequence[Value] | None = None,
        partition: int | None = None,
        headers: Sequence[RecordHeaders] | None = None,
        timestamp_ms: int | None = None,
    ) -> DeliveryGroup:
        """Queue many records of one topic (``keys`` and ``headers``, when given, one per
        value) with one timestamp, in order; return their :class:`DeliveryGroup`
        (``await group``: their RecordMetadata list). Records without keys go to
        ``partition``, or a batch's worth at a time to the sticky partition; keyed records
        to their key's partition. No object is made per record: columns are extended a
        batch at a time. Waits as send() does."""
        if keys is not None and len(keys) != len(values):
            raise InvalidRequestError(f"send_many: {len(keys)} keys for {len(values)} values")
        if headers is not None and len(headers) != len(values):
            raise InvalidRequestError(f"send_many: {len(headers)} headers for {len(values)} values")
        if self._closed:
            raise ProducerClosedError("the producer is closed: create a new one to send")
        if self._sender.fatal is not None:
            raise self._sender.fatal
        if not self._started:
            await self.start()
        info = self.metadata.fresh_topic(topic)
        if info is None:
            info = await self.metadata.topic(topic, Deadline(self.config.max_block_ms / 1000))
        value_list = [v if v is None or type(v) is bytes else _as_bytes(v, "value") for v in values]
        key_list: list[bytes | None] = (
            [k if k is None or type(k) is bytes else _as_bytes(k, "key") for k in keys]
            if keys is not None
            else [None] * len(value_list)
        )
        sizes = [
            record_size(k, v, h)
            for k, v, h in zip(key_list, value_list, headers or repeat(()), strict=False)
        ]
        too_large = max(sizes, default=0)
        if too_large > self._max_record_size:
            raise self._too_large(too_large)
        timestamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        group = DeliveryGroup()
        start = 0
        while start < len(value_list):
            tp, end, sticky = self._run_of(info, key_list, value_list, sizes, start, partition)
            if self._txn is not None:
                self._txn.before_send(tp)
            spans = await self._accumulator.append_many(
                tp,
                timestamp,
                key_list[start:end],
                value_list[start:end],
                headers[start:end] if headers is not None else None,
                sizes[start:end],
            )
            for batch, first, count in spans:
                group._add(batch, first, count)
            if sticky:
                self._sticky.on_append(topic, tp.partition, sum(sizes[start:end]))
            start = end
        return group

    def _run_of(
        self,
        info: TopicInfo,
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
        sizes: Sequence[int],
        start: int,
        partition: int | None,
    ) -> tuple[TopicPartition, int, bool]:
        """The partition of record ``start`` and how far the records after it go there too:
        everything for an explicit partition; for sticky records, up to the sticky
        partition's remaining batch worth of bytes; one keyed record at a time."""
        tp, sticky = self._partition(info, keys[start], values[start], partition)
        if partition is not None:
            return tp, len(values), False
        if not sticky:
            return tp, start + 1, False
        room = self._sticky.room(info.name)
        end, nbytes = start + 1, sizes[start]
        while end < len(values) and keys[end] is None and nbytes + sizes[end] <= room:
            nbytes += sizes[end]
            end += 1
        return tp, end, True

    def _partition(
        self,
        info: TopicInfo,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
    ) -> tuple[TopicPartition, bool]:
        """The record's partition, and whether the sticky partitioner chose it."""
        tps = self._topic_partitions(info)
        count = len(tps)
        if partition is not None:
            if not 0 <= partition < count:
                raise InvalidRequestError(
                    f"partition {partition} of topic {info.name!r} does not exist (it has "
                    f"{count}: 0..{count - 1})"
                )
            return tps[partition], False
        if self.config.partitioner is not None:
            chosen = self.config.partitioner(info.name, key, value, count)
            if not 0 <= chosen < count:
                raise InvalidRequestError(
                    f"the custom partitioner chose partition {chosen} of {info.name!r}, which "
                    f"has {count}"
                )
            return tps[chosen], False
        if key is not None:
            return tps[keyed_partition(key, count)], False
        chosen = self._sticky.current(info.name, count)
        if chosen < 0:
            topic = info.name
            chosen = self._sticky.partition(topic, count, lambda: self._availability(topic))
        return tps[chosen], True

    def _topic_partitions(self, info: TopicInfo) -> list[TopicPartition]:
        """The topic's partitions (made once per topic and partition count): only topics
        whose metadata the producer asked for are here, so the send path's check of
        ``metadata.fresh_until`` covers them."""
        tps = self._tps.get(info.name)
        if tps is None or len(tps) != len(info.partitions):
            tps = [TopicPartition(info.name, p) for p in range(len(info.partitions))]
            self._tps[info.name] = tps
        return tps

    def _too_large(self, size: int) -> RecordTooLargeError:
        return RecordTooLargeError(
            f"a record of about {size + HEADER_SIZE} bytes is larger than max_request_size="
            f"{self.config.max_request_size}: raise it (and the topic's max.message.bytes) "
            "or send smaller records"
        )

    def _availability(self, topic: str) -> tuple[Sequence[int], Callable[[int], int]]:
        info = self.metadata.topics.get(topic)
        available = [p.partition for p in info.partitions if p.leader_id >= 0] if info else []
        return available, lambda p: self._accumulator.queued(TopicPartition(topic, p))

    async def send_and_wait(
        self,
        topic: str,
        value: Value = None,
        key: Value = None,
        *,
        partition: int | None = None,
        headers: RecordHeaders = (),
        timestamp_ms: int | None = None,
    ) -> RecordMetadata:
        future = await self.send(
            topic, value, key, partition=partition, headers=headers, timestamp_ms=timestamp_ms
        )
        return await future

    async def flush(self) -> None:
        """Send everything queued now, and wait until each of those records is acknowledged
        or failed (failures are left in their futures)."""
        futures = [b.settled_future() for b in list(self._accumulator.incomplete)]
        if not futures:
            return
        self._accumulator.flushing += 1
        self._accumulator.wakeup.set()
        try:
            await asyncio.gather(*futures, return_exceptions=True)
        finally:
            self._accumulator.flushing -= 1

    # ------------------------------------------------------------------ transactions

    async def init_transactions(self) -> None:
        """Once, before the first transaction: registers the transactional id with its
        coordinator, fencing any older producer with the same id (whose open transaction is
        aborted). Retries until max_block_ms; RequestTimedOutError after it (call again)."""
        if not self._started:
            await self.start()
        await self._transactions().init_transactions()

    def begin_transaction(self) -> None:
        """Start a transaction (local: the coordinator hears of it with the first send)."""
        self._transactions().begin_transaction()

    async def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, OffsetAndMetadata | int],
        group_metadata: GroupMetadata,
    ) -> None:
        """Commit a consumer's offsets (the next offset to read, per partition) with the
        transaction: they count only if it commits. ``group_metadata``: the consumer's
        group_metadata()."""
        await self._transactions().send_offsets_to_transaction(offsets, group_metadata)

    async def commit_transaction(self) -> None:
        """Send what is queued, then commit. AbortableTransactionError if a record failed
        (call abort_transaction()); ProducerFencedError / ProducerFatalError: close()."""
        await self._transactions().commit_transaction(self.flush)

    async def abort_transaction(self) -> None:
        """Drop what is not sent yet and abort: none of the transaction's records or offsets
        become visible to read_committed consumers."""
        await self._transactions().abort_transaction()

    def _transactions(self) -> TransactionManager:
        if self._closed:
            raise ProducerClosedError("the producer is closed: create a new one")
        if self._txn is None:
            raise InvalidTxnStateError(
                "this producer is not transactional: create it with transactional_id=... "
                "to use transactions"
            )
        return self._txn

    @property
    def requests_in_flight(self) -> int:
        """Produce requests sent and not answered yet (every broker)."""
        return self._sender.requests_in_flight

    @property
    def throttle(self) -> ThrottleStats:
        """The brokers' quota throttle times seen in Produce answers (``.as_dict()``)."""
        return self._sender.throttle

    async def partitions_for(self, topic: str) -> list[int]:
        info = await self.metadata.topic(topic, Deadline(self.config.max_block_ms / 1000))
        return [p.partition for p in info.partitions]

    async def close(self, timeout_s: float | None = None) -> None:
        """Send what is queued and wait for the answers (up to ``timeout_s``; None: as long as
        delivery_timeout_ms allows), then release connections. Records still unsent at the
        timeout fail with ProducerClosedError."""
        if self._closed:
            return
        self._closed = True
        self._accumulator.closing = True
        self._accumulator.wakeup.set()
        sender = self._tasks[0] if self._tasks else None
        if sender is not None:
            try:
                await asyncio.wait_for(asyncio.shield(sender), timeout_s)
            except TimeoutError:
                self._accumulator.aborted = True
                error = ProducerClosedError("the producer was closed before these were sent")
                for batch in list(self._accumulator.drain_all()):
                    batch.fail(error)
                    self._accumulator.finished(batch)
        await cancel_and_wait(self._tasks)
        if self._txn is not None:
            await self._txn.close()
        await self._sender.stop()
        for batch in list(self._accumulator.incomplete):
            batch.fail(ProducerClosedError("the producer was closed before an answer came"))
            self._accumulator.finished(batch)
        await self._connections.close()


def _as_bytes(data: object, what: str) -> bytes | None:
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise InvalidRequestError(f"record {what} must be bytes or str, got {type(data).__name__}")


def _deliver(delivery: RecordDelivery, callback: DeliveryCallback) -> None:
    if delivery.cancelled():
        callback(None, asyncio.CancelledError())
    elif delivery.exception() is not None:
        callback(None, delivery.exception())
    else:
        callback(delivery.result(), None)
