"""Idempotent producers against real processes: InitProducerId across brokers and controller
failover, retries written once with their original offsets, and the producer state surviving
broker restarts (kill -9 and clean) and leader changes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from raftka.broker.producers.snapshots import snapshot_offsets
from raftka.common.data_dir import PARTITION_LOGS_DIR
from raftka.common.records.builder import build_batch
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from tests.conditions import eventually
from tests.integration.support.broker_rpc import broker_stub, fetch, produce
from tests.integration.support.brokers import (
    log_events,
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
    wait_unfenced,
)
from tests.integration.support.quorum import client_for, leader_of

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


@pytest.fixture
def icluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three controllers and brokers 4, 5, 6, for one test (they kill nodes)."""
    cluster = start_broker_cluster(tmp_path / "c")
    try:
        yield cluster
    finally:
        stop_broker_cluster(cluster)


def code(value: int) -> str:
    return cpb.ErrorCode.Name(value)  # type: ignore[arg-type]


def idempotent_batch(
    producer_id: int, sequence: int, records: int = 1, *, epoch: int = 0, tag: str = "v"
) -> bytes:
    """A batch of ``records`` records whose values name their sequence numbers."""
    return bytes(
        build_batch(
            [(T0 + i, None, f"{tag}{sequence + i}".encode(), ()) for i in range(records)],
            producer_id=producer_id,
            producer_epoch=epoch,
            base_sequence=sequence,
        )
    )


async def init_producer_id(address: str) -> bpb.InitProducerIdResponse:
    async with broker_stub(address) as stub:
        return await stub.InitProducerId(bpb.InitProducerIdRequest(), timeout=15)  # type: ignore[no-any-return]


async def create(
    cluster: LocalCluster, name: str, rf: int, configs: Mapping[str, str] | None = None
) -> int:
    """Creates ``name`` with one partition; returns its leader once every broker agrees."""
    async with client_for(cluster) as client:
        (result,) = await client.create_topics(
            [
                pb.NewTopic(
                    name=name, num_partitions=1, replication_factor=rf, configs=dict(configs or {})
                )
            ]
        )
    assert result.error_code == cpb.NONE, result.error_message
    return (await wait_partition_leaders(cluster, name, 1))[0]


async def stored_values(address: str, topic: str, expected: int) -> list[bytes]:
    """Every record value up to the high watermark, once it holds ``expected`` records."""

    async def probe() -> list[bytes] | None:
        values: list[bytes] = []
        offset = 0
        while True:
            result = await fetch(address, topic, 0, offset, decode_records=True)
            if result.error_code != cpb.NONE or not result.records:
                break
            values += [r.value for r in result.records]
            offset = result.records[-1].offset + 1
        return values if len(values) >= expected else None

    return await eventually(probe, what=f"{expected} records in {topic}")


def blocks_of(cluster: LocalCluster, broker: int) -> list[range]:
    return [
        range(
            int(str(e["first_producer_id"])),
            int(str(e["first_producer_id"])) + int(str(e["count"])),
        )
        for e in log_events(cluster, broker, "producer_ids_allocated")
    ]


def producer_state_loads(
    cluster: LocalCluster, broker: int, directory: str
) -> list[dict[str, object]]:
    return [
        e
        for e in log_events(cluster, broker, "producer_state_loaded")
        if str(e.get("directory", "")).endswith(f"/{directory}") and e.get("reason") == "open"
    ]


# ====================================================================== InitProducerId


def test_producer_ids_are_distinct_across_brokers_and_after_a_controller_failover(
    icluster: LocalCluster,
) -> None:
    cluster = icluster

    async def main() -> None:
        handed: dict[int, list[int]] = {}
        for broker, node in cluster.brokers.items():
            async with broker_stub(node.address) as stub:
                responses = await asyncio.gather(
                    *(
                        stub.InitProducerId(bpb.InitProducerIdRequest(), timeout=15)
                        for _ in range(3)
                    )
                )
            assert [r.producer_epoch for r in responses] == [0, 0, 0]
            handed[broker] = [r.producer_id for r in responses]
        every = [pid for ids in handed.values() for pid in ids]
        assert len(set(every)) == 9 and min(every) >= 0
        first_blocks = {b: blocks_of(cluster, b) for b in cluster.brokers}
        for broker, blocks in first_blocks.items():
            assert len(blocks) == 1, blocks  # three concurrent calls, one block
            assert all(pid in blocks[0] for pid in handed[broker])
        ranges = [blocks[0] for blocks in first_blocks.values()]
        for i, a in enumerate(ranges):
            for b in ranges[i + 1 :]:
                assert not set(a) & set(b), (a, b)

        old = await leader_of(cluster)
        cluster.kill(old)
        await leader_of(cluster, exclude=old)

        # broker 4 uses up its block: the next one comes from the new active controller
        victim = min(cluster.brokers)
        (block,) = first_blocks[victim]
        wanted = len(block) - len(handed[victim]) + 5
        after: list[int] = []
        async with broker_stub(cluster.brokers[victim].address) as stub:
            while len(after) < wanted:
                wave = min(100, wanted - len(after))
                responses = await asyncio.gather(
                    *(
                        stub.InitProducerId(bpb.InitProducerIdRequest(), timeout=15)
                        for _ in range(wave)
                    )
                )
                after += [r.producer_id for r in responses]
        for broker in cluster.brokers:
            if broker != victim:
                after.append((await init_producer_id(cluster.brokers[broker].address)).producer_id)
        assert len(set(every + after)) == len(every) + len(after)  # never handed out twice
        blocks = blocks_of(cluster, victim)
        assert len(blocks) == 2 and blocks[0] == block
        assert blocks[1].start >= max(r.stop for r in ranges)  # past every earlier block
        assert sum(pid in blocks[1] for pid in after) == 5
        assert all(pid in block or pid in blocks[1] for pid in after[:wanted])

    asyncio.run(main())


# ====================================================================== produce


def test_producer_state_survives_broker_restarts(icluster: LocalCluster) -> None:
    cluster = icluster
    topic = "idem-restart"

    async def main() -> None:
        # one replica, small segments: the state comes back from snapshots and the log
        leader = await create(cluster, topic, rf=1, configs={"segment.bytes": "200"})
        address = cluster.brokers[leader].address
        partition_dir = cluster.brokers[leader].data_dir / PARTITION_LOGS_DIR / f"{topic}-0"
        pid = (await init_producer_id(address)).producer_id
        batches = [idempotent_batch(pid, i) for i in range(8)]
        for i, batch in enumerate(batches[:7]):
            r = await produce(address, topic, 0, batches=batch)
            assert (code(r.error_code), r.base_offset) == ("NONE", i)
        assert snapshot_offsets(partition_dir), "no segment rolled"

        async def restarted(how: str) -> dict[str, object]:
            loads = len(producer_state_loads(cluster, leader, f"{topic}-0"))
            if how == "kill":
                cluster.kill(leader)
            else:
                assert await asyncio.to_thread(cluster.stop, leader, 20.0) == 0
            cluster.start(leader)
            await wait_unfenced(cluster, [leader], timeout_s=30)
            assert await wait_partition_leaders(cluster, topic, 1) == {0: leader}
            (loaded,) = producer_state_loads(cluster, leader, f"{topic}-0")[loads:]
            return loaded

        loaded = await restarted("kill")
        assert loaded["producers"] == 1
        assert 0 < int(str(loaded["replayed_batches"])) < 7  # from a roll's snapshot on
        for i in range(2, 7):  # each of the last five batches, retried
            r = await produce(address, topic, 0, batches=batches[i])
            assert (code(r.error_code), r.base_offset) == ("NONE", i)
        stale = await produce(address, topic, 0, batches=batches[1])  # the sixth oldest
        assert code(stale.error_code) == "OUT_OF_ORDER_SEQUENCE_NUMBER"
        r = await produce(address, topic, 0, batches=batches[7])
        assert (code(r.error_code), r.base_offset) == ("NONE", 7)

        loaded = await restarted("clean")
        assert snapshot_offsets(partition_dir)[-1] == 8  # written at shutdown, at the log end
        assert (loaded["snapshot_offset"], loaded["replayed_batches"]) == (8, 0)
        r = await produce(address, topic, 0, batches=batches[7])
        assert (code(r.error_code), r.base_offset) == ("NONE", 7)
        r = await produce(address, topic, 0, batches=idempotent_batch(pid, 8))
        assert (code(r.error_code), r.base_offset) == ("NONE", 8)
        values = await stored_values(address, topic, 9)
        assert values == [f"v{i}".encode() for i in range(9)]

    asyncio.run(main())


def test_the_new_leader_deduplicates_a_retry_acknowledged_by_the_old_one(
    icluster: LocalCluster,
) -> None:
    cluster = icluster
    topic = "idem-failover"

    async def main() -> None:
        old = await create(cluster, topic, rf=3, configs={"min.insync.replicas": "2"})
        pid = (await init_producer_id(cluster.brokers[old].address)).producer_id
        batches = [idempotent_batch(pid, 2 * i, 2) for i in range(4)]
        for i, batch in enumerate(batches[:3]):  # acks=all: every in-sync replica has them
            r = await produce(cluster.brokers[old].address, topic, 0, batches=batch, acks=-1)
            assert (code(r.error_code), r.base_offset) == ("NONE", 2 * i)

        cluster.kill(old)
        survivors = [b for b in cluster.brokers if b != old]

        # a survivor serves the partition once the controller has fenced the old leader
        new = (await wait_partition_leaders(cluster, topic, 1, brokers=survivors))[0]
        assert new != old
        address = cluster.brokers[new].address
        # the producer never saw the acknowledgement of its last batch, and retries it
        r = await produce(address, topic, 0, batches=batches[2], acks=-1)
        assert (code(r.error_code), r.base_offset) == ("NONE", 4)
        r = await produce(address, topic, 0, batches=batches[0], acks=-1)
        assert (code(r.error_code), r.base_offset) == ("NONE", 0)
        r = await produce(address, topic, 0, batches=batches[3], acks=-1)
        assert (code(r.error_code), r.base_offset) == ("NONE", 6)
        values = await stored_values(address, topic, 8)
        assert values == [f"v{i}".encode() for i in range(8)]

    asyncio.run(main())


# ===================================================== on the module's shared cluster
# These come last: the shared cluster starts with the first of them, so it never runs beside
# the per-test clusters above (two clusters at once on two cores made elections thrash).


def test_a_retried_batch_is_stored_once_with_its_original_offset(
    broker_cluster: LocalCluster,
) -> None:
    cluster = broker_cluster

    async def main() -> None:
        leader = await create(cluster, "idem-retry", rf=3)
        address = cluster.brokers[leader].address
        pid = (await init_producer_id(address)).producer_id
        first = idempotent_batch(pid, 0, 3)
        r = await produce(address, "idem-retry", 0, batches=first)
        assert (code(r.error_code), r.base_offset) == ("NONE", 0)
        again = await produce(address, "idem-retry", 0, batches=first)  # the same bytes
        assert (code(again.error_code), again.base_offset) == ("NONE", 0)
        r = await produce(address, "idem-retry", 0, batches=idempotent_batch(pid, 3, 2))
        assert (code(r.error_code), r.base_offset) == ("NONE", 3)
        again = await produce(address, "idem-retry", 0, batches=first)  # still one of the last 5
        assert (code(again.error_code), again.base_offset) == ("NONE", 0)

        # refused, and nothing written: a gap, an unknown producer, an older epoch
        gap = await produce(address, "idem-retry", 0, batches=idempotent_batch(pid, 6))
        assert code(gap.error_code) == "OUT_OF_ORDER_SEQUENCE_NUMBER"
        assert "next sequence on this partition is 5" in gap.error_message
        other = (await init_producer_id(address)).producer_id
        unknown = await produce(address, "idem-retry", 0, batches=idempotent_batch(other, 4))
        assert code(unknown.error_code) == "OUT_OF_ORDER_SEQUENCE_NUMBER"
        assert "unknown to this partition" in unknown.error_message
        bumped = await produce(address, "idem-retry", 0, batches=idempotent_batch(pid, 0, epoch=1))
        assert (code(bumped.error_code), bumped.base_offset) == ("NONE", 5)
        fenced = await produce(address, "idem-retry", 0, batches=idempotent_batch(pid, 5))
        assert code(fenced.error_code) == "INVALID_PRODUCER_EPOCH"

        values = await stored_values(address, "idem-retry", 6)
        assert values == [b"v0", b"v1", b"v2", b"v3", b"v4", b"v0"]

    asyncio.run(main())


def test_plain_records_with_a_producer_id_are_retry_safe(broker_cluster: LocalCluster) -> None:
    """A client that does not build batches sends plain records with the producer id, epoch
    and base sequence: a resend after a lost answer is stored once."""
    cluster = broker_cluster

    def values(*names: str) -> list[bpb.Record]:
        return [bpb.Record(value=n.encode()) for n in names]

    async def main() -> None:
        leader = await create(cluster, "idem-plain", rf=3)
        address = cluster.brokers[leader].address
        init = await init_producer_id(address)
        pid, epoch = init.producer_id, init.producer_epoch
        first = await produce(
            address, "idem-plain", 0, records=values("a", "b"), idempotence=(pid, epoch, 0)
        )
        assert (code(first.error_code), first.base_offset) == ("NONE", 0)
        resent = await produce(
            address, "idem-plain", 0, records=values("a", "b"), idempotence=(pid, epoch, 0)
        )
        assert (code(resent.error_code), resent.base_offset) == ("NONE", 0)
        nxt = await produce(
            address, "idem-plain", 0, records=values("c"), idempotence=(pid, epoch, 2)
        )
        assert (code(nxt.error_code), nxt.base_offset) == ("NONE", 2)
        gap = await produce(
            address, "idem-plain", 0, records=values("x"), idempotence=(pid, epoch, 9)
        )
        assert code(gap.error_code) == "OUT_OF_ORDER_SEQUENCE_NUMBER" and gap.base_offset == -1
        # Without a producer id the same resend is stored twice: that form is not retry-safe.
        for _ in range(2):
            plain = await produce(address, "idem-plain", 0, records=values("d"))
            assert code(plain.error_code) == "NONE"
        assert await stored_values(address, "idem-plain", 5) == [b"a", b"b", b"c", b"d", b"d"]
        bad = await produce(
            address, "idem-plain", 0, records=values("y"), idempotence=(pid, 40_000, 3)
        )
        assert code(bad.error_code) == "INVALID_REQUEST" and "producer_epoch" in bad.error_message

    asyncio.run(main())
