"""KIP-890 part 1 against real brokers, through raw gRPC: a partition leader verifies a
producer's first transactional write to a partition with the transaction coordinator. A write
to a partition the producer did not add to its transaction is refused (TRANSACTION_ABORTABLE),
writes nothing and leaves the last stable offset at the high watermark; once added, the same
write goes in. A fenced epoch is refused with INVALID_PRODUCER_EPOCH, a late write of an ended
transaction too, and transactional batches without a transactional id with INVALID_TXN_STATE.
Both the coordinator on the leader itself and on another broker are exercised."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import controller_pb2 as cpb
from raftka.v1.common_pb2 import ErrorCode
from tests.conditions import eventually
from tests.integration.support.broker_rpc import (
    LATEST,
    broker_stub,
    list_offset,
    produce_request,
)
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
)
from tests.integration.support.quorum import client_for
from tests.integration.test_transaction_coordinator import (
    TOPIC,
    TOPIC_PARTITIONS,
    add_partitions,
    end,
    find,
    init,
)

pytestmark = pytest.mark.integration

READ_UNCOMMITTED, READ_COMMITTED = 0, 1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("txn-verify"),
        broker_settings={"transaction_state_num_partitions": 3, "offsets_topic_num_partitions": 3},
    )
    try:
        asyncio.run(_create_topic(c))
        yield c
    finally:
        stop_broker_cluster(c)


async def _create_topic(cluster: LocalCluster) -> None:
    async with client_for(cluster, timeout_s=10.0) as client:
        (result,) = await client.create_topics(
            [
                cpb.NewTopic(
                    name=TOPIC,
                    num_partitions=TOPIC_PARTITIONS,
                    replication_factor=3,
                    configs={"min.insync.replicas": "2"},
                )
            ]
        )
        assert result.error_code == ErrorCode.NONE, result.error_message
    await wait_partition_leaders(cluster, TOPIC, TOPIC_PARTITIONS)


def name(code: int) -> str:
    return ErrorCode.Name(code)  # type: ignore[arg-type]


async def leader_address(cluster: LocalCluster, partition: int) -> str:
    leaders = await wait_partition_leaders(cluster, TOPIC, TOPIC_PARTITIONS)
    return cluster.brokers[leaders[partition]].address


async def write(
    cluster: LocalCluster,
    tid: str,
    partition: int,
    pid: int,
    epoch: int,
    sequence: int,
    value: bytes,
) -> bpb.PartitionProduceResult:
    """A transactional write (plain-records form), sent again while the leader answers
    NOT_ENOUGH_REPLICAS (the coordinator busy or not yet known to it), as a producer does."""
    request = produce_request(
        TOPIC, partition, records=[bpb.Record(value=value)], idempotence=(pid, epoch, sequence)
    )
    request.topics[0].partitions[0].transactional = True
    request.transactional_id = tid

    async def attempt() -> bpb.PartitionProduceResult | None:
        async with broker_stub(await leader_address(cluster, partition)) as stub:
            response = await stub.Produce(request, timeout=15)
        (result,) = response.results
        return None if result.error_code == ErrorCode.NOT_ENOUGH_REPLICAS else result

    return await eventually(attempt, timeout_s=15, what="an answer other than NOT_ENOUGH_REPLICAS")


async def offsets(cluster: LocalCluster, partition: int) -> tuple[int, int]:
    """(high watermark, last stable offset) of the partition."""
    address = await leader_address(cluster, partition)
    found = [
        await list_offset(address, TOPIC, partition, LATEST, isolation_level=level)
        for level in (READ_UNCOMMITTED, READ_COMMITTED)
    ]
    assert all(r.error_code == ErrorCode.NONE for r in found), found
    return found[0].offset, found[1].offset


async def stable(cluster: LocalCluster, partition: int) -> tuple[int, int]:
    """The partition's offsets once no transaction is open on it."""

    async def probe() -> tuple[int, int] | None:
        hw, lso = await offsets(cluster, partition)
        return (hw, lso) if hw == lso else None

    return await eventually(probe, timeout_s=15, what=f"{TOPIC}-{partition}: LSO == HW")


async def pick(cluster: LocalCluster, *, local: bool) -> tuple[str, int]:
    """A transactional id and a partition of TOPIC whose leader is (or is not) the id's
    coordinator."""
    leaders = await wait_partition_leaders(cluster, TOPIC, TOPIC_PARTITIONS)
    for i in range(60):
        tid = f"tx-verify-{'local' if local else 'remote'}-{i}"
        coordinator = (await find(cluster, tid)).node_id
        for partition, leader in sorted(leaders.items()):
            if (leader == coordinator) == local:
                return tid, partition
    raise AssertionError(f"no transactional id with a {'local' if local else 'remote'} leader")


@pytest.mark.parametrize("coordinator", ["on the leader", "on another broker"])
def test_a_write_to_a_partition_not_in_the_transaction_is_refused_and_writes_nothing(
    cluster: LocalCluster, coordinator: str
) -> None:
    async def body() -> None:
        tid, partition = await pick(cluster, local=coordinator == "on the leader")
        pid, epoch = await init(cluster, tid)
        await add_partitions(cluster, tid, pid, epoch, [1 - partition])  # ongoing, without it
        before = await stable(cluster, partition)

        refused = await write(cluster, tid, partition, pid, epoch, 0, b"stray")
        assert name(refused.error_code) == "TRANSACTION_ABORTABLE", refused.error_message
        assert "AddPartitionsToTxn" in refused.error_message
        assert await offsets(cluster, partition) == before  # nothing written; LSO == HW

        await add_partitions(cluster, tid, pid, epoch, [partition])
        taken = await write(cluster, tid, partition, pid, epoch, 0, b"registered")
        assert name(taken.error_code) == "NONE", taken.error_message
        hw, lso = await offsets(cluster, partition)
        assert (lso, hw) == (taken.base_offset, taken.base_offset + 1)  # open: holds the LSO

        await end(cluster, tid, pid, epoch, committed=False)
        hw, lso = await stable(cluster, partition)  # the ABORT marker closed it
        late = await write(cluster, tid, partition, pid, epoch, 1, b"late")
        assert name(late.error_code) == "INVALID_PRODUCER_EPOCH", late.error_message
        assert await offsets(cluster, partition) == (hw, lso)

    asyncio.run(body())


def test_a_fenced_epoch_is_refused_with_invalid_producer_epoch(cluster: LocalCluster) -> None:
    async def body() -> None:
        tid = "tx-verify-fenced"
        pid, old = await init(cluster, tid)
        again, epoch = await init(cluster, tid)  # a newer instance fences the first
        assert (again, epoch) == (pid, old + 1)
        await add_partitions(cluster, tid, pid, epoch, [0])
        before = await stable(cluster, 0)
        zombie = await write(cluster, tid, 0, pid, old, 0, b"zombie")
        assert name(zombie.error_code) == "INVALID_PRODUCER_EPOCH", zombie.error_message
        assert "fenced" in zombie.error_message
        assert await offsets(cluster, 0) == before
        await end(cluster, tid, pid, epoch, committed=False)

    asyncio.run(body())


def test_transactional_batches_without_a_transactional_id_are_refused(
    cluster: LocalCluster,
) -> None:
    async def body() -> None:
        pid, epoch = await init(cluster, "tx-verify-anonymous")
        before = await stable(cluster, 1)
        result = await write(cluster, "", 1, pid, epoch, 0, b"anonymous")
        assert name(result.error_code) == "INVALID_TXN_STATE", result.error_message
        assert "transactional_id" in result.error_message
        assert await offsets(cluster, 1) == before

    asyncio.run(body())
