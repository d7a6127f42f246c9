"""Offsets committed in a transaction, on 3 real brokers through raw gRPC stubs: while the
transaction is open OffsetFetch answers the last committed offset, and UNSTABLE_OFFSET_COMMIT
with require_stable; an abort drops them, a commit makes them the group's; and pending
offsets survive a kill -9 of the group coordinator (the new one replays the transactional
records and settles them when the marker reaches it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import grpc
import pytest

from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import groups_pb2 as gpb
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub
from raftka.v1.transactions_pb2_grpc import TransactionServiceStub
from tests.conditions import eventually
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_unfenced,
)
from tests.integration.test_transaction_coordinator import (
    TOPIC,
    _create_topic,
    end,
    find,
    init,
    on_coordinator,
)

pytestmark = pytest.mark.integration

GROUP = "txn-offsets-group"

T = TypeVar("T")


@pytest.fixture(scope="module")
def txn_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("txn-offsets"),
        broker_settings={
            "transaction_state_num_partitions": 3,
            "offsets_topic_num_partitions": 3,
        },
    )
    try:
        asyncio.run(_create_topic(c))
        yield c
    finally:
        stop_broker_cluster(c)


async def _on_group(
    cluster: LocalCluster, call: Callable[[grpc.aio.Channel], Awaitable[T]], *, avoid: int = -1
) -> T:
    return await on_coordinator(
        cluster, GROUP, call, avoid=avoid, key_type=gpb.COORDINATOR_TYPE_GROUP
    )


async def fetch(
    cluster: LocalCluster, *, require_stable: bool, avoid: int = -1
) -> gpb.OffsetFetchResponse:
    request = gpb.OffsetFetchRequest(
        group_id=GROUP,
        topics=[gpb.GroupTopicPartitions(topic=TOPIC, partitions=[0])],
        require_stable=require_stable,
    )
    response: gpb.OffsetFetchResponse = await _on_group(
        cluster, lambda ch: GroupServiceStub(ch).OffsetFetch(request, timeout=5), avoid=avoid
    )
    return response


async def stable_offset(cluster: LocalCluster, *, avoid: int = -1) -> int | None:
    """The committed offset of partition 0 once no transaction's offset for it is pending."""
    response = await fetch(cluster, require_stable=True, avoid=avoid)
    if response.error_code == ErrorCode.UNSTABLE_OFFSET_COMMIT:
        return None
    assert response.error_code == ErrorCode.NONE, response.error_message
    return int(response.topics[0].partitions[0].offset)


async def commit_in_transaction(
    cluster: LocalCluster, tid: str, pid: int, epoch: int, offset: int
) -> None:
    """AddOffsetsToTxn at the transaction coordinator, then TxnOffsetCommit at the group's."""
    add = tpb.AddOffsetsToTxnRequest(
        transactional_id=tid, producer_id=pid, producer_epoch=epoch, group_id=GROUP
    )
    await on_coordinator(
        cluster, tid, lambda ch: TransactionServiceStub(ch).AddOffsetsToTxn(add, timeout=5)
    )
    commit = gpb.TxnOffsetCommitRequest(
        transactional_id=tid,
        group_id=GROUP,
        producer_id=pid,
        producer_epoch=epoch,
        member_epoch=-1,
        topics=[
            gpb.OffsetCommitTopic(
                name=TOPIC, partitions=[gpb.OffsetCommitPartition(partition=0, offset=offset)]
            )
        ],
    )
    answer: gpb.OffsetCommitResponse = await _on_group(
        cluster, lambda ch: GroupServiceStub(ch).TxnOffsetCommit(commit, timeout=5)
    )
    assert [p.error_code for t in answer.topics for p in t.partitions] == [ErrorCode.NONE]


async def settled(cluster: LocalCluster, *, avoid: int = -1) -> int:
    async def probe() -> int | None:
        return await stable_offset(cluster, avoid=avoid)

    return await eventually(probe, timeout_s=15, what="offsets settled")


def test_pending_offsets_are_unstable_until_the_abort_drops_them_or_the_commit_keeps_them(
    txn_cluster: LocalCluster,
) -> None:
    async def body() -> None:
        tid = "tx-offsets-abort"
        pid, epoch = await init(txn_cluster, tid)
        await commit_in_transaction(txn_cluster, tid, pid, epoch, 7)
        unstable = await fetch(txn_cluster, require_stable=True)
        assert unstable.error_code == ErrorCode.UNSTABLE_OFFSET_COMMIT
        assert f"{TOPIC}-0" in unstable.error_message
        plain = await fetch(txn_cluster, require_stable=False)
        assert plain.topics[0].partitions[0].offset == -1  # the last committed: none
        ended = await end(txn_cluster, tid, pid, epoch, committed=False)
        assert await settled(txn_cluster) == -1  # aborted: dropped

        pid, epoch = ended.producer_id, ended.producer_epoch  # KIP-890: the bumped epoch
        await commit_in_transaction(txn_cluster, tid, pid, epoch, 9)
        assert await stable_offset(txn_cluster) is None
        await end(txn_cluster, tid, pid, epoch, committed=True)
        assert await settled(txn_cluster) == 9

    asyncio.run(body())


def test_pending_offsets_survive_a_kill_of_the_group_coordinator(
    txn_cluster: LocalCluster,
) -> None:
    async def body() -> int:
        victim = (await find(txn_cluster, GROUP, gpb.COORDINATOR_TYPE_GROUP)).node_id
        tid = ""
        for n in range(50):  # a transactional id whose coordinator is not the victim
            if (await find(txn_cluster, f"tx-offsets-kill-{n}")).node_id != victim:
                tid = f"tx-offsets-kill-{n}"
                break
        assert tid, "every transactional id tried is coordinated by the group's coordinator"
        pid, epoch = await init(txn_cluster, tid)
        await commit_in_transaction(txn_cluster, tid, pid, epoch, 21)
        txn_cluster.kill(victim)
        # The new group coordinator replayed the pending record: still undecided there.
        assert await stable_offset(txn_cluster, avoid=victim) is None
        await end(txn_cluster, tid, pid, epoch, committed=True)
        assert await settled(txn_cluster, avoid=victim) == 21
        return victim

    victim = asyncio.run(body())
    txn_cluster.start(victim)  # the module's cluster stays whole
    asyncio.run(wait_unfenced(txn_cluster, [victim]))
