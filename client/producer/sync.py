"""Producer: the blocking API, driving an AsyncProducer on a background event loop.

with Producer(bootstrap_servers=["127.0.0.1:9092"]) as producer:
    future = producer.send("orders", b"value", key=b"customer-7")
    print(future.result())        # RecordMetadata
    producer.flush()

The transactional calls (init_transactions, begin/commit/abort_transaction,
send_offsets_to_transaction) block the same way; see AsyncProducer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from typing import Any

from raftka.client.loop_thread import LoopThread
from raftka.client.producer.config import ProducerConfig
from raftka.client.producer.metrics import ProducerCollector
from raftka.client.producer.producer import AsyncProducer, DeliveryCallback, Value
from raftka.client.producer.txn_calls import GroupMetadata
from raftka.client.throttle import ThrottleStats
from raftka.client.types import OffsetAndMetadata, RecordMetadata, TopicPartition
from raftka.common.records.builder import RecordHeaders


class Producer:
    def __init__(self, config: ProducerConfig | None = None, **settings: Any) -> None:
        self._thread = LoopThread("raftka-producer")
        try:
            self._producer = AsyncProducer(config, **settings)
            self._thread.run(self._producer.start())
        except BaseException:
            self._thread.stop()
            raise
        self.config = self._producer.config

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def send(
        self,
        topic: str,
        value: Value = None,
        key: Value = None,
        *,
        partition: int | None = None,
        headers: RecordHeaders = (),
        timestamp_ms: int | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> concurrent.futures.Future[RecordMetadata]:
        """Queue one record (blocking at most max_block_ms); the future completes when it is
        acknowledged. ``on_delivery`` runs on the producer's thread: keep it short."""
        delivery = self._thread.run(
            self._producer.send(
                topic,
                value,
                key,
                partition=partition,
                headers=headers,
                timestamp_ms=timestamp_ms,
                on_delivery=on_delivery,
            )
        )
        result: concurrent.futures.Future[RecordMetadata] = concurrent.futures.Future()

        def copy(done: asyncio.Future[RecordMetadata]) -> None:
            if done.cancelled():
                result.cancel()
            elif done.exception() is not None:
                result.set_exception(done.exception())
            else:
                result.set_result(done.result())

        self._thread.loop.call_soon_threadsafe(delivery.add_done_callback, copy)
        return result

    def send_and_wait(
        self, topic: str, value: Value = None, key: Value = None, **kw: Any
    ) -> RecordMetadata:
        return self._thread.run(self._producer.send_and_wait(topic, value, key, **kw))

    def metrics(self) -> dict[str, float]:
        """See :meth:`AsyncProducer.metrics`."""
        return self._producer.metrics()

    def metrics_collector(self) -> ProducerCollector:
        """See :meth:`AsyncProducer.metrics_collector` (register it in your registry)."""
        return self._producer.metrics_collector()

    def flush(self) -> None:
        self._thread.run(self._producer.flush())

    def init_transactions(self) -> None:
        self._thread.run(self._producer.init_transactions())

    def begin_transaction(self) -> None:
        self._thread.run(self._begin())

    async def _begin(self) -> None:
        self._producer.begin_transaction()

    def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, OffsetAndMetadata | int],
        group_metadata: GroupMetadata,
    ) -> None:
        self._thread.run(self._producer.send_offsets_to_transaction(offsets, group_metadata))

    def commit_transaction(self) -> None:
        self._thread.run(self._producer.commit_transaction())

    def abort_transaction(self) -> None:
        self._thread.run(self._producer.abort_transaction())

    @property
    def throttle(self) -> ThrottleStats:
        """The brokers' quota throttle times seen in Produce answers (``.as_dict()``)."""
        return self._producer.throttle

    def partitions_for(self, topic: str) -> list[int]:
        return self._thread.run(self._producer.partitions_for(topic))

    def close(self, timeout_s: float | None = None) -> None:
        try:
            self._thread.run(self._producer.close(timeout_s))
        finally:
            self._thread.stop()
