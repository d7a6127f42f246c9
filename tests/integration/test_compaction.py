"""Log compaction on a real broker: a compacted topic read from offset 0 after the cleaner has
run holds only the latest value of each key below its active segment, at the offsets they
were written at."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.common.records import decode_batch, split_batches
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from tests.conditions import eventually
from tests.integration.support.broker_rpc import fetch, produce
from tests.integration.support.brokers import log_events, start_broker_cluster, stop_broker_cluster
from tests.integration.support.quorum import client_for

pytestmark = pytest.mark.integration

TOPIC = "compacted"
KEYS, ROUNDS = 5, 20


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path / "c",
        controllers=1,
        brokers=1,
        broker_settings={"log_cleaner_backoff_ms": 100},
    )
    try:
        yield c
    finally:
        stop_broker_cluster(c)


async def read_from_zero(address: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record fetched from offset 0 to the high watermark."""
    records: list[tuple[int, bytes | None, bytes | None]] = []
    offset = 0
    while True:
        result = await fetch(address, TOPIC, 0, offset)
        assert result.error_code == cpb.NONE, result.error_message
        if not result.batches:
            return records
        for span in split_batches(result.batches):
            decoded = decode_batch(result.batches, span.position)
            records.extend(
                (r.offset, r.key, r.value) for r in decoded.records if r.offset >= offset
            )
            offset = decoded.header.next_offset


def test_a_compacted_topic_keeps_the_latest_value_per_key(cluster: LocalCluster) -> None:
    async def leader_serving() -> int | None:
        async with client_for(cluster, timeout_s=3.0) as client:
            (t,) = await client.describe_topics([TOPIC])
        leader = t.partitions[0].leader if t.partitions else -1
        if leader < 0:
            return None
        result = await fetch(cluster.brokers[leader].address, TOPIC, 0, 0)
        return leader if result.error_code == cpb.NONE else None

    async def scenario() -> None:
        async with client_for(cluster) as client:
            (created,) = await client.create_topics(
                [
                    pb.NewTopic(
                        name=TOPIC,
                        num_partitions=1,
                        replication_factor=1,
                        configs={"cleanup.policy": "compact", "segment.bytes": "1024"},
                    )
                ]
            )
            assert created.error_code in (cpb.NONE, cpb.TOPIC_ALREADY_EXISTS)
        leader = await eventually(leader_serving, what="the compacted topic's leader serving")
        address = cluster.brokers[leader].address
        latest: dict[bytes, tuple[int, bytes]] = {}
        produced: set[tuple[int, bytes | None, bytes | None]] = set()
        for r in range(ROUNDS):
            for k in range(KEYS):
                key, value = f"key-{k}".encode(), f"value-{r}-{k}".encode().ljust(60, b".")
                result = await produce(
                    address, TOPIC, 0, records=[bpb.Record(key=key, value=value)], acks=-1
                )
                assert result.error_code == cpb.NONE, result.error_message
                latest[key] = (result.base_offset, value)
                produced.add((result.base_offset, key, value))
        # (The cleaner may already run meanwhile: its backoff is 100 ms.)

        async def compacted() -> list[tuple[int, bytes | None, bytes | None]] | None:
            records = await read_from_zero(address)
            return records if len(records) < KEYS * ROUNDS // 2 else None

        records = await eventually(compacted, timeout_s=20, what="the cleaner compacting")
        # The latest value of every key is still there, at its offset; every record read is
        # one that was written, at its own offset.
        assert {key: (offset, value) for offset, key, value in records} == latest
        assert set(records) <= produced
        assert [offset for offset, _, _ in records] == sorted(offset for offset, _, _ in records)
        cleaned = log_events(cluster, leader, "log_cleaned")
        assert cleaned and cleaned[0]["topic"] == TOPIC

    asyncio.run(scenario())
