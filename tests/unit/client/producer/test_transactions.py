"""The transactional producer against a fake coordinator and leaders: the order of its calls
(AddPartitionsToTxn before a partition's first batch, once per transaction; EndTxn after the
flush; the new epoch adopted with sequences from 0), offsets in a transaction, out-of-order
calls, and which failures are fatal and which only abortable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from raftka.client.producer import (
    AbortableTransactionError,
    AsyncProducer,
    Producer,
    ProducerConfig,
    ProducerFatalError,
    ProducerFencedError,
)
from raftka.client.types import OffsetAndMetadata, TopicPartition
from raftka.common import group_errors, txn_errors
from raftka.common.errors import InvalidConfigError
from raftka.common.records.batch import BatchHeader
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode
from tests.conditions import until
from tests.unit.client.fake_txn import PRODUCER_ID, FakeTxnCluster

P0, P1 = TopicPartition("out", 0), TopicPartition("out", 1)
FAST: dict[str, Any] = {
    "linger_ms": 0,
    "retry_backoff_ms": 1,
    "retry_backoff_max_ms": 5,
    "request_timeout_ms": 2000,
    "delivery_timeout_ms": 5000,
    "max_block_ms": 2000,
}


@dataclass(frozen=True)
class Meta:
    group_id: str
    member_id: str
    member_epoch: int


def cluster_with_topic() -> FakeTxnCluster:
    cluster = FakeTxnCluster()
    cluster.create("out", 2)
    return cluster


def run(
    test: Callable[[FakeTxnCluster, AsyncProducer], Awaitable[None]],
    cluster: FakeTxnCluster | None = None,
    **settings: Any,
) -> FakeTxnCluster:
    cluster = cluster or cluster_with_topic()

    async def main() -> None:
        producer = AsyncProducer(
            bootstrap_servers=cluster.bootstrap,
            connections=cluster,
            transactional_id="t1",
            **{**FAST, **settings},
        )
        try:
            await test(cluster, producer)
        finally:
            await producer.close(timeout_s=5)

    asyncio.run(main())
    return cluster


def first_index(kinds: list[tuple[str, Any]], match: Callable[[str, Any], bool]) -> int:
    return next(i for i, (k, d) in enumerate(kinds) if match(k, d))


def test_partitions_are_added_once_before_their_first_batch_and_end_txn_follows_the_flush() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        await producer.init_transactions()
        producer.begin_transaction()
        futures = []
        for i in range(6):
            futures.append(await producer.send("out", b"v%d" % i, partition=i % 2))
            if i == 2:
                await futures[-1]  # later records go in later batches
        await producer.commit_transaction()
        assert all(f.done() and f.exception() is None for f in futures)

    cluster = run(body)
    events = cluster.events
    finds = [d for k, d in events if k == "find"]
    assert finds and finds[0] == (gpb.COORDINATOR_TYPE_TRANSACTION, ["t1"])
    assert ("init", ("t1", 60000)) in events
    added = [tp for k, d in events if k == "add_partitions" for tp in d]
    assert sorted(added) == [P0, P1], f"each partition added exactly once: {added}"
    produced = cluster.produced()
    assert len(produced) >= 3
    for tp in (P0, P1):
        add_at = min(i for i, (k, d) in enumerate(events) if k == "add_partitions" and tp in d)
        produce_at = min(i for i, (k, d) in enumerate(events) if k == "produce" and d[0] == tp)
        assert add_at < produce_at, f"{tp} produced before it was added"
    end_at = first_index(events, lambda k, d: k == "end")
    last_produce = max(i for i, (k, _) in enumerate(events) if k == "produce")
    assert last_produce < end_at
    assert events[end_at] == ("end", (True, 0))
    assert all(
        transactional and pid == PRODUCER_ID and epoch == 0
        for _, pid, epoch, _, transactional in produced
    )
    marker = BatchHeader.parse(cluster.partitions[("out", 0)].batches[-1].data)
    assert marker.is_control and marker.is_transactional, "the COMMIT marker closes the log"


def test_the_next_transaction_uses_the_epoch_end_txn_returned_with_sequences_from_zero() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        await producer.init_transactions()
        for round_ in range(2):
            producer.begin_transaction()
            for i in range(3):
                await (await producer.send("out", b"r%d-%d" % (round_, i), partition=0))
            await producer.commit_transaction()

    cluster = run(body)
    produced = [(epoch, seq) for tp, _pid, epoch, seq, _t in cluster.produced()]
    assert produced == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [d for k, d in cluster.events if k == "end"] == [(True, 0), (True, 1)]
    assert [d for k, d in cluster.events if k == "add_partitions"] == [[P0], [P0]]


def test_a_fresh_producer_id_from_end_txn_is_adopted() -> None:
    cluster = cluster_with_topic()
    cluster.max_epoch = 1

    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        await producer.init_transactions()  # epoch 0
        for _ in range(2):  # EndTxn bumps to 1, then past the maximum: a new id
            producer.begin_transaction()
            await producer.send("out", b"x", partition=0)
            await producer.commit_transaction()
        producer.begin_transaction()
        await producer.send("out", b"y", partition=0)
        await producer.commit_transaction()

    run(body, cluster)
    produced = [(pid, epoch, seq) for _tp, pid, epoch, seq, _t in cluster.produced()]
    assert produced == [(PRODUCER_ID, 0, 0), (PRODUCER_ID, 1, 0), (PRODUCER_ID + 1, 0, 0)]


def test_abort_drops_unsent_records_and_ends_the_transaction_with_a_new_epoch() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        await producer.init_transactions()
        producer.begin_transaction()
        waiting = await producer.send("out", b"held by linger", partition=1)
        await until(lambda: "add_partitions" in cluster.kinds(), what="partition added")
        await producer.abort_transaction()
        assert isinstance(waiting.exception(), AbortableTransactionError)
        producer.begin_transaction()
        kept = await producer.send("out", b"kept", partition=1)
        await producer.commit_transaction()  # flushes: linger does not hold it
        assert kept.result().offset == 1, "after the ABORT marker"

    cluster = run(body, linger_ms=60_000, linger_when_idle=True, delivery_timeout_ms=120_000)
    produced = cluster.produced()
    assert [(tp, epoch, seq) for tp, _p, epoch, seq, _t in produced] == [(P1, 1, 0)]
    assert [d for k, d in cluster.events if k == "end"] == [(False, 0), (True, 1)]


def test_a_transaction_with_nothing_added_ends_without_end_txn() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        await producer.init_transactions()
        producer.begin_transaction()
        await producer.commit_transaction()
        producer.begin_transaction()
        await producer.abort_transaction()
        producer.begin_transaction()  # back in READY both times

    cluster = run(body)
    assert "end" not in cluster.kinds()


def test_calls_out_of_order_fail_at_once_and_send_nothing() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        with pytest.raises(txn_errors.InvalidTxnStateError, match="init_transactions"):
            producer.begin_transaction()
        with pytest.raises(txn_errors.InvalidTxnStateError, match="init_transactions"):
            await producer.send("out", b"x", partition=0)
        await producer.init_transactions()
        with pytest.raises(txn_errors.InvalidTxnStateError, match="begin_transaction"):
            await producer.send("out", b"x", partition=0)
        with pytest.raises(txn_errors.InvalidTxnStateError, match="begin_transaction"):
            await producer.commit_transaction()
        with pytest.raises(txn_errors.InvalidTxnStateError, match="begin_transaction"):
            await producer.abort_transaction()
        with pytest.raises(txn_errors.InvalidTxnStateError, match="begin_transaction"):
            await producer.send_offsets_to_transaction({P0: 1}, Meta("g", "", -1))
        producer.begin_transaction()
        with pytest.raises(txn_errors.InvalidTxnStateError, match="already open"):
            producer.begin_transaction()
        with pytest.raises(txn_errors.InvalidTxnStateError, match="already called"):
            await producer.init_transactions()

    cluster = run(body)
    assert not {"produce", "add_partitions", "end", "add_offsets"} & set(cluster.kinds())


def test_a_non_transactional_producer_refuses_transactional_calls() -> None:
    async def main() -> None:
        producer = AsyncProducer(bootstrap_servers=["x:1"])
        with pytest.raises(txn_errors.InvalidTxnStateError, match="transactional_id"):
            producer.begin_transaction()
        await producer.close()

    asyncio.run(main())


def test_a_failed_send_makes_commit_fail_as_abortable_and_abort_recovers() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        await producer.init_transactions()
        producer.begin_transaction()
        cluster.produce_codes[P0] = [ErrorCode.INVALID_RECORD]
        failed = await producer.send("out", b"bad", partition=0)
        with pytest.raises(AbortableTransactionError, match="abort_transaction"):
            await producer.commit_transaction()
        assert isinstance(failed.exception(), AbortableTransactionError)
        with pytest.raises(AbortableTransactionError):
            await producer.send("out", b"more", partition=1)
        await producer.abort_transaction()
        producer.begin_transaction()
        await producer.send("out", b"good", partition=0)
        await producer.commit_transaction()

    cluster = run(body)
    assert [d for k, d in cluster.events if k == "end"] == [(False, 0), (True, 1)]


def test_invalid_producer_epoch_from_a_leader_is_abortable_not_fatal() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        await producer.init_transactions()
        producer.begin_transaction()
        cluster.produce_codes[P0] = [ErrorCode.INVALID_PRODUCER_EPOCH]
        await producer.send("out", b"x", partition=0)
        with pytest.raises(AbortableTransactionError):
            await producer.commit_transaction()
        await producer.abort_transaction()

    run(body)


def test_fencing_at_end_txn_is_fatal_and_every_later_call_says_so() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        await producer.init_transactions()
        producer.begin_transaction()
        await producer.send("out", b"x", partition=0)
        cluster.fail_next["EndTxn"] = [txn_errors.ProducerFencedError("a newer epoch exists")]
        with pytest.raises(ProducerFencedError, match="close") as raised:
            await producer.commit_transaction()
        assert isinstance(raised.value, ProducerFatalError)
        assert isinstance(raised.value, txn_errors.ProducerFencedError)
        for call in (
            producer.abort_transaction(),
            producer.send("out", b"y", partition=0),
            producer.commit_transaction(),
        ):
            with pytest.raises(ProducerFencedError):
                await call
        with pytest.raises(ProducerFencedError):
            producer.begin_transaction()

    run(body)


def test_init_retries_concurrent_transactions_and_a_moved_coordinator() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        cluster.fail_next["InitProducerId"] = [
            txn_errors.ConcurrentTransactionsError("previous transaction still ending"),
            group_errors.NotCoordinatorError("moved"),
            txn_errors.ConcurrentTransactionsError("still"),
        ]
        await producer.init_transactions()
        producer.begin_transaction()

    cluster = run(body)
    assert len([k for k in cluster.kinds() if k == "find"]) >= 2, "looked up again after a move"
    assert cluster.kinds().count("init") == 1


def test_init_gives_up_at_max_block_ms_and_may_be_called_again() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        cluster.fail_next["InitProducerId"] = [
            txn_errors.ConcurrentTransactionsError("busy") for _ in range(10_000)
        ]
        with pytest.raises(Exception, match="call it again"):
            await producer.init_transactions()
        cluster.fail_next["InitProducerId"] = []
        await producer.init_transactions()

    run(body, max_block_ms=200)


def test_add_partitions_answered_concurrent_transactions_is_retried() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        await producer.init_transactions()
        producer.begin_transaction()
        cluster.add_codes = [ErrorCode.CONCURRENT_TRANSACTIONS] * 2
        future = await producer.send("out", b"x", partition=0)
        await producer.commit_transaction()
        assert future.result().offset == 0

    cluster = run(body)
    assert cluster.kinds().count("add_refused") == 2
    assert cluster.kinds().index("add_partitions") < cluster.kinds().index("produce")


def test_add_partitions_refused_dooms_the_transaction() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        await producer.init_transactions()
        producer.begin_transaction()
        cluster.fail_next["AddPartitionsToTxn"] = [
            txn_errors.TransactionAbortableError("coordinator says abort")
        ]
        future = await producer.send("out", b"x", partition=0)
        with pytest.raises(AbortableTransactionError):
            await future
        await producer.abort_transaction()

    cluster = run(body)
    assert "produce" not in cluster.kinds()


def test_offsets_are_added_then_committed_at_the_group_coordinator_inside_the_transaction() -> None:
    source = TopicPartition("in", 3)

    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        await producer.init_transactions()
        producer.begin_transaction()
        await producer.send("out", b"x", partition=0)
        await producer.send_offsets_to_transaction(
            {source: 42, TopicPartition("in", 4): OffsetAndMetadata(7, None, "m")},
            Meta("g1", "member-a", 5),
        )
        assert ("g1", source) not in cluster.committed_offsets, "pending until the commit"
        await producer.commit_transaction()
        producer.begin_transaction()
        await producer.send_offsets_to_transaction({source: 50}, Meta("g1", "member-a", 5))
        await producer.abort_transaction()

    cluster = run(body)
    kinds = cluster.kinds()
    add_at = kinds.index("add_offsets")
    commit_at = kinds.index("txn_offset_commit")
    assert add_at < commit_at < kinds.index("end")
    request = next(d for k, d in cluster.events if k == "txn_offset_commit")
    assert (request.transactional_id, request.group_id) == ("t1", "g1")
    assert (request.producer_id, request.producer_epoch) == (PRODUCER_ID, 0)
    assert (request.member_id, request.member_epoch) == ("member-a", 5)
    offsets = {
        (t.name, p.partition): (p.offset, p.metadata) for t in request.topics for p in t.partitions
    }
    assert offsets == {("in", 3): (42, ""), ("in", 4): (7, "m")}
    assert cluster.committed_offsets[("g1", source)] == 42, "the abort dropped offset 50"
    finds = [d for k, d in cluster.events if k == "find"]
    assert (gpb.COORDINATOR_TYPE_GROUP, ["g1"]) in finds


def test_a_refused_offset_commit_is_abortable() -> None:
    async def body(cluster: FakeTxnCluster, producer: AsyncProducer) -> None:
        await producer.init_transactions()
        producer.begin_transaction()
        cluster.fail_next["TxnOffsetCommit"] = [group_errors.UnknownMemberIdError("left")]
        with pytest.raises(AbortableTransactionError):
            await producer.send_offsets_to_transaction({P0: 1}, Meta("g", "m", 3))
        with pytest.raises(AbortableTransactionError):
            await producer.commit_transaction()
        await producer.abort_transaction()

    run(body)


def test_the_blocking_producer_runs_a_transaction() -> None:
    cluster = cluster_with_topic()
    with Producer(
        bootstrap_servers=cluster.bootstrap, connections=cluster, transactional_id="t1", **FAST
    ) as producer:
        producer.init_transactions()
        producer.begin_transaction()
        future = producer.send("out", b"x", partition=1)
        producer.send_offsets_to_transaction({P0: 3}, Meta("g", "", -1))
        producer.commit_transaction()
        assert future.result(timeout=5).offset == 0
        producer.begin_transaction()
        producer.abort_transaction()
    assert [d for k, d in cluster.events if k == "end"] == [(True, 0)]
    assert cluster.committed_offsets[("g", P0)] == 3


def test_a_transactional_config_is_idempotent_and_refuses_what_contradicts_it() -> None:
    config = ProducerConfig(transactional_id="t", enable_idempotence=None)
    assert config.idempotent and config.transactional and config.transaction_timeout_ms == 60000
    for bad in (
        {"acks": 1},
        {"enable_idempotence": False},
        {"transaction_timeout_ms": 0},
        {"transactional_id": ""},
        {"transactional_id": "x" * 250},
    ):
        with pytest.raises(InvalidConfigError):
            ProducerConfig(**{"transactional_id": "t", **bad})  # type: ignore[arg-type]
