"""The Consumer (asyncio and blocking) and ``raftka consume`` / ``raftka perf consume``
against real controller and broker processes.

One cluster (three controllers, brokers 4, 5, 6) serves the module; every test uses its own
topics. The failover test kills a partition leader and starts it again before it ends, so the
cluster is whole for the next test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from raftka.client import AsyncConsumer, Consumer, ConsumerRecord, TopicPartition
from raftka.client.consumer import NoOffsetForPartitionError, OffsetOutOfRangeError
from raftka.common.errors import RequestTimedOutError
from raftka.common.records.batch import Compression
from raftka.common.records.builder import build_batch
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from tests.conditions import eventually
from tests.integration.support.broker_rpc import broker_stub, produce
from tests.integration.support.brokers import wait_partition_leaders, wait_unfenced
from tests.integration.support.quorum import client_for, create_topic

pytestmark = pytest.mark.integration

FAST: dict[str, Any] = {
    "fetch_max_wait_ms": 200,
    "retry_backoff_ms": 20,
    "request_timeout_ms": 10_000,
}
NOW_MS = int(time.time() * 1000)


async def new_topic(cluster: LocalCluster, name: str, partitions: int = 1) -> dict[int, int]:
    async with client_for(cluster) as client:
        await create_topic(client, name, partitions=partitions, rf=3)
    return await wait_partition_leaders(cluster, name, partitions)


async def produce_values(
    cluster: LocalCluster,
    leader: int,
    topic: str,
    partition: int,
    values: Sequence[bytes],
    *,
    timestamp: int = NOW_MS,
    compression: Compression = Compression.NONE,
) -> int:
    """One batch (acks=all) to the partition's leader; return its base offset."""
    batch = build_batch(
        [(timestamp + i, f"k{i}".encode(), v, (("h", b"1"),)) for i, v in enumerate(values)],
        compression=compression,
    )
    result = await produce(cluster.brokers[leader].address, topic, partition, batches=bytes(batch))
    assert result.error_code == cpb.NONE, result.error_message
    return int(result.base_offset)


def consumer_for(cluster: LocalCluster, **settings: Any) -> AsyncConsumer:
    return AsyncConsumer(bootstrap_servers=cluster.bootstrap_servers, **{**FAST, **settings})


async def poll_n(consumer: AsyncConsumer, n: int, timeout_s: float = 30.0) -> list[ConsumerRecord]:
    out: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out += await consumer.poll(timeout_ms=500, max_records=n - len(out))
    assert len(out) == n, f"expected {n} records, got {len(out)}"
    return out


def by_partition(records: Sequence[ConsumerRecord]) -> dict[int, list[tuple[int, bytes | None]]]:
    out: dict[int, list[tuple[int, bytes | None]]] = {}
    for r in records:
        out.setdefault(r.partition, []).append((r.offset, r.value))
    return out


def test_reads_everything_from_the_beginning_in_order(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        leaders = await new_topic(broker_cluster, "c-all", partitions=3)
        expected: dict[int, list[tuple[int, bytes | None]]] = {}
        for p, leader in leaders.items():
            offset = 0
            for b, codec in enumerate((Compression.NONE, Compression.GZIP, Compression.ZSTD)):
                values = [f"p{p}-b{b}-{i}".encode() * (i + 1) for i in range(5 + p)]
                assert (
                    await produce_values(
                        broker_cluster, leader, "c-all", p, values, compression=codec
                    )
                    == offset
                )
                expected.setdefault(p, []).extend((offset + i, v) for i, v in enumerate(values))
                offset += len(values)
        tps = [TopicPartition("c-all", p) for p in range(3)]
        async with consumer_for(broker_cluster, auto_offset_reset="earliest") as consumer:
            consumer.assign(tps)
            records = await poll_n(consumer, sum(len(v) for v in expected.values()))
            assert by_partition(records) == expected
            assert records[0].key == b"k0" and records[0].headers == (("h", b"1"),)
            assert records[0].leader_epoch is not None
            assert await consumer.end_offsets(tps) == {
                tp: len(expected[tp.partition]) for tp in tps
            }
            assert await consumer.beginning_offsets(tps) == dict.fromkeys(tps, 0)
            assert await consumer.poll(timeout_ms=300) == []

    asyncio.run(main())


def test_seek_to_offset_end_and_timestamp(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        (leader,) = (await new_topic(broker_cluster, "c-seek")).values()
        tp = TopicPartition("c-seek", 0)
        await produce_values(
            broker_cluster, leader, "c-seek", 0, [b"a0", b"a1", b"a2", b"a3"], timestamp=NOW_MS
        )
        await produce_values(
            broker_cluster, leader, "c-seek", 0, [b"b0", b"b1"], timestamp=NOW_MS + 60_000
        )
        async with consumer_for(broker_cluster) as consumer:
            consumer.assign([tp])
            consumer.seek(tp, 2)  # inside the first batch
            assert [(r.offset, r.value) for r in await poll_n(consumer, 4)] == [
                (2, b"a2"),
                (3, b"a3"),
                (4, b"b0"),
                (5, b"b1"),
            ]
            found = (await consumer.offsets_for_times({tp: NOW_MS + 30_000}))[tp]
            assert found is not None and found.offset == 4
            assert found.timestamp == NOW_MS + 60_000
            assert (await consumer.offsets_for_times({tp: NOW_MS + 3_600_000}))[tp] is None
            consumer.seek(tp, found.offset)
            assert [r.value for r in await poll_n(consumer, 2)] == [b"b0", b"b1"]
            consumer.seek_to_beginning(tp)
            assert await consumer.position(tp) == 0
            consumer.seek_to_end(tp)
            assert await consumer.position(tp) == 6
            await produce_values(broker_cluster, leader, "c-seek", 0, [b"c0"])
            assert [(r.offset, r.value) for r in await poll_n(consumer, 1)] == [(6, b"c0")]

    asyncio.run(main())


def test_auto_offset_reset_earliest_latest_none(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        (leader,) = (await new_topic(broker_cluster, "c-reset")).values()
        tp = TopicPartition("c-reset", 0)
        await produce_values(broker_cluster, leader, "c-reset", 0, [b"0", b"1", b"2"])
        async with consumer_for(broker_cluster, auto_offset_reset="earliest") as earliest:
            earliest.assign([tp])
            assert await earliest.position(tp) == 0
            earliest.seek(tp, 1000)  # out of range: back to the start
            assert [r.offset for r in await poll_n(earliest, 3)] == [0, 1, 2]
        async with consumer_for(broker_cluster) as latest:
            latest.assign([tp])
            assert await latest.position(tp) == 3
            latest.seek(tp, 1000)  # out of range: to the end
            assert await latest.poll(timeout_ms=1000) == []
            await produce_values(broker_cluster, leader, "c-reset", 0, [b"3"])
            assert [r.offset for r in await poll_n(latest, 1)] == [3]
        async with consumer_for(broker_cluster, auto_offset_reset="none") as none:
            none.assign([tp])
            with pytest.raises(NoOffsetForPartitionError, match="auto_offset_reset is 'none'"):
                await none.poll(timeout_ms=0)
            none.seek(tp, 1000)
            with pytest.raises(OffsetOutOfRangeError, match="c-reset-0 at offset 1000") as err:
                await poll_n(none, 1)
            assert "valid positions are 0 to 4" in err.value.message
            none.seek(tp, 2)
            assert [r.offset for r in await poll_n(none, 2)] == [2, 3]

    asyncio.run(main())


def test_poll_continues_across_a_leader_failover(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        leaders = await new_topic(broker_cluster, "c-failover", partitions=2)
        tps = [TopicPartition("c-failover", p) for p in range(2)]
        sent: dict[int, list[bytes]] = {0: [], 1: []}

        async def send(round_: int, current: dict[int, int]) -> None:
            for p, leader in current.items():
                for b in range(3):
                    values = [f"r{round_}-p{p}-b{b}-{i}".encode() for i in range(10)]
                    await produce_values(broker_cluster, leader, "c-failover", p, values)
                    sent[p] += values

        await send(0, leaders)
        await eventually(lambda: full_isr("c-failover"), what="every replica in sync")
        victim = leaders[0]
        async with consumer_for(
            broker_cluster, auto_offset_reset="earliest", max_poll_records=7
        ) as consumer:
            consumer.assign(tps)
            got = await poll_n(consumer, 35)  # part way through
            broker_cluster.kill(victim)
            try:
                alive = [b for b in broker_cluster.brokers if b != victim]
                new_leaders = await wait_partition_leaders(
                    broker_cluster, "c-failover", 2, brokers=alive, timeout_s=40
                )
                assert victim not in new_leaders.values()
                await send(1, new_leaders)
                got += await poll_n(consumer, 120 - 35, timeout_s=60)
                assert await consumer.poll(timeout_ms=500) == []
                for p in range(2):
                    assert by_partition(got)[p] == list(enumerate(sent[p])), "no gap or duplicate"
                    assert await consumer.position(tps[p]) == 60
            finally:  # the next tests need every broker
                broker_cluster.start(victim)
                await wait_unfenced(broker_cluster, [victim])

    async def full_isr(topic: str) -> bool | None:
        async with broker_stub(broker_cluster.bootstrap_servers[0]) as stub:
            meta = await stub.Metadata(bpb.MetadataRequest(topics=[topic]), timeout=5)
        parts = meta.topics[0].partitions
        return True if all(len(p.isr) == len(p.replicas) for p in parts) else None

    asyncio.run(main())


def test_blocking_and_asyncio_apis_return_the_same_records(broker_cluster: LocalCluster) -> None:
    leaders = asyncio.run(new_topic(broker_cluster, "c-same", partitions=3))

    async def fill_and_read() -> list[ConsumerRecord]:
        for p, leader in leaders.items():
            for b in range(2):
                await produce_values(
                    broker_cluster, leader, "c-same", p, [f"{p}-{b}-{i}".encode() for i in range(6)]
                )
        async with consumer_for(broker_cluster, auto_offset_reset="earliest") as consumer:
            consumer.assign([TopicPartition("c-same", p) for p in range(3)])
            return await poll_n(consumer, 36)

    expected = asyncio.run(fill_and_read())
    with Consumer(
        bootstrap_servers=broker_cluster.bootstrap_servers, auto_offset_reset="earliest", **FAST
    ) as consumer:
        consumer.assign([TopicPartition("c-same", p) for p in range(3)])
        got: list[ConsumerRecord] = []
        deadline = time.monotonic() + 30
        while len(got) < len(expected) and time.monotonic() < deadline:
            got += consumer.poll(timeout_ms=500)
    key = lambda r: (r.partition, r.offset)  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)


def raftka(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftka.client.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_raftka_consume_prints_json_lines(broker_cluster: LocalCluster, tmp_path: Path) -> None:
    leaders = asyncio.run(new_topic(broker_cluster, "c-cli", partitions=2))
    values = [b"text", b"\xff\xfe binary", b"more"]
    for p, leader in leaders.items():
        asyncio.run(produce_values(broker_cluster, leader, "c-cli", p, values))
    servers = ",".join(broker_cluster.bootstrap_servers)
    result = raftka(
        "consume",
        "c-cli",
        "--bootstrap-server",
        servers,
        "--from-beginning",
        "--max-messages",
        "5",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    parsed = [json.loads(line) for line in lines]
    assert {(o["topic"], o["partition"]) for o in parsed} <= {("c-cli", 0), ("c-cli", 1)}
    for o in parsed:
        assert set(o) == {"topic", "partition", "offset", "timestamp", "key", "value", "headers"}
        assert o["key"] == f"k{o['offset']}"
        assert o["headers"] == [{"key": "h", "value": "1"}]
        expected = values[o["offset"]]
        if o["offset"] == 1:
            assert o["value"] == {"base64": base64.b64encode(expected).decode()}
        else:
            assert o["value"] == expected.decode()
    assert "processed 5 messages" in result.stderr
    # one partition, from an offset, kv format, exit when idle
    kv = raftka(
        "consume",
        "c-cli",
        "--bootstrap-server",
        servers,
        "--partition",
        "1",
        "--offset",
        "2",
        "--format",
        "kv",
        "--key-separator",
        "=",
        "--timeout-ms",
        "1500",
        cwd=tmp_path,
    )
    assert kv.returncode == 0, kv.stderr
    assert kv.stdout == "k2=more\n"
    perf = raftka(
        "perf",
        "consume",
        "--topic",
        "c-cli",
        "--messages",
        "6",
        "--bootstrap-server",
        servers,
        cwd=tmp_path,
    )
    assert perf.returncode == 0, perf.stderr
    assert (
        "records:      6" in perf.stdout and "records/s:" in perf.stdout and "MB/s:" in perf.stdout
    )
    assert "fetch latency: p50" in perf.stdout and "p99" in perf.stdout
    bad = raftka(
        "consume", "c-cli", "--bootstrap-server", servers, "--partition", "7", cwd=tmp_path
    )
    assert bad.returncode == 1 and "has partitions 0..1; there is no partition 7" in bad.stderr


def test_raftka_consume_without_a_reachable_broker_says_what_to_do(tmp_path: Path) -> None:
    none = raftka("consume", "t", cwd=tmp_path)
    assert none.returncode == 1
    assert "--bootstrap-server" in none.stderr and "raftka up" in none.stderr
    unreachable = raftka(
        "consume",
        "t",
        "--bootstrap-server",
        "127.0.0.1:1",
        "--consumer-property",
        "request.timeout.ms=1000",
        cwd=tmp_path,
    )
    assert unreachable.returncode == 1
    assert "cannot reach any bootstrap server or broker: 127.0.0.1:1" in unreachable.stderr
    assert "raftka up" in unreachable.stderr


def test_consumer_api_without_a_reachable_broker_fails_clearly() -> None:
    async def main() -> None:
        async with AsyncConsumer(
            bootstrap_servers="127.0.0.1:1", request_timeout_ms=1000
        ) as consumer:
            tp = TopicPartition("t", 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            with pytest.raises(
                RequestTimedOutError, match="cannot reach any bootstrap server"
            ) as err:
                for _ in range(20):
                    await consumer.poll(timeout_ms=500)
            assert "raftka up" in str(err.value)

    asyncio.run(main())
