"""The Python client's transactions on 3 real brokers: a transactional producer's committed
records are read by read_committed consumers and its aborted ones never are; a second
instance with the same transactional id fences the first; offsets sent with a transaction
become the group's committed offsets only when it commits; ``raftka copy`` copies a topic
exactly once and a rerun continues where it stopped."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from raftka.client import AsyncConsumer, ConsumerRecord, TopicPartition
from raftka.client.cli.app import build_parser
from raftka.client.cli.copy import copy_topic
from raftka.client.consumer.membership import ConsumerGroupMetadata
from raftka.client.producer import AsyncProducer, ProducerFencedError
from raftka.ops.local_cluster import LocalCluster
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
)
from tests.integration.support.quorum import client_for, create_topic

pytestmark = pytest.mark.integration

TOPICS = ("orders", "copy-in", "copy-out", "fence", "words", "words-upper")
PARTITIONS = 2
FAST: dict[str, Any] = {
    "linger_ms": 0,
    "retry_backoff_ms": 20,
    "request_timeout_ms": 10_000,
    "max_block_ms": 30_000,
}
READ: dict[str, Any] = {
    "fetch_max_wait_ms": 100,
    "retry_backoff_ms": 20,
    "request_timeout_ms": 10_000,
}


@pytest.fixture(scope="module")
def txn_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("txn-client"),
        broker_settings={"transaction_state_num_partitions": 3, "offsets_topic_num_partitions": 3},
    )
    try:
        asyncio.run(_topics(c))
        yield c
    finally:
        stop_broker_cluster(c)


async def _topics(cluster: LocalCluster) -> None:
    async with client_for(cluster, timeout_s=10.0) as client:
        for name in TOPICS:
            await create_topic(client, name, partitions=PARTITIONS, rf=3)
    for name in TOPICS:
        await wait_partition_leaders(cluster, name, PARTITIONS)


def bootstrap(cluster: LocalCluster) -> list[str]:
    return [node.address for node in cluster.brokers.values()]


def producer(cluster: LocalCluster, transactional_id: str) -> AsyncProducer:
    return AsyncProducer(
        bootstrap_servers=bootstrap(cluster), transactional_id=transactional_id, **FAST
    )


async def read_all(
    cluster: LocalCluster, topic: str, isolation: str, expected: int
) -> list[ConsumerRecord]:
    """Every record of ``topic`` a consumer with ``isolation`` sees (``expected`` of them)."""
    consumer = AsyncConsumer(
        bootstrap_servers=bootstrap(cluster), isolation_level=isolation, **READ
    )
    out: list[ConsumerRecord] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        async with asyncio.timeout(30):
            while len(out) < expected:
                out += await consumer.poll(timeout_ms=500)
            out += await consumer.poll(timeout_ms=300)  # nothing more arrives
    finally:
        await consumer.close()
    return out


def test_committed_records_are_read_and_aborted_ones_never(txn_cluster: LocalCluster) -> None:
    async def main() -> None:
        async with producer(txn_cluster, "orders-writer") as p:
            await p.init_transactions()
            p.begin_transaction()
            for i in range(4):
                await p.send("orders", b"committed-%d" % i, partition=i % 2)
            await p.commit_transaction()
            p.begin_transaction()
            for i in range(4):
                await p.send("orders", b"aborted-%d" % i, partition=i % 2)
            await p.flush()  # written, then aborted: only the marker hides them
            await p.abort_transaction()
            p.begin_transaction()
            await p.send("orders", b"last", partition=0)
            await p.commit_transaction()
        committed = await read_all(txn_cluster, "orders", "read_committed", 5)
        assert sorted(r.value or b"" for r in committed) == sorted(
            [b"committed-0", b"committed-1", b"committed-2", b"committed-3", b"last"]
        )
        everything = await read_all(txn_cluster, "orders", "read_uncommitted", 9)
        assert sum(1 for r in everything if (r.value or b"").startswith(b"aborted")) == 4

    asyncio.run(main())


def test_a_second_instance_fences_the_first(txn_cluster: LocalCluster) -> None:
    async def main() -> None:
        async with (
            producer(txn_cluster, "fenced-id") as old,
            producer(txn_cluster, "fenced-id") as new,
        ):
            await old.init_transactions()
            old.begin_transaction()
            await old.send("fence", b"from the old one", partition=0)
            await old.flush()
            await new.init_transactions()  # aborts what the old one left open
            with pytest.raises(ProducerFencedError):
                await old.commit_transaction()
            new.begin_transaction()
            await new.send("fence", b"from the new one", partition=0)
            await new.commit_transaction()
        seen = await read_all(txn_cluster, "fence", "read_committed", 1)
        assert [r.value for r in seen] == [b"from the new one"]

    asyncio.run(main())


def test_offsets_sent_with_a_transaction_count_only_when_it_commits(
    txn_cluster: LocalCluster,
) -> None:
    tp = TopicPartition("orders", 1)
    group = ConsumerGroupMetadata("offsets-group", "", -1, None)

    async def committed() -> int | None:
        async with AsyncConsumer(
            bootstrap_servers=bootstrap(txn_cluster), group_id=group.group_id, **READ
        ) as consumer:
            found = await consumer.committed(tp)
        return None if found is None else found.offset

    async def main() -> None:
        async with producer(txn_cluster, "offsets-writer") as p:
            await p.init_transactions()
            p.begin_transaction()
            await p.send_offsets_to_transaction({tp: 3}, group)
            await p.commit_transaction()
            assert await committed() == 3
            p.begin_transaction()
            await p.send_offsets_to_transaction({tp: 7}, group)
            await p.abort_transaction()
            assert await committed() == 3

    asyncio.run(main())


def test_consume_transform_produce_as_a_group_member(txn_cluster: LocalCluster) -> None:
    """The loop of docs/transactions.md: a subscribed member's offsets go with its output."""
    words = [b"w%d" % i for i in range(20)]

    async def main() -> None:
        async with AsyncProducer(bootstrap_servers=bootstrap(txn_cluster), **FAST) as plain:
            for i, w in enumerate(words):
                await plain.send("words", w, partition=i % 2)
            await plain.flush()
        consumer = AsyncConsumer(
            bootstrap_servers=bootstrap(txn_cluster),
            group_id="uppercaser",
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **READ,
        )
        async with consumer, producer(txn_cluster, "uppercaser-1") as p:
            consumer.subscribe(["words"])
            await p.init_transactions()
            done = 0
            async with asyncio.timeout(60):
                while done < len(words):
                    records = await consumer.poll(timeout_ms=500)
                    if not records:
                        continue
                    p.begin_transaction()
                    for r in records:
                        await p.send("words-upper", (r.value or b"").upper(), key=r.key)
                    positions = {r.topic_partition: r.offset + 1 for r in records}
                    await p.send_offsets_to_transaction(positions, consumer.group_metadata())
                    await p.commit_transaction()
                    done += len(records)
            for partition in range(PARTITIONS):
                found = await consumer.committed(TopicPartition("words", partition))
                assert found is not None and found.offset == 10
        out = await read_all(txn_cluster, "words-upper", "read_committed", len(words))
        assert sorted(r.value or b"" for r in out) == sorted(w.upper() for w in words)

    asyncio.run(main())


def test_raftka_copy_copies_exactly_once_and_a_rerun_continues(txn_cluster: LocalCluster) -> None:
    servers = ",".join(bootstrap(txn_cluster))

    def args(*extra: str) -> argparse.Namespace:
        return build_parser().parse_args(
            [
                "copy",
                "--from-bootstrap",
                servers,
                "--source-topic",
                "copy-in",
                "--target-topic",
                "copy-out",
                "--group",
                "copier",
                "--transactional-id",
                "copier-1",
                "--idle-timeout-s",
                "2",
                *extra,
            ]
        )

    async def fill(tag: str, n: int) -> None:
        async with AsyncProducer(bootstrap_servers=bootstrap(txn_cluster), **FAST) as p:
            for i in range(n):
                await p.send("copy-in", b"%s-%d" % (tag.encode(), i), partition=i % 2)
            await p.flush()

    async def main() -> None:
        await fill("first", 10)
        stats = await copy_topic(args())
        assert stats.records == 10
        await fill("second", 4)
        again = await copy_topic(args())
        assert again.records == 4, "a rerun starts at the offsets committed on the target"
        copied = await read_all(txn_cluster, "copy-out", "read_committed", 14)
        assert len(copied) == 14
        assert sorted(r.value or b"" for r in copied) == sorted(
            [b"first-%d" % i for i in range(10)] + [b"second-%d" % i for i in range(4)]
        )

    asyncio.run(main())
