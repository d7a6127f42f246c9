"""The Python producer against real brokers: compression round trips, key partitioning, per-key
order across a leader failover, no duplicates when answers are lost, back-pressure, and the
blocking API matching the asyncio one."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from raftka.client.producer import AsyncProducer, Producer, RecordDelivery
from raftka.client.producer.buffer_pool import BufferExhaustedError
from raftka.client.producer.partitioner import partition_for_key
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import common_pb2 as cpb
from tests.conditions import until
from tests.integration.support.broker_rpc import fetch
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
    wait_unfenced,
)
from tests.integration.support.quorum import client_for, create_topic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three controllers, three brokers; every test uses its own topics and leaves every node
    running (a test that kills a broker restarts it)."""
    c = start_broker_cluster(tmp_path_factory.mktemp("producer"))
    try:
        yield c
    finally:
        stop_broker_cluster(c)


async def new_topic(
    cluster: LocalCluster, name: str, partitions: int = 3, rf: int = 3
) -> dict[int, int]:
    async with client_for(cluster) as client:
        await create_topic(client, name, partitions=partitions, rf=rf)
    return await wait_partition_leaders(cluster, name, partitions)


async def read_all(
    cluster: LocalCluster, topic: str, partition: int
) -> list[tuple[int, bytes, bytes]]:
    """(offset, key, value) of every committed record, from the partition's current leader."""
    async with client_for(cluster) as admin:
        (described,) = await admin.describe_topics([topic])
    leaders = await wait_partition_leaders(cluster, topic, len(described.partitions))
    address = cluster.brokers[leaders[partition]].address
    out: list[tuple[int, bytes, bytes]] = []
    offset = 0
    while True:
        r = await fetch(
            address, topic, partition, offset, decode_records=True, partition_max_bytes=1 << 20
        )
        assert r.error_code == cpb.NONE, cpb.ErrorCode.Name(r.error_code)
        if not r.records:
            return out
        out += [(rec.offset, rec.key, rec.value) for rec in r.records]
        offset = r.records[-1].offset + 1


def bootstrap(cluster: LocalCluster) -> list[str]:
    return cluster.bootstrap_servers


@pytest.mark.parametrize("compression", ["none", "gzip", "lz4", "zstd"])
def test_round_trip_with_each_compression(pcluster: LocalCluster, compression: str) -> None:
    topic = f"rt-{compression}"

    async def main() -> None:
        await new_topic(pcluster, topic)
        async with AsyncProducer(
            bootstrap_servers=bootstrap(pcluster), compression_type=compression, linger_ms=20
        ) as p:
            futures = [
                await p.send(topic, b"value-%d" % i * 20, key=b"key-%d" % (i % 17))
                for i in range(300)
            ]
            results = await asyncio.gather(*futures)
        by_partition: dict[int, list[tuple[int, bytes, bytes]]] = {}
        for part in range(3):
            by_partition[part] = await read_all(pcluster, topic, part)
        for i, md in enumerate(results):
            key = b"key-%d" % (i % 17)
            assert md.partition == partition_for_key(key, 3), "Kafka's murmur2 partitioning"
            assert by_partition[md.partition][md.offset] == (md.offset, key, b"value-%d" % i * 20)
        assert sum(len(v) for v in by_partition.values()) == 300

    asyncio.run(main())


def test_per_key_order_survives_a_leader_failover(pcluster: LocalCluster) -> None:
    topic = "order"

    async def main() -> None:
        leaders = await new_topic(pcluster, topic)
        acked: dict[bytes, list[int]] = {}
        stop = asyncio.Event()
        async with AsyncProducer(
            bootstrap_servers=bootstrap(pcluster),
            linger_ms=2,
            request_timeout_ms=5000,
            delivery_timeout_ms=60_000,
        ) as p:

            async def writer(key: bytes) -> None:
                seq = 0
                pending: list[tuple[int, RecordDelivery]] = []
                while not stop.is_set():
                    pending.append((seq, await p.send(topic, b"%d" % seq, key=key)))
                    seq += 1
                    if len(pending) >= 20:
                        for s, f in pending:
                            await f
                            acked.setdefault(key, []).append(s)
                        pending.clear()
                for s, f in pending:
                    await f
                    acked.setdefault(key, []).append(s)

            keys = [b"k%d" % i for i in range(6)]
            tasks = [asyncio.create_task(writer(k)) for k in keys]
            await until(lambda: sum(map(len, acked.values())) >= 300)
            victim = leaders[0]
            pcluster.kill(victim)
            before = sum(map(len, acked.values()))
            survivors = [b for b in pcluster.brokers if b != victim]
            moved = await wait_partition_leaders(
                pcluster, topic, 3, brokers=survivors, timeout_s=30
            )
            assert victim not in moved.values()
            await until(lambda: sum(map(len, acked.values())) >= before + 300, timeout_s=60)
            stop.set()
            await asyncio.gather(*tasks)
        pcluster.start(victim)
        await wait_unfenced(pcluster, [victim])  # later tests need all three brokers
        for part in range(3):
            records = await read_all(pcluster, topic, part)
            per_key: dict[bytes, list[int]] = {}
            for _o, key, value in records:
                per_key.setdefault(key, []).append(int(value))
            for key, seqs in per_key.items():
                assert seqs == sorted(seqs), f"{key!r} out of order on partition {part}"
                assert len(seqs) == len(set(seqs)), f"{key!r} duplicated on partition {part}"
                assert set(acked.get(key, [])) <= set(seqs), f"acknowledged {key!r} records lost"

    asyncio.run(main())


async def requests_in_flight(producer: AsyncProducer, count: int) -> None:
    """Until ``count`` produce requests of ``producer`` wait for an answer."""
    await until(
        lambda: producer.requests_in_flight >= count,
        timeout_s=10,
        what=f"{count} produce requests in flight",
    )


def test_batches_held_by_a_frozen_leader_move_to_the_new_one(pcluster: LocalCluster) -> None:
    """SIGSTOP the leader while requests are in flight to it: once metadata shows the new
    leader, the idempotent producer moves those batches there (same sequences), so they are
    acknowledged soon after the new leader serves, not after request_timeout_ms; and each
    record is in the log once, in order, after the old leader comes back."""
    topic = "frozen-leader"
    timeout_s = 60.0  # far above the cluster's failover, however loaded the machine is

    async def main() -> None:
        leaders = await new_topic(pcluster, topic, partitions=1)
        victim = leaders[0]
        survivors = [b for b in pcluster.brokers if b != victim]
        clock = asyncio.get_running_loop().time
        async with AsyncProducer(
            bootstrap_servers=bootstrap(pcluster),
            request_timeout_ms=int(timeout_s * 1000),
            delivery_timeout_ms=int(timeout_s * 2000),
        ) as p:
            await (await p.send(topic, b"before", partition=0))  # producer id, connections
            pcluster.pause(victim)
            paused_at = clock()
            try:
                deliveries = []
                most = p.config.max_in_flight_requests_per_connection
                for i in range(200):
                    deliveries.append(await p.send(topic, b"v%03d" % i, partition=0))
                    if i % 20 == 19:  # each 20 records their own request to the frozen one
                        await requests_in_flight(p, min(i // 20 + 1, most))
                assert not any(d.done() for d in deliveries), "the frozen leader answers nothing"
                await wait_partition_leaders(pcluster, topic, 1, brokers=survivors, timeout_s=60)
                moved_at = clock()
                offsets = [m.offset for m in await asyncio.gather(*deliveries)]
                acked_at = clock()
            finally:
                pcluster.resume(victim)
        assert acked_at - moved_at < 10, (
            f"acknowledged {acked_at - moved_at:.1f} s after the new leader served "
            f"({moved_at - paused_at:.1f} s after the pause)"
        )
        assert acked_at - paused_at < timeout_s, "before the frozen request's timeout"
        assert offsets == list(range(offsets[0], offsets[0] + 200)), "in order, no gaps"
        await wait_unfenced(pcluster, [victim])  # later tests need all three brokers
        values = [v for _o, _k, v in await read_all(pcluster, topic, 0)]
        assert values == [b"before"] + [b"v%03d" % i for i in range(200)], (
            "every acknowledged record once, in order, none from the old leader twice"
        )

    asyncio.run(main())


class LossyStub:
    """Forwards Produce to the real stub, then loses some answers (the write happened; the
    producer sees a dropped connection), as a flaky network would."""

    def __init__(self, real: Any, rng: random.Random, loss: float) -> None:
        self._real = real
        self._rng = rng
        self._loss = loss
        self.lost = 0

    async def __call__(self, request: Any, **call: Any) -> Any:
        response = await self._real(request, **call)
        if self._rng.random() < self._loss:
            self.lost += 1
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                "lost (injected)",
            )
        return response


def test_lost_answers_and_retries_write_each_record_once(pcluster: LocalCluster) -> None:
    topic = "lossy"

    async def main() -> None:
        await new_topic(pcluster, topic, partitions=2)
        async with AsyncProducer(
            bootstrap_servers=bootstrap(pcluster), linger_ms=0, batch_size=256, retry_backoff_ms=5
        ) as p:
            real = p._connections.produce
            stubs: dict[str, LossyStub] = {}
            rng = random.Random(42)

            def lossy(address: str) -> Any:
                if address not in stubs:
                    stubs[address] = LossyStub(real(address), rng, loss=0.3)
                return stubs[address]

            p._sender._produce_for = lossy
            futures = [await p.send(topic, b"m%04d" % i, key=b"%d" % (i % 2)) for i in range(400)]
            results = await asyncio.gather(*futures)
            assert sum(s.lost for s in stubs.values()) > 10, "answers were really lost"
        for part in range(2):
            values = [v for _o, _k, v in await read_all(pcluster, topic, part)]
            sent = [
                b"m%04d" % i for i in range(400) if (partition_for_key(b"%d" % (i % 2), 2)) == part
            ]
            assert values == sent, f"partition {part}: duplicates or reordering"
        assert len({(r.partition, r.offset) for r in results}) == 400

    asyncio.run(main())


def test_a_full_buffer_blocks_send_then_fails_clearly(pcluster: LocalCluster) -> None:
    topic = "pressure"

    async def main() -> None:
        leaders = await new_topic(pcluster, topic, partitions=1, rf=1)
        victim = leaders[0]
        pcluster.pause(victim)
        accepted: list[RecordDelivery] = []
        try:
            async with AsyncProducer(
                bootstrap_servers=bootstrap(pcluster),
                buffer_memory=64 * 1024,
                batch_size=16 * 1024,
                max_block_ms=300,
                request_timeout_ms=2000,
                delivery_timeout_ms=60_000,
            ) as p:
                with pytest.raises(BufferExhaustedError, match="buffer_memory"):
                    for i in range(1000):
                        accepted.append(await p.send(topic, bytes(1000), key=b"%d" % i))
                assert 40 <= len(accepted) <= 70, f"{len(accepted)} records fit in 64 KiB"
                pcluster.resume(victim)
                await p.flush()
            assert all(f.done() and not f.exception() for f in accepted)
        finally:
            pcluster.resume(victim)

    asyncio.run(main())


def test_blocking_and_asyncio_producers_agree(pcluster: LocalCluster) -> None:
    async def setup() -> None:
        await new_topic(pcluster, "sync-a")
        await new_topic(pcluster, "sync-b")

    asyncio.run(setup())
    keys = [b"user-%d" % i for i in range(50)]
    with Producer(bootstrap_servers=bootstrap(pcluster)) as p:
        sync_results = [f.result(30) for f in [p.send("sync-a", b"v", key=k) for k in keys]]

    async def run_async() -> list[tuple[int, int]]:
        async with AsyncProducer(bootstrap_servers=bootstrap(pcluster)) as p:
            futures = [await p.send("sync-b", b"v", key=k) for k in keys]
            return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]

    assert [(m.partition, m.offset) for m in sync_results] == asyncio.run(run_async())


def test_unknown_topic_and_unreachable_cluster_say_what_to_do(
    pcluster: LocalCluster, tmp_path: Path
) -> None:
    async def main() -> None:
        async with AsyncProducer(bootstrap_servers=bootstrap(pcluster), max_block_ms=500) as p:
            with pytest.raises(Exception, match="raftka topics create nope"):
                await p.send("nope", b"x")
        async with AsyncProducer(bootstrap_servers=["127.0.0.1:1"], max_block_ms=500) as p:
            with pytest.raises(Exception, match="Is the cluster running"):
                await p.send("t", b"x")

    asyncio.run(main())
