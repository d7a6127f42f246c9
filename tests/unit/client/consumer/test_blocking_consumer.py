"""The blocking Consumer drives the same AsyncConsumer on a loop thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from raftka.client.consumer.blocking import Consumer
from raftka.client.consumer.errors import GroupRequiredError, IllegalStateError
from raftka.client.consumer.records import ConsumerRecord
from raftka.client.types import TopicPartition
from tests.unit.client.fake_cluster import FakeCluster
from tests.unit.client.support import FAST, make_consumer, poll_n

PARTITIONS = [TopicPartition("t", p) for p in range(3)]


def filled_cluster() -> FakeCluster:
    cluster = FakeCluster()
    cluster.create("t", 3)
    for p in range(3):
        for b in range(3):
            cluster.append("t", p, [f"{p}-{b}-{i}".encode() for i in range(4)], timestamp=1000 * b)
    return cluster


def test_blocking_and_asyncio_apis_return_the_same_records() -> None:
    async def with_async() -> list[ConsumerRecord]:
        async with make_consumer(filled_cluster(), auto_offset_reset="earliest") as consumer:
            consumer.assign(PARTITIONS)
            consumer.seek(PARTITIONS[1], 5)
            return await poll_n(consumer, 12 + 7 + 12)

    expected = asyncio.run(with_async())
    threads = threading.active_count()
    cluster = filled_cluster()
    with Consumer(
        bootstrap_servers=cluster.bootstrap,
        connections=cluster,
        auto_offset_reset="earliest",
        **FAST,
    ) as consumer:
        consumer.assign(PARTITIONS)
        assert consumer.assignment() == set(PARTITIONS)
        consumer.seek(PARTITIONS[1], 5)
        got: list[ConsumerRecord] = []
        for _ in range(50):
            if len(got) >= len(expected):
                break
            got += consumer.poll(timeout_ms=1000)
        key = lambda r: (r.partition, r.offset)  # noqa: E731
        assert sorted(got, key=key) == sorted(expected, key=key)
        assert consumer.position(PARTITIONS[0]) == 12
        assert consumer.end_offsets(PARTITIONS) == dict.fromkeys(PARTITIONS, 12)
        assert consumer.beginning_offsets(PARTITIONS) == dict.fromkeys(PARTITIONS, 0)
        found = consumer.offsets_for_times({PARTITIONS[2]: 1500})[PARTITIONS[2]]
        assert found is not None and found.offset == 8
        consumer.seek_to_beginning(PARTITIONS[0])
        assert consumer.position(PARTITIONS[0]) == 0
        consumer.seek_to_end()
        assert consumer.position(PARTITIONS[2]) == 12
        assert consumer.poll(timeout_ms=0) == []
        assert consumer.partitions_for("t") == PARTITIONS
        with pytest.raises(GroupRequiredError):
            consumer.commit()
        with pytest.raises(IllegalStateError, match="not assigned"):
            consumer.seek(TopicPartition("x", 0), 1)
    assert threading.active_count() == threads, "close() stops the loop thread"
    consumer.close()  # idempotent


def test_blocking_subscribe_commit_and_close() -> None:
    from raftka.client.loop_thread import LoopThread
    from tests.unit.client.fake_groups import started

    servers = LoopThread("fake-coordinator")
    cluster = servers.run(started())
    try:
        cluster.create("t", 1)
        cluster.append("t", 0, [b"a", b"b", b"c"])
        assigned: list[set[TopicPartition]] = []
        with Consumer(
            bootstrap_servers=cluster.bootstrap,
            connections=cluster,
            group_id="g",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **FAST,
        ) as consumer:
            consumer.subscribe("t", on_assign=assigned.append)
            assert consumer.subscription() == {"t"}
            got: list[ConsumerRecord] = []
            for _ in range(100):
                got += consumer.poll(timeout_ms=50)
                if len(got) >= 3:
                    break
            assert [r.value for r in got] == [b"a", b"b", b"c"]
            assert assigned == [{TopicPartition("t", 0)}]
            consumer.commit()
            committed = consumer.committed(TopicPartition("t", 0))
            assert committed is not None and committed.offset == 3
        assert cluster.groups.members == {}  # close() left the group
    finally:
        servers.run(cluster.stop())
        servers.stop()
