"""Transactions on the partition side, against real processes: transactional batches hold the
last stable offset (LSO) at the first open transaction, read_committed fetches and ListOffsets
stop there while read_uncommitted reads past it; COMMIT / ABORT markers (WriteTxnMarkers to
the leader) end the transaction, an aborted one is filtered for read_committed readers, a late
write of a finished transaction is refused; an open transaction survives a leader's kill -9.

The markers are sent through TransactionService.WriteTxnMarkers: where the broker does not
serve TransactionService (UNIMPLEMENTED), the tests that need markers are skipped and say so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
import pytest

from raftka.common.records.builder import build_batch
from raftka.common.records.decoder import iter_records
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.transactions_pb2_grpc import TransactionServiceStub
from tests.conditions import eventually
from tests.integration.support.broker_rpc import (
    LATEST,
    broker_stub,
    fetch,
    list_offset,
    produce,
)
from tests.integration.support.brokers import wait_partition_leaders, wait_unfenced
from tests.integration.support.quorum import client_for

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
READ_UNCOMMITTED, READ_COMMITTED = 0, 1


def code(value: int) -> str:
    return cpb.ErrorCode.Name(value)  # type: ignore[arg-type]


async def create(cluster: LocalCluster, name: str) -> int:
    """``name`` with one partition on all three brokers (min ISR 2); returns its leader."""
    async with client_for(cluster) as client:
        (result,) = await client.create_topics(
            [
                pb.NewTopic(
                    name=name,
                    num_partitions=1,
                    replication_factor=3,
                    configs={"min.insync.replicas": "2"},
                )
            ]
        )
    assert result.error_code in (cpb.NONE, cpb.TOPIC_ALREADY_EXISTS), result.error_message
    return (await wait_partition_leaders(cluster, name, 1))[0]


async def producer_id(address: str) -> int:
    async with broker_stub(address) as stub:
        response = await stub.InitProducerId(bpb.InitProducerIdRequest(), timeout=15)
    return int(response.producer_id)


def plain(*values: bytes) -> bytes:
    return bytes(build_batch([(T0, None, v, ()) for v in values]))


def transactional(pid: int, epoch: int, sequence: int, *values: bytes) -> bytes:
    return bytes(
        build_batch(
            [(T0, None, v, ()) for v in values],
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=sequence,
            transactional=True,
        )
    )


async def append(address: str, topic: str, batch: bytes) -> int:
    """acks=all; returns the base offset."""
    result = await produce(address, topic, 0, batches=batch)
    assert code(result.error_code) == "NONE", result.error_message
    return int(result.base_offset)


async def write_marker(
    address: str, topic: str, pid: int, epoch: int, *, committed: bool, coordinator_epoch: int = 0
) -> tpb.TxnPartitionResult:
    request = tpb.WriteTxnMarkersRequest(
        markers=[
            tpb.TxnMarker(
                producer_id=pid,
                producer_epoch=epoch,
                committed=committed,
                coordinator_epoch=coordinator_epoch,
                topics=[tpb.TxnTopicPartitions(topic=topic, partitions=[0])],
            )
        ]
    )
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            response = await TransactionServiceStub(channel).WriteTxnMarkers(request, timeout=15)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                pytest.skip("this broker does not serve TransactionService.WriteTxnMarkers yet")
            raise
    ((result,),) = [m.partitions for m in response.markers]
    return result


async def read(
    address: str, topic: str, offset: int, isolation_level: int, *, decode: bool = False
) -> bpb.FetchPartitionResult:
    result = await fetch(
        address, topic, 0, offset, isolation_level=isolation_level, decode_records=decode
    )
    assert code(result.error_code) == "NONE", result.error_message
    return result


def batch_offsets(result: bpb.FetchPartitionResult) -> list[int]:
    return [r.offset for r in iter_records(result.batches)]


def values(result: bpb.FetchPartitionResult) -> list[bytes]:
    return [r.value for r in result.records]


async def latest(address: str, topic: str, isolation_level: int) -> int:
    result = await list_offset(address, topic, 0, LATEST, isolation_level=isolation_level)
    assert code(result.error_code) == "NONE", result.error_message
    return int(result.offset)


async def stable_view(address: str, topic: str, hw: int, lso: int) -> bool | None:
    """Whether the broker's read_committed view is settled at (high watermark, LSO)."""
    result = await fetch(address, topic, 0, 0, isolation_level=READ_COMMITTED)
    if result.error_code != cpb.NONE:
        return None
    return True if (result.high_watermark, result.last_stable_offset) == (hw, lso) else None


def test_an_open_transaction_holds_the_lso_until_its_commit(broker_cluster: LocalCluster) -> None:
    cluster, topic = broker_cluster, "txn-commit"

    async def main() -> None:
        leader = await create(cluster, topic)
        address = cluster.brokers[leader].address
        pid = await producer_id(address)
        assert await append(address, topic, plain(b"before")) == 0
        assert await append(address, topic, transactional(pid, 0, 0, b"t0", b"t1")) == 1
        assert await append(address, topic, plain(b"after")) == 3

        committed = await read(address, topic, 0, READ_COMMITTED)
        assert (committed.high_watermark, committed.last_stable_offset) == (4, 1)
        assert batch_offsets(committed) == [0]
        assert not committed.aborted_transactions
        assert (await read(address, topic, 1, READ_COMMITTED)).batches == b""
        uncommitted = await read(address, topic, 0, READ_UNCOMMITTED)
        assert batch_offsets(uncommitted) == [0, 1, 2, 3]
        assert uncommitted.last_stable_offset == 1  # the real LSO at both levels
        assert await latest(address, topic, READ_COMMITTED) == 1
        assert await latest(address, topic, READ_UNCOMMITTED) == 4

        marked = await write_marker(address, topic, pid, 1, committed=True)
        assert code(marked.error_code) == "NONE", marked.error_message
        # The marker (offset 4) is replicated before the answer: LSO = high watermark = 5.
        assert await latest(address, topic, READ_COMMITTED) == 5
        decoded = await read(address, topic, 0, READ_COMMITTED, decode=True)
        assert values(decoded) == [b"before", b"t0", b"t1", b"after"]  # no control record
        assert [r.offset for r in decoded.records] == [0, 1, 2, 3]

        # A late write of the finished transaction (its old epoch) is refused: no transaction
        # is left hanging, the LSO does not move back.
        late = await produce(address, topic, 0, batches=transactional(pid, 0, 2, b"late"))
        assert code(late.error_code) == "INVALID_PRODUCER_EPOCH", late.error_message
        # The same marker again (a retrying coordinator) is answered NONE.
        again = await write_marker(address, topic, pid, 1, committed=True)
        assert code(again.error_code) == "NONE", again.error_message
        assert await latest(address, topic, READ_COMMITTED) == await latest(
            address, topic, READ_UNCOMMITTED
        )

    asyncio.run(main())


def test_an_aborted_transaction_is_hidden_from_read_committed(
    broker_cluster: LocalCluster,
) -> None:
    cluster, topic = broker_cluster, "txn-abort"

    async def main() -> None:
        leader = await create(cluster, topic)
        address = cluster.brokers[leader].address
        pid = await producer_id(address)
        assert await append(address, topic, transactional(pid, 0, 0, b"x", b"y")) == 0
        assert await append(address, topic, plain(b"kept")) == 2
        assert await latest(address, topic, READ_COMMITTED) == 0
        marked = await write_marker(address, topic, pid, 1, committed=False)
        assert code(marked.error_code) == "NONE", marked.error_message  # offset 3
        assert await append(address, topic, plain(b"later")) == 4

        # Batches: everything below the LSO, with the aborted transaction named.
        raw = await read(address, topic, 0, READ_COMMITTED)
        assert raw.last_stable_offset == raw.high_watermark == 5
        assert batch_offsets(raw) == [0, 1, 2, 3, 4]
        assert [(a.producer_id, a.first_offset) for a in raw.aborted_transactions] == [(pid, 0)]
        # Decoded: the broker drops the aborted records and the marker itself.
        decoded = await read(address, topic, 0, READ_COMMITTED, decode=True)
        assert values(decoded) == [b"kept", b"later"]
        assert not decoded.aborted_transactions
        everything = await read(address, topic, 0, READ_UNCOMMITTED, decode=True)
        assert values(everything) == [b"x", b"y", b"kept", b"later"]
        assert not (await read(address, topic, 0, READ_UNCOMMITTED)).aborted_transactions

        # The plain-records form opens the producer's next transaction (epoch 1).
        request = bpb.ProduceRequest(
            acks=-1,
            timeout_ms=5000,
            topics=[
                bpb.TopicProduceData(
                    topic=topic,
                    partitions=[
                        bpb.PartitionProduceData(
                            partition=0,
                            records=[bpb.Record(value=b"next")],
                            producer_id=pid,
                            producer_epoch=1,
                            base_sequence=0,
                            transactional=True,
                        )
                    ],
                )
            ],
        )
        async with broker_stub(address) as stub:
            (result,) = (await stub.Produce(request, timeout=10)).results
        assert (code(result.error_code), result.base_offset) == ("NONE", 5)
        assert await latest(address, topic, READ_COMMITTED) == 5
        assert await latest(address, topic, READ_UNCOMMITTED) == 6

    asyncio.run(main())


def test_an_open_transaction_survives_a_leader_kill(broker_cluster: LocalCluster) -> None:
    cluster, topic = broker_cluster, "txn-failover"

    async def main() -> None:
        old = await create(cluster, topic)
        pid = await producer_id(cluster.brokers[old].address)
        address = cluster.brokers[old].address
        assert await append(address, topic, plain(b"a")) == 0
        assert await append(address, topic, transactional(pid, 0, 0, b"t")) == 1
        assert await append(address, topic, plain(b"b")) == 2
        assert await latest(address, topic, READ_COMMITTED) == 1

        cluster.kill(old)
        try:
            others: Sequence[int] = [b for b in cluster.brokers if b != old]
            new = (await wait_partition_leaders(cluster, topic, 1, brokers=others))[0]
            assert new != old
            new_address = cluster.brokers[new].address
            # The new leader rebuilt the open transaction from its log: same LSO.
            await eventually(
                lambda: stable_view(new_address, topic, hw=3, lso=1),
                what="the new leader's high watermark 3 and LSO 1",
            )
            assert batch_offsets(await read(new_address, topic, 0, READ_COMMITTED)) == [0]
            assert await latest(new_address, topic, READ_COMMITTED) == 1
            marked = await write_marker(new_address, topic, pid, 1, committed=True)
            assert code(marked.error_code) == "NONE", marked.error_message
            decoded = await read(new_address, topic, 0, READ_COMMITTED, decode=True)
            assert values(decoded) == [b"a", b"t", b"b"]
        finally:
            cluster.start(old)
            await wait_unfenced(cluster, [old], timeout_s=30)

    asyncio.run(main())
