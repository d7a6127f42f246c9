"""The transaction APIs over the Kafka listener, on a real transaction coordinator and shard
(in-memory log, fake markers): a whole transaction at librdkafka's versions (the epoch kept)
and at EndTxn v5 (the epoch bumped), fencing codes by version, per-partition refusals, and the
gRPC servicer's authorization (a denying guard)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from raftka.broker.groups.placement import partition_for
from raftka.broker.kafka.produce import INIT_PRODUCER_ID_KEY, InitProducerIdHandler
from raftka.broker.kafka.schema import nested, request_type
from raftka.broker.kafka.txn import (
    ADD_OFFSETS_TO_TXN_KEY,
    ADD_PARTITIONS_TO_TXN_KEY,
    END_TXN_KEY,
    AddOffsetsToTxnHandler,
    AddPartitionsToTxnHandler,
    EndTxnHandler,
)
from raftka.broker.kafka.txn_admin import (
    DESCRIBE_TRANSACTIONS_KEY,
    LIST_TRANSACTIONS_KEY,
    DescribeTransactionsHandler,
    ListTransactionsHandler,
)
from raftka.broker.transactions.api import TxnConfig
from raftka.broker.transactions.shard import TransactionShard
from raftka.common.errors import CoordinatorLoadInProgressError
from raftka.common.security.model import OP_WRITE, RESOURCE_TOPIC, RESOURCE_TRANSACTIONAL_ID
from tests.conditions import eventually
from tests.unit.broker.kafka.support import ALICE, as_alice, backend, call, denying_guard, request
from tests.unit.broker.transactions.test_runtime import TID, Harness

AP, AO, END = ADD_PARTITIONS_TO_TXN_KEY, ADD_OFFSETS_TO_TXN_KEY, END_TXN_KEY


class RealShardHarness(Harness):
    """The runtime's harness with the real shard (its states and epochs are what is tested)."""

    def _new_shard(self, partition: int, coordinator_epoch: int) -> Any:
        return TransactionShard(partition, coordinator_epoch, TxnConfig())


def run(test: Callable[[RealShardHarness], Awaitable[None]], *, as_caller: bool = False) -> None:
    """``test`` on a loaded coordinator; ``as_caller``: with ALICE bound as the caller."""

    async def main() -> None:
        h = RealShardHarness()
        h.offsets.partitions = 4
        h.lead()
        try:
            await asyncio.wait_for(test(h), 10)
        finally:
            await h.coordinator.close()

    if as_caller:
        as_alice(main())
    else:
        asyncio.run(main())


async def init(h: Harness) -> tuple[int, int]:
    async def ready() -> Any:
        try:
            return await h.coordinator.init_producer_id(TID, 60_000)
        except CoordinatorLoadInProgressError:
            return None

    ids = await eventually(ready, timeout_s=5, what="the shard loaded")
    return ids.producer_id, ids.producer_epoch


async def completed(h: Harness, state: str) -> bool | None:
    return True if (await h.coordinator.describe(TID)).state == state else None


def add_partitions(version: int, pid: int, epoch: int, *topics: tuple[str, list[int]]) -> Any:
    topic = nested(request_type(AP, version), "AddPartitionsToTxnTopic")
    return request(
        AP,
        version,
        v3_and_below_transactional_id=TID,
        v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=tuple(topic(name=n, partitions=tuple(ps)) for n, ps in topics),
    )


def codes(answer: Any) -> dict[tuple[str, int], ErrorCode]:
    return {
        (t.name, p.partition_index): p.partition_error_code
        for t in answer.results_by_topic_v3_and_below
        for p in t.results_by_partition
    }


def end(version: int, pid: int, epoch: int, committed: bool) -> Any:
    return request(
        END,
        version,
        transactional_id=TID,
        producer_id=pid,
        producer_epoch=epoch,
        committed=committed,
    )


def test_librdkafkas_versions_run_two_transactions_on_one_epoch() -> None:
    async def body(h: RealShardHarness) -> None:
        kafka = backend(transactions=h.coordinator)
        pid, epoch = await init(h)
        added = await call(
            AddPartitionsToTxnHandler(kafka),
            AP,
            0,
            add_partitions(0, pid, epoch, ("events", [0, 2])),
        )
        assert codes(added) == {("events", 0): ErrorCode.none, ("events", 2): ErrorCode.none}
        offsets = request(
            AO, 0, transactional_id=TID, producer_id=pid, producer_epoch=epoch, group_id="g"
        )
        assert (await call(AddOffsetsToTxnHandler(kafka), AO, 0, offsets)).error_code == 0
        ended = await call(EndTxnHandler(kafka), END, 1, end(1, pid, epoch, True))
        assert ended.error_code == ErrorCode.none
        (job,) = h.markers.jobs
        assert (job.producer_id, job.producer_epoch, job.committed) == (pid, epoch, True)
        assert ("__consumer_offsets", partition_for("g", 4)) in job.partitions
        await eventually(lambda: completed(h, "CompleteCommit"), timeout_s=5, what="committed")
        # The next transaction goes on with the same epoch, and aborts.
        again = await call(
            AddPartitionsToTxnHandler(kafka), AP, 0, add_partitions(0, pid, epoch, ("events", [1]))
        )
        assert codes(again) == {("events", 1): ErrorCode.none}
        aborted = await call(EndTxnHandler(kafka), END, 1, end(1, pid, epoch, False))
        assert aborted.error_code == ErrorCode.none
        assert (h.markers.jobs[-1].producer_epoch, h.markers.jobs[-1].committed) == (epoch, False)

    run(body)


def test_end_txn_v5_bumps_the_epoch_and_answers_it() -> None:
    async def body(h: RealShardHarness) -> None:
        kafka = backend(transactions=h.coordinator)
        pid, epoch = await init(h)
        await call(
            AddPartitionsToTxnHandler(kafka), AP, 3, add_partitions(3, pid, epoch, ("events", [0]))
        )
        ended = await call(EndTxnHandler(kafka), END, 5, end(5, pid, epoch, True))
        assert (ended.error_code, ended.producer_id, ended.producer_epoch) == (
            ErrorCode.none,
            pid,
            epoch + 1,
        )

    run(body)


@pytest.mark.parametrize(
    ("version", "want"), [(1, ErrorCode.invalid_producer_epoch), (2, ErrorCode.producer_fenced)]
)
def test_a_fenced_producer_gets_the_code_its_version_knows(version: int, want: ErrorCode) -> None:
    async def body(h: RealShardHarness) -> None:
        kafka = backend(transactions=h.coordinator)
        pid, old = await init(h)
        await init(h)  # a new instance: epoch + 1
        added = await call(
            AddPartitionsToTxnHandler(kafka),
            AP,
            version,
            add_partitions(version, pid, old, ("events", [0, 1])),
        )
        assert set(codes(added).values()) == {want}
        ended = await call(EndTxnHandler(kafka), END, version, end(version, pid, old, True))
        assert ended.error_code == want

    run(body)


def test_an_unknown_partition_adds_nothing_and_the_others_are_not_attempted() -> None:
    async def body(h: RealShardHarness) -> None:
        kafka = backend(transactions=h.coordinator)
        pid, epoch = await init(h)
        added = await call(
            AddPartitionsToTxnHandler(kafka),
            AP,
            3,
            add_partitions(3, pid, epoch, ("events", [0, 9]), ("nope", [0])),
        )
        assert codes(added) == {
            ("events", 0): ErrorCode.operation_not_attempted,
            ("events", 9): ErrorCode.unknown_topic_or_partition,
            ("nope", 0): ErrorCode.unknown_topic_or_partition,
        }
        described = await call(
            DescribeTransactionsHandler(kafka),
            DESCRIBE_TRANSACTIONS_KEY,
            0,
            request(DESCRIBE_TRANSACTIONS_KEY, 0, transactional_ids=(TID, "x" * 300)),
        )
        mine, bad = described.transaction_states
        assert (mine.error_code, mine.transaction_state, mine.topics) == (
            ErrorCode.none,
            "Empty",
            (),
        )
        assert bad.error_code == ErrorCode.invalid_request

    run(body)


def test_no_coordinator_on_this_broker_is_coordinator_not_available() -> None:
    kafka = backend()
    answer = asyncio.run(
        call(AddPartitionsToTxnHandler(kafka), AP, 0, add_partitions(0, 1, 0, ("events", [0])))
    )
    assert set(codes(answer).values()) == {ErrorCode.coordinator_not_available}
    listed = asyncio.run(
        call(
            ListTransactionsHandler(kafka),
            LIST_TRANSACTIONS_KEY,
            0,
            request(
                LIST_TRANSACTIONS_KEY, 0, state_filters=("Ongoing", "Bogus"), producer_id_filters=()
            ),
        )
    )
    assert listed.error_code == ErrorCode.coordinator_not_available
    assert listed.unknown_state_filters == ("Bogus",)


def test_a_denying_guard_refuses_the_transactional_id_and_each_topic() -> None:
    async def body(h: RealShardHarness) -> None:
        pid, epoch = await init(h)
        nothing = backend(transactions=h.coordinator, guard=denying_guard())
        refused = await call(
            AddPartitionsToTxnHandler(nothing),
            AP,
            3,
            add_partitions(3, pid, epoch, ("events", [0])),
        )
        assert set(codes(refused).values()) == {ErrorCode.transactional_id_authorization_failed}
        ended = await call(EndTxnHandler(nothing), END, 3, end(3, pid, epoch, False))
        assert ended.error_code == ErrorCode.transactional_id_authorization_failed
        offsets = request(
            AO, 3, transactional_id=TID, producer_id=pid, producer_epoch=epoch, group_id="g"
        )
        answer = await call(AddOffsetsToTxnHandler(nothing), AO, 3, offsets)
        assert answer.error_code == ErrorCode.transactional_id_authorization_failed
        id_only = backend(
            transactions=h.coordinator,
            guard=denying_guard(
                [
                    (ALICE, OP_WRITE, RESOURCE_TRANSACTIONAL_ID, TID),
                    (ALICE, OP_WRITE, RESOURCE_TOPIC, "events"),
                ]
            ),
        )
        answer = await call(AddOffsetsToTxnHandler(id_only), AO, 3, offsets)
        assert answer.error_code == ErrorCode.group_authorization_failed
        mixed = await call(
            AddPartitionsToTxnHandler(id_only),
            AP,
            3,
            add_partitions(3, pid, epoch, ("events", [0]), ("other", [0])),
        )
        assert codes(mixed) == {
            ("events", 0): ErrorCode.operation_not_attempted,
            ("other", 0): ErrorCode.topic_authorization_failed,
        }
        assert (await h.coordinator.describe(TID)).state == "Empty"  # nothing was added

    run(body, as_caller=True)


def init_request(version: int, pid: int = -1, epoch: int = -1) -> Any:
    fields: dict[str, Any] = {"transactional_id": TID, "transaction_timeout": timedelta(0)}
    if version >= 3:
        fields.update(producer_id=pid, producer_epoch=epoch)
    return request(INIT_PRODUCER_ID_KEY, version, **fields)


@pytest.mark.parametrize(
    ("version", "fenced"), [(3, ErrorCode.invalid_producer_epoch), (4, ErrorCode.producer_fenced)]
)
def test_init_producer_id_naming_the_producer_bumps_it_or_fences_it(
    version: int, fenced: ErrorCode
) -> None:
    async def body(h: RealShardHarness) -> None:
        handler = InitProducerIdHandler(backend(transactions=h.coordinator))
        pid, epoch = await init(h)
        bumped = await call(
            handler, INIT_PRODUCER_ID_KEY, version, init_request(version, pid, epoch)
        )
        assert (bumped.error_code, bumped.producer_id, bumped.producer_epoch) == (
            ErrorCode.none,
            pid,
            epoch + 1,
        )
        fresh = await call(handler, INIT_PRODUCER_ID_KEY, version, init_request(version))
        assert (fresh.producer_id, fresh.producer_epoch) == (pid, epoch + 2)
        stale = await call(
            handler, INIT_PRODUCER_ID_KEY, version, init_request(version, pid, epoch)
        )
        assert (stale.error_code, stale.producer_id) == (fenced, -1)

    run(body)


def test_init_producer_id_needs_write_on_the_transactional_id() -> None:
    async def body(h: RealShardHarness) -> None:
        await init(h)
        handler = InitProducerIdHandler(backend(transactions=h.coordinator, guard=denying_guard()))
        refused = await call(handler, INIT_PRODUCER_ID_KEY, 4, init_request(4))
        assert refused.error_code == ErrorCode.transactional_id_authorization_failed
        idempotent = request(
            INIT_PRODUCER_ID_KEY, 4, transactional_id=None, transaction_timeout=timedelta(0)
        )
        refused = await call(handler, INIT_PRODUCER_ID_KEY, 4, idempotent)
        assert refused.error_code == ErrorCode.cluster_authorization_failed

    run(body, as_caller=True)
