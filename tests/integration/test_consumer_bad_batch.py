"""A consumer meets a batch already on disk whose CRC is right but whose records cannot be
read (stored by a broker version that did not validate records; written here straight into
the segment file while the broker is down). poll() returns the records before it, then raises
InvalidBatchError naming topic, partition and offset; seeking to ``error.next_offset`` skips
the batch and the records after it are delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.client import AsyncConsumer, TopicPartition
from raftka.client.consumer import InvalidBatchError
from raftka.common.data_dir import PARTITION_LOGS_DIR
from raftka.common.records.batch import write_crc
from raftka.common.records.builder import build_batch
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import common_pb2 as cpb
from tests.integration.support.broker_rpc import produce
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
    wait_unfenced,
)
from tests.integration.support.quorum import client_for, create_topic

pytestmark = pytest.mark.integration

TOPIC = "old-bad-batch"
RECORDS_COUNT_AT = 57
"""Byte position of a v2 batch header's records count."""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = start_broker_cluster(tmp_path / "c", controllers=1, brokers=1)
    try:
        yield c
    finally:
        stop_broker_cluster(c)


def lying_batch(base_offset: int, count: int) -> bytes:
    """A batch of ``count`` records whose header claims one more, with a valid CRC: what an
    older broker stored without looking inside."""
    data = build_batch([(1, None, b"lost", ())] * count, base_offset=base_offset)
    data[RECORDS_COUNT_AT : RECORDS_COUNT_AT + 4] = (count + 1).to_bytes(4, "big")
    write_crc(data)
    return bytes(data)


async def produce_batch(cluster: LocalCluster, broker: int, values: list[bytes]) -> int:
    batch = build_batch([(1, None, v, ()) for v in values])
    result = await produce(cluster.brokers[broker].address, TOPIC, 0, batches=bytes(batch))
    assert result.error_code == cpb.NONE, result.error_message
    return int(result.base_offset)


def test_bad_batch_on_disk_is_named_and_can_be_skipped(cluster: LocalCluster) -> None:
    (broker,) = cluster.brokers

    async def prepare() -> None:
        async with client_for(cluster) as client:
            await create_topic(client, TOPIC, partitions=1, rf=1)
        await wait_partition_leaders(cluster, TOPIC, 1)
        assert await produce_batch(cluster, broker, [b"a0", b"a1", b"a2", b"a3", b"a4"]) == 0

    asyncio.run(prepare())
    cluster.stop(broker)
    directory = cluster.brokers[broker].data_dir / PARTITION_LOGS_DIR / f"{TOPIC}-0"
    (segment,) = sorted(directory.glob("*.log"))
    with segment.open("ab") as f:
        f.write(lying_batch(5, 3))  # offsets 5..7
    cluster.start(broker)

    async def consume() -> None:
        await wait_unfenced(cluster, [broker])
        await wait_partition_leaders(cluster, TOPIC, 1)
        assert await produce_batch(cluster, broker, [b"b8", b"b9"]) == 8
        tp = TopicPartition(TOPIC, 0)
        consumer = AsyncConsumer(bootstrap_servers=cluster.bootstrap_servers,
                                 fetch_max_wait_ms=100, retry_backoff_ms=20)  # fmt: skip
        async with consumer:
            consumer.assign([tp])
            consumer.seek_to_beginning()
            values: list[bytes | None] = []
            with pytest.raises(InvalidBatchError) as caught:
                for _ in range(100):
                    values += [r.value for r in await consumer.poll(timeout_ms=200)]
            assert values == [b"a0", b"a1", b"a2", b"a3", b"a4"]  # everything before it
            error = caught.value
            assert (error.topic, error.partition, error.offset) == (TOPIC, 0, 5)
            assert error.next_offset == 8 and not error.retriable
            assert f"{TOPIC}-0 at offset 5" in error.message and "seek()" in error.message
            with pytest.raises(InvalidBatchError):  # until the application seeks
                await consumer.poll(timeout_ms=100)
            consumer.seek(error.topic_partition, error.next_offset)
            after: list[bytes | None] = []
            for _ in range(100):
                after += [r.value for r in await consumer.poll(timeout_ms=200)]
                if len(after) >= 2:
                    break
            assert after == [b"b8", b"b9"]

    asyncio.run(consume())
