"""The transaction coordinator on 3 real brokers, through raw gRPC stubs: FindCoordinator
(TRANSACTION) creates __transaction_state, InitProducerId bumps the epoch and fences the old
one, a committed transaction becomes visible to read_committed readers once its markers are
written while an aborted one never does, offsets committed in a transaction show once it
commits (the marker goes through the group coordinator), and a transaction decided just before
its coordinator's kill -9 is completed by the next coordinator (also when the killed one's
markers were all dropped by the MARKERS fault path)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import grpc
import pytest

from raftka.broker.groups.placement import partition_for
from raftka.broker.transactions.api import TRANSACTION_STATE_TOPIC
from raftka.common.faults import Action, Direction, FaultPath, FaultRule
from raftka.ops.fault_client import FaultClient
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import controller_pb2 as cpb
from raftka.v1 import groups_pb2 as gpb
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.broker_pb2_grpc import BrokerServiceStub
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub
from raftka.v1.transactions_pb2_grpc import TransactionServiceStub
from tests.conditions import eventually, holds_for
from tests.integration.support.broker_rpc import fetch, produce_request
from tests.integration.support.brokers import (
    log_events,
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
    wait_unfenced,
)
from tests.integration.support.quorum import client_for

pytestmark = pytest.mark.integration

TXN_PARTITIONS = 3
TOPIC = "payments"
TOPIC_PARTITIONS = 2
READ_COMMITTED = 1
RETRIABLE = {
    "NOT_COORDINATOR",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "COORDINATOR_NOT_AVAILABLE",
    "CONCURRENT_TRANSACTIONS",
}

T = TypeVar("T")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("txn"),
        broker_settings={
            "transaction_state_num_partitions": TXN_PARTITIONS,
            "offsets_topic_num_partitions": 3,
        },
        faults=True,
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


def _error_name(e: grpc.aio.AioRpcError) -> str:
    return str(dict(e.trailing_metadata() or ()).get("raftka-error", ""))


async def find(
    cluster: LocalCluster, key: str, key_type: int = gpb.COORDINATOR_TYPE_TRANSACTION
) -> gpb.Coordinator:
    """FindCoordinator through any running broker, until it names one."""

    async def probe() -> gpb.Coordinator | None:
        for node in cluster.brokers.values():
            if not node.running:
                continue
            request = gpb.FindCoordinatorRequest(key_type=key_type, keys=[key])  # type: ignore[arg-type]
            try:
                async with grpc.aio.insecure_channel(node.address) as channel:
                    answer = await GroupServiceStub(channel).FindCoordinator(request, timeout=3)
            except grpc.aio.AioRpcError:
                continue  # a broker starting or stopping: ask another
            coordinator: gpb.Coordinator = answer.coordinators[0]
            if coordinator.error_code == ErrorCode.NONE:
                return coordinator
        return None

    return await eventually(probe, timeout_s=15, what=f"coordinator of {key}")


async def on_coordinator(
    cluster: LocalCluster,
    key: str,
    call: Callable[[grpc.aio.Channel], Awaitable[T]],
    *,
    avoid: int = -1,
    key_type: int = gpb.COORDINATOR_TYPE_TRANSACTION,
) -> T:
    """Runs ``call`` at the key's coordinator (not broker ``avoid``), again while it fails with
    a retriable coordinator error, as a client does."""

    async def attempt() -> tuple[T] | None:
        coordinator = await find(cluster, key, key_type)
        if coordinator.node_id == avoid:
            return None
        try:
            address = f"{coordinator.host}:{coordinator.port}"
            async with grpc.aio.insecure_channel(address) as channel:
                return (await call(channel),)
        except grpc.aio.AioRpcError as e:
            if _error_name(e) in RETRIABLE or e.code() == grpc.StatusCode.UNAVAILABLE:
                return None
            raise

    (result,) = await eventually(attempt, timeout_s=15, what=f"a usable coordinator for {key}")
    return result


async def init(
    cluster: LocalCluster, transactional_id: str, timeout_ms: int = 30_000
) -> tuple[int, int]:
    async def call(channel: grpc.aio.Channel) -> bpb.InitProducerIdResponse:
        request = bpb.InitProducerIdRequest(
            transactional_id=transactional_id, transaction_timeout_ms=timeout_ms
        )
        response: bpb.InitProducerIdResponse = await BrokerServiceStub(channel).InitProducerId(
            request, timeout=5
        )
        return response

    response = await on_coordinator(cluster, transactional_id, call)
    return response.producer_id, response.producer_epoch


async def add_partitions(
    cluster: LocalCluster, transactional_id: str, pid: int, epoch: int, partitions: list[int]
) -> tpb.AddPartitionsToTxnResponse:
    request = tpb.AddPartitionsToTxnRequest(
        transactional_id=transactional_id,
        producer_id=pid,
        producer_epoch=epoch,
        topics=[tpb.TxnTopicPartitions(topic=TOPIC, partitions=partitions)],
    )
    return await on_coordinator(
        cluster,
        transactional_id,
        lambda ch: TransactionServiceStub(ch).AddPartitionsToTxn(request, timeout=5),
    )


async def end(
    cluster: LocalCluster, transactional_id: str, pid: int, epoch: int, committed: bool
) -> tpb.EndTxnResponse:
    request = tpb.EndTxnRequest(
        transactional_id=transactional_id,
        producer_id=pid,
        producer_epoch=epoch,
        committed=committed,
    )
    return await on_coordinator(
        cluster, transactional_id, lambda ch: TransactionServiceStub(ch).EndTxn(request, timeout=5)
    )


async def describe(
    cluster: LocalCluster, transactional_id: str, *, avoid: int = -1
) -> tpb.TransactionDescription:
    request = tpb.DescribeTransactionsRequest(transactional_ids=[transactional_id])

    async def call(channel: grpc.aio.Channel) -> tpb.TransactionDescription:
        response = await TransactionServiceStub(channel).DescribeTransactions(request, timeout=5)
        (described,) = response.transactions
        return described  # type: ignore[no-any-return]

    async def probe() -> tpb.TransactionDescription | None:
        described = await on_coordinator(cluster, transactional_id, call, avoid=avoid)
        if ErrorCode.Name(described.error_code) in RETRIABLE:  # e.g. still loading
            return None
        assert described.error_code == ErrorCode.NONE, described.error_message
        return described

    return await eventually(probe, timeout_s=15, what=f"description of {transactional_id}")


async def produce_transactional(
    cluster: LocalCluster, tid: str, partition: int, pid: int, epoch: int, *values: bytes
) -> None:
    leaders = await wait_partition_leaders(cluster, TOPIC, TOPIC_PARTITIONS)
    request = produce_request(
        TOPIC, partition, records=[bpb.Record(value=v) for v in values], idempotence=(pid, epoch, 0)
    )
    request.topics[0].partitions[0].transactional = True
    request.transactional_id = tid  # the leader verifies the write with tid's coordinator
    async with grpc.aio.insecure_channel(cluster.brokers[leaders[partition]].address) as channel:
        response = await BrokerServiceStub(channel).Produce(request, timeout=10)
    (result,) = response.results
    assert result.error_code == ErrorCode.NONE, result.error_message


async def committed_values(cluster: LocalCluster, partition: int) -> list[bytes]:
    """What a read_committed reader gets from the partition's start (decoded records)."""
    leaders = await wait_partition_leaders(cluster, TOPIC, TOPIC_PARTITIONS)
    result = await fetch(
        cluster.brokers[leaders[partition]].address,
        TOPIC,
        partition,
        0,
        decode_records=True,
        isolation_level=READ_COMMITTED,
    )
    assert result.error_code == ErrorCode.NONE, result.error_message
    return [r.value for r in result.records]


def test_find_coordinator_creates_the_transaction_state_topic(cluster: LocalCluster) -> None:
    async def body() -> None:
        coordinator = await find(cluster, "tx-find")
        assert coordinator.partition == partition_for("tx-find", TXN_PARTITIONS)
        async with client_for(cluster, timeout_s=10.0) as client:
            (topic,) = await client.describe_topics([TRANSACTION_STATE_TOPIC])
        assert len(topic.partitions) == TXN_PARTITIONS
        assert {len(p.replicas) for p in topic.partitions} == {3}
        assert topic.configs["cleanup.policy"] == "compact"
        assert topic.configs["min.insync.replicas"] == "2"
        leader = next(p.leader for p in topic.partitions if p.partition == coordinator.partition)
        assert coordinator.node_id == leader

    asyncio.run(body())


def test_init_producer_id_bumps_the_epoch_and_fences_the_old_one(cluster: LocalCluster) -> None:
    async def body() -> None:
        pid, epoch = await init(cluster, "tx-fence")
        again_pid, again_epoch = await init(cluster, "tx-fence")
        assert (again_pid, again_epoch) == (pid, epoch + 1)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await add_partitions(cluster, "tx-fence", pid, epoch, [0])
        assert _error_name(info.value) == "PRODUCER_FENCED"
        added = await add_partitions(cluster, "tx-fence", pid, again_epoch, [0])
        assert [r.error_code for r in added.results] == [ErrorCode.NONE]

    asyncio.run(body())


def test_committed_records_are_seen_by_read_committed_and_aborted_ones_never(
    cluster: LocalCluster,
) -> None:
    async def body() -> None:
        pid, epoch = await init(cluster, "tx-commit")
        added = await add_partitions(cluster, "tx-commit", pid, epoch, [0])
        assert [r.error_code for r in added.results] == [ErrorCode.NONE]
        await produce_transactional(cluster, "tx-commit", 0, pid, epoch, b"c1", b"c2")
        assert b"c1" not in await committed_values(cluster, 0)  # open: below the LSO only
        ended = await end(cluster, "tx-commit", pid, epoch, committed=True)
        assert (ended.producer_id, ended.producer_epoch) == (pid, epoch + 1)

        async def visible() -> list[bytes] | None:
            values = await committed_values(cluster, 0)
            return values if b"c1" in values else None

        assert [v for v in await eventually(visible, timeout_s=10) if v.startswith(b"c")] == [
            b"c1",
            b"c2",
        ]
        # The next transaction (epoch + 1) is aborted: its records never show.
        epoch = ended.producer_epoch
        await add_partitions(cluster, "tx-commit", pid, epoch, [0])
        await produce_transactional(cluster, "tx-commit", 0, pid, epoch, b"a1")
        await end(cluster, "tx-commit", pid, epoch, committed=False)
        await eventually(lambda: _state_is(cluster, "tx-commit", "CompleteAbort"), timeout_s=10)
        await add_partitions(cluster, "tx-commit", pid, epoch + 1, [0])
        await produce_transactional(cluster, "tx-commit", 0, pid, epoch + 1, b"c3")
        await end(cluster, "tx-commit", pid, epoch + 1, committed=True)

        async def after_abort() -> list[bytes] | None:
            values = await committed_values(cluster, 0)
            return values if b"c3" in values else None

        values = await eventually(after_abort, timeout_s=10)
        assert b"a1" not in values and values.count(b"c1") == 1

    asyncio.run(body())


def test_a_transaction_past_its_timeout_is_aborted_by_the_coordinator(
    cluster: LocalCluster,
) -> None:
    async def body() -> None:
        pid, epoch = await init(cluster, "tx-timeout", timeout_ms=1_000)
        await add_partitions(cluster, "tx-timeout", pid, epoch, [1])
        await produce_transactional(cluster, "tx-timeout", 1, pid, epoch, b"late")
        await eventually(lambda: _state_is(cluster, "tx-timeout", "CompleteAbort"), timeout_s=10)
        described = await describe(cluster, "tx-timeout")
        assert described.producer_epoch == epoch + 1  # the abort bumped it: the producer is out
        assert b"late" not in await committed_values(cluster, 1)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await end(cluster, "tx-timeout", pid, epoch, committed=True)
        assert _error_name(info.value) in ("PRODUCER_FENCED", "INVALID_TXN_STATE")

    asyncio.run(body())


async def _state_is(cluster: LocalCluster, transactional_id: str, state: str) -> bool | None:
    return (await describe(cluster, transactional_id)).state == state or None


FOLLOWERS_CANNOT_FETCH = FaultRule(
    Action.DROP, paths=frozenset({FaultPath.REPLICATION}), direction=Direction.INBOUND
)
"""At a leader: its followers' fetches are dropped, so nothing it appends is committed."""


async def _coordinator_and_other_leader(cluster: LocalCluster) -> tuple[str, int, int]:
    """A transactional id whose coordinator does not lead some partition of TOPIC: (id, its
    coordinator, that partition)."""
    leaders = await wait_partition_leaders(cluster, TOPIC, TOPIC_PARTITIONS)
    for i in range(50):
        tid = f"tx-kill-{i}"
        coordinator = (await find(cluster, tid)).node_id
        for partition, leader in leaders.items():
            if leader != coordinator:
                return tid, coordinator, partition
    raise AssertionError(f"every partition of {TOPIC} is led by every id's coordinator")


def test_a_new_coordinator_completes_a_transaction_decided_before_a_kill(
    cluster: LocalCluster,
) -> None:
    """The markers cannot be committed (the partition's followers cannot fetch) when the
    coordinator is killed: only the next coordinator, replaying the PrepareCommit record, can
    send them again and record CompleteCommit."""

    async def body() -> int:
        tid, victim, partition = await _coordinator_and_other_leader(cluster)
        leader = (await wait_partition_leaders(cluster, TOPIC, TOPIC_PARTITIONS))[partition]
        pid, epoch = await init(cluster, tid)
        await add_partitions(cluster, tid, pid, epoch, [partition])
        await produce_transactional(cluster, tid, partition, pid, epoch, b"k1")
        async with FaultClient(cluster.brokers[leader].address) as faults:
            await faults.inject([FOLLOWERS_CANNOT_FETCH])
        try:
            await end(cluster, tid, pid, epoch, committed=True)
            assert (await describe(cluster, tid)).state == "PrepareCommit"  # markers stuck
            cluster.kill(victim)
        finally:
            async with FaultClient(cluster.brokers[leader].address) as faults:
                await faults.clear()

        async def completed() -> tpb.TransactionDescription | None:
            described = await describe(cluster, tid, avoid=victim)
            return described if described.state == "CompleteCommit" else None

        described = await eventually(completed, timeout_s=15, what="CompleteCommit")
        assert (described.producer_id, described.producer_epoch) == (pid, epoch + 1)
        successor = await find(cluster, tid)
        resumed = log_events(cluster, successor.node_id, "txn_markers_resumed")
        assert any(e["partition"] == successor.partition for e in resumed), resumed

        async def visible() -> list[bytes] | None:
            values = await committed_values(cluster, partition)
            return values if b"k1" in values else None

        await eventually(visible, timeout_s=10)
        return victim

    victim = asyncio.run(body())
    cluster.start(victim)  # the module's cluster stays whole
    asyncio.run(wait_unfenced(cluster, [victim]))


def test_offsets_committed_in_a_transaction_show_once_it_commits(cluster: LocalCluster) -> None:
    tid, group = "tx-offsets", "txn-readers"

    async def fetch_offset() -> int:
        request = gpb.OffsetFetchRequest(
            group_id=group, topics=[gpb.GroupTopicPartitions(topic=TOPIC, partitions=[0])]
        )
        response = await on_coordinator(
            cluster,
            group,
            lambda ch: GroupServiceStub(ch).OffsetFetch(request, timeout=5),
            key_type=gpb.COORDINATOR_TYPE_GROUP,
        )
        return int(response.topics[0].partitions[0].offset)

    async def body() -> None:
        pid, epoch = await init(cluster, tid)
        add = tpb.AddOffsetsToTxnRequest(
            transactional_id=tid, producer_id=pid, producer_epoch=epoch, group_id=group
        )
        await on_coordinator(  # creates __consumer_offsets if needed (retried meanwhile)
            cluster, tid, lambda ch: TransactionServiceStub(ch).AddOffsetsToTxn(add, timeout=5)
        )
        commit = gpb.TxnOffsetCommitRequest(
            transactional_id=tid,
            group_id=group,
            producer_id=pid,
            producer_epoch=epoch,
            member_epoch=-1,
            topics=[
                gpb.OffsetCommitTopic(
                    name=TOPIC, partitions=[gpb.OffsetCommitPartition(partition=0, offset=42)]
                )
            ],
        )
        answer = await on_coordinator(
            cluster,
            group,
            lambda ch: GroupServiceStub(ch).TxnOffsetCommit(commit, timeout=5),
            key_type=gpb.COORDINATOR_TYPE_GROUP,
        )
        assert [p.error_code for t in answer.topics for p in t.partitions] == [ErrorCode.NONE]
        assert await fetch_offset() == -1  # pending until the transaction commits
        await end(cluster, tid, pid, epoch, committed=True)

        async def committed() -> int | None:
            offset = await fetch_offset()
            return offset if offset != -1 else None

        assert await eventually(committed, timeout_s=10) == 42
        assert (await describe(cluster, tid)).state == "CompleteCommit"

    asyncio.run(body())


MARKERS_DROPPED = FaultRule(Action.DROP, paths=frozenset({FaultPath.MARKERS}))
"""At a coordinator: every WriteTxnMarkers it sends (to any broker, itself included) is lost."""


def test_markers_held_back_keep_a_commit_unreadable_until_the_next_coordinator(
    cluster: LocalCluster,
) -> None:
    tid = "tx-held-markers"

    async def unreadable() -> bool:
        values = [*await committed_values(cluster, 0), *await committed_values(cluster, 1)]
        state = (await describe(cluster, tid)).state
        return state == "PrepareCommit" and not {b"h0", b"h1"} & set(values)

    async def body() -> int:
        victim = (await find(cluster, tid)).node_id
        pid, epoch = await init(cluster, tid)
        await add_partitions(cluster, tid, pid, epoch, [0, 1])
        await produce_transactional(cluster, tid, 0, pid, epoch, b"h0")
        await produce_transactional(cluster, tid, 1, pid, epoch, b"h1")
        async with FaultClient(cluster.brokers[victim].address) as faults:
            await faults.inject([MARKERS_DROPPED])
            try:
                ended = await end(cluster, tid, pid, epoch, committed=True)
                assert ended.producer_epoch == epoch + 1  # decided and durable: EndTxn returns
                await holds_for(unreadable, duration_s=1.0, what="the commit held back")
            except BaseException:
                await faults.clear()
                raise
        cluster.kill(victim)  # its rules die with it; the next coordinator replays PrepareCommit

        async def complete() -> bool | None:
            described = await describe(cluster, tid, avoid=victim)
            return described.state == "CompleteCommit" or None

        await eventually(complete, timeout_s=15, what="CompleteCommit by the next coordinator")
        for partition, value in ((0, b"h0"), (1, b"h1")):
            assert value in await committed_values(cluster, partition)
        return victim

    victim = asyncio.run(body())
    cluster.start(victim)  # the module's cluster stays whole
    asyncio.run(wait_unfenced(cluster, [victim]))
