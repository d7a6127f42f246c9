"""What send() and send_many() return: deliveries that resolve from their batch's one outcome
and behave as asyncio futures; send_nowait's refusals; send_many's order across batches."""

from __future__ import annotations

import asyncio
import os
from typing import Any, cast

import pytest

from raftka.client.producer import AsyncProducer
from raftka.client.producer.batch import ProducerBatch, record_size
from raftka.client.producer.delivery import RecordDelivery
from raftka.client.types import RecordMetadata, TopicPartition
from raftka.common.errors import RaftkaError
from raftka.common.records.batch import Compression
from raftka.common.records.decoder import iter_records
from tests.unit.client.fake_txn import FakeTxnCluster

TP = TopicPartition("t", 0)


def batch_of(*values: bytes) -> tuple[ProducerBatch, list[RecordDelivery]]:
    batch = ProducerBatch(TP, Compression.NONE, 1 << 20, created=0.0)
    deliveries = []
    for i, v in enumerate(values):
        index = batch.try_append(1000 + i, b"k" if i % 2 else None, v, (), record_size(None, v, ()))
        deliveries.append(RecordDelivery(batch, index))
    return batch, deliveries


def test_deliveries_resolve_from_the_batch_outcome_as_futures_do() -> None:
    async def main() -> None:
        batch, (d0, d1) = batch_of(b"zero", b"one")
        with pytest.raises(asyncio.InvalidStateError):
            d0.result()
        seen: list[RecordMetadata] = []
        d1.add_done_callback(lambda d: seen.append(d.result()))
        assert asyncio.isfuture(cast(Any, d0)) and not d0.done()
        batch.complete(100, -1)
        assert d0.done() and not seen, "callbacks run from the loop, not inside complete()"
        first, second = await asyncio.gather(d0, d1)
        assert first == RecordMetadata("t", 0, 100, 1000, 0, 4)
        assert second == RecordMetadata("t", 0, 101, 1001, 1, 3)
        assert await d1 == second and seen == [second]
        assert await asyncio.wait_for(d0, 1) == first
        assert d0.exception() is None

    asyncio.run(main())


def test_a_failed_batch_fails_each_delivery_with_its_error() -> None:
    async def main() -> None:
        batch, (d0, d1) = batch_of(b"a", b"b")
        called: list[BaseException | None] = []
        d0.add_done_callback(lambda d: called.append(d.exception()))
        error = RaftkaError("refused")
        batch.fail(error)
        with pytest.raises(RaftkaError, match="refused"):
            await d1
        assert d1.exception() is error
        results = await asyncio.gather(d0, d1, return_exceptions=True)
        assert list(results) == [error, error] and called == [error]

    asyncio.run(main())


def test_cancelling_a_wait_leaves_the_other_records_of_the_batch_alone() -> None:
    async def main() -> None:
        batch, (d0, d1) = batch_of(b"a", b"b")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(d0, 0.01)  # wait_for cancels d0 on timeout
        assert d0.cancelled() and not d1.done()
        waiter: object = asyncio.ensure_future(d1)
        assert waiter is d1, "a delivery is used as it is, not wrapped in a task"
        task = asyncio.create_task(_await(d1))
        await asyncio.sleep(0)
        task.cancel()  # cancels that await only
        with pytest.raises(asyncio.CancelledError):
            await task
        batch.complete(7, 55)
        assert (await d1).offset == 8 and (await d1).timestamp == 55, "log append time"
        with pytest.raises(asyncio.CancelledError):
            d0.result()

    asyncio.run(main())


async def _await(delivery: RecordDelivery) -> RecordMetadata:
    return await delivery


def producer_on(cluster: FakeTxnCluster, **settings: Any) -> AsyncProducer:
    return AsyncProducer(
        bootstrap_servers=cluster.bootstrap, connections=cluster, linger_ms=0, **settings
    )


def test_send_nowait_queues_at_once_or_says_send_would_wait() -> None:
    cluster = FakeTxnCluster()
    cluster.create("t", 2)

    async def main() -> None:
        producer = producer_on(cluster, buffer_memory=4096)
        assert producer.send_nowait("t", b"x") is None, "not started"
        async with producer:
            assert producer.send_nowait("t", b"x") is None, "no metadata yet"
            first = await producer.send("t", b"first", partition=1)
            queued = producer.send_nowait("t", b"second", partition=1)
            assert queued is not None
            assert producer.send_nowait("t", bytes(5000)) is None, "buffer memory is short"
            assert [(await first).offset, (await queued).offset] == [0, 1]

    asyncio.run(main())


def test_send_many_keeps_order_across_batches_and_partitions() -> None:
    cluster = FakeTxnCluster()
    cluster.create("t", 3)
    values = [os.urandom(200) for _ in range(100)]

    async def main() -> None:
        async with producer_on(cluster, batch_size=2048) as producer:
            group = await producer.send_many("t", values)  # sticky: ~2 KiB per partition
            keyed = await producer.send_many("t", [b"k"] * 5, keys=[b"a", b"b", b"a", b"c", b"a"])
            metadata = await group
            assert len(group) == 100 and group.failures() == []
            assert len({m.partition for m in metadata}) > 1, "it moved on after a batch"
            for m, value in zip(metadata, values, strict=True):
                assert m.serialized_value_size == 200
                assert cluster_value(cluster, m) == value
            parts = [m.partition for m in await keyed]
            assert parts[0] == parts[2] == parts[4], "one key, one partition"
            assert [d.result() for d in group.deliveries()] == metadata

    asyncio.run(main())


def cluster_value(cluster: FakeTxnCluster, m: RecordMetadata) -> bytes | None:
    for batch in cluster.partitions[(m.topic, m.partition)].batches:
        for record in iter_records(batch.data):
            if record.offset == m.offset:
                return record.value
    return None
