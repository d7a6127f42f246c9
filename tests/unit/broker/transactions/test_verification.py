"""TxnWriteVerifier (KIP-890 part 1 on the partition leader) with a fake coordinator: which
writes are verified and which not, the cache and what drops it, how the coordinator's answers
reach the producer, and CoordinatorVerification's choice of coordinator."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from raftka.broker.producers.state import ProducerStateTable
from raftka.broker.transactions.api import TopicPartition
from raftka.broker.transactions.marker_transport import BrokerChannels
from raftka.broker.transactions.verification import TxnWriteVerifier, transactional_producers
from raftka.broker.transactions.verification_transport import CoordinatorVerification
from raftka.common.errors import (
    InvalidProducerEpochError,
    NetworkError,
    NotEnoughReplicasError,
    RaftkaError,
)
from raftka.common.group_errors import CoordinatorNotAvailableError, NotCoordinatorError
from raftka.common.metadata.image import MetadataImage
from raftka.common.records.builder import build_batch
from raftka.common.records.control import build_end_txn_marker
from raftka.common.txn_errors import (
    ConcurrentTransactionsError,
    InvalidTxnStateError,
    ProducerFencedError,
    TransactionAbortableError,
)
from tests.conditions import until

_T = TypeVar("_T")
T0 = 1_700_000_000_000
TID = "payments-1"


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(asyncio.wait_for(coro, 10))


def batch(pid: int, epoch: int, *, transactional: bool = True, sequence: int = 0) -> bytes:
    return bytes(
        build_batch(
            [(T0, None, b"v", ())],
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=sequence,
            transactional=transactional,
        )
    )


class FakeCoordinator:
    """Answers ``error`` (None: in the transaction); ``gate`` holds every answer until set."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int, int, TopicPartition]] = []
        self.error: RaftkaError | None = None
        self.gate = asyncio.Event()
        self.gate.set()

    async def verify(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partition: TopicPartition,
    ) -> None:
        self.asked.append((transactional_id, producer_id, producer_epoch, partition))
        await self.gate.wait()
        if self.error is not None:
            raise self.error


def check(
    verifier: TxnWriteVerifier,
    payload: bytes,
    *,
    partition: int = 0,
    table: ProducerStateTable | None = None,
    tid: str = TID,
) -> Coroutine[Any, Any, None]:
    return verifier.check("events", partition, tid, payload, table or ProducerStateTable())


def test_only_transactional_data_batches_with_a_producer_are_found() -> None:
    payload = (
        bytes(build_batch([(T0, None, b"plain", ())]))
        + batch(7, 1, transactional=False)
        + batch(8, 2)
        + batch(8, 2, sequence=1)
        + bytes(build_end_txn_marker(9, 1, True, 0, timestamp=T0))
        + bytes(build_batch([(T0, None, b"t", ())], transactional=True))  # no producer id
        + batch(10, 0)
    )
    assert transactional_producers(payload) == [(8, 2), (10, 0)]
    assert transactional_producers(b"") == []
    assert transactional_producers(batch(8, 2)[:30]) == []  # broken framing: the append refuses


def test_non_transactional_writes_are_not_verified_and_a_missing_transactional_id_is_refused() -> (
    None
):
    coordinator = FakeCoordinator()
    verifier = TxnWriteVerifier(coordinator)
    run(check(verifier, batch(7, 1, transactional=False), tid=""))
    with pytest.raises(InvalidTxnStateError, match="transactional_id"):
        run(check(verifier, batch(7, 1), tid=""))
    assert coordinator.asked == []


def test_the_first_write_is_verified_once_per_partition_producer_and_epoch() -> None:
    coordinator = FakeCoordinator()
    verifier = TxnWriteVerifier(coordinator)

    async def scenario() -> None:
        await check(verifier, batch(7, 1))
        await check(verifier, batch(7, 1, sequence=1))  # cached
        await check(verifier, batch(7, 1), partition=1)  # another partition
        await check(verifier, batch(7, 2))  # a new epoch (the next transaction)
        verifier.forget("events", 0, 7)  # a marker for producer 7 on events-0
        await check(verifier, batch(7, 2, sequence=1))

    run(scenario())
    assert coordinator.asked == [
        (TID, 7, 1, ("events", 0)),
        (TID, 7, 1, ("events", 1)),
        (TID, 7, 2, ("events", 0)),
        (TID, 7, 2, ("events", 0)),
    ]


def test_an_open_transaction_or_a_newer_epoch_on_the_partition_needs_no_question() -> None:
    coordinator = FakeCoordinator()
    verifier = TxnWriteVerifier(coordinator)
    table = ProducerStateTable()
    table.record(7, 3, 0, 0, 100, T0, transactional=True)  # producer 7's transaction, epoch 3
    run(check(verifier, batch(7, 3, sequence=1), table=table))
    run(check(verifier, batch(7, 2), table=table))  # fenced: the append refuses it
    assert coordinator.asked == []
    table.record_marker(7, 4, True, 0, 101)  # the transaction ended (epoch bumped)
    run(check(verifier, batch(7, 4), table=table))
    assert coordinator.asked == [(TID, 7, 4, ("events", 0))]


@pytest.mark.parametrize(
    ("answer", "refused", "code"),
    [
        (
            TransactionAbortableError("not in it"),
            TransactionAbortableError,
            "TRANSACTION_ABORTABLE",
        ),
        (ProducerFencedError("fenced"), InvalidProducerEpochError, "INVALID_PRODUCER_EPOCH"),
        (ConcurrentTransactionsError("completing"), NotEnoughReplicasError, "NOT_ENOUGH_REPLICAS"),
        (NotCoordinatorError("moved"), NotEnoughReplicasError, "NOT_ENOUGH_REPLICAS"),
        (CoordinatorNotAvailableError("none"), NotEnoughReplicasError, "NOT_ENOUGH_REPLICAS"),
        (NetworkError("unreachable"), NotEnoughReplicasError, "NOT_ENOUGH_REPLICAS"),
        (InvalidTxnStateError("nothing ongoing"), InvalidTxnStateError, "INVALID_TXN_STATE"),
    ],
)
def test_coordinator_answers_reach_the_producer_as_kafka_maps_them(
    answer: RaftkaError, refused: type[RaftkaError], code: str
) -> None:
    coordinator = FakeCoordinator()
    coordinator.error = answer
    verifier = TxnWriteVerifier(coordinator)
    with pytest.raises(refused) as info:
        run(check(verifier, batch(7, 1)))
    assert info.value.code_name == code
    assert "nothing was written" in info.value.message
    assert info.value.retriable == (code == "NOT_ENOUGH_REPLICAS")
    coordinator.error = None  # a refusal is not remembered: the next write asks again
    run(check(verifier, batch(7, 1)))
    assert len(coordinator.asked) == 2


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    coordinator = FakeCoordinator()
    verifier = TxnWriteVerifier(coordinator, max_entries=2)

    async def scenario() -> None:
        await check(verifier, batch(7, 1), partition=0)
        await check(verifier, batch(7, 1), partition=1)
        await check(verifier, batch(7, 1, sequence=1), partition=0)  # partition 0 used again
        await check(verifier, batch(7, 1), partition=2)  # drops partition 1
        assert len(verifier) == 2
        await check(verifier, batch(7, 1, sequence=1), partition=0)
        await check(verifier, batch(7, 1, sequence=1), partition=1)

    run(scenario())
    assert [a[3][1] for a in coordinator.asked] == [0, 1, 2, 1]


def test_concurrent_writes_of_a_producer_share_one_question() -> None:
    coordinator = FakeCoordinator()
    coordinator.gate.clear()
    verifier = TxnWriteVerifier(coordinator)

    async def scenario() -> None:
        writes = [asyncio.create_task(check(verifier, batch(7, 1, sequence=s))) for s in (0, 1)]
        # Both tasks ran their first step in the loop iteration where the first one asked.
        await until(lambda: len(coordinator.asked) == 1)
        coordinator.error = TransactionAbortableError("not in it")
        coordinator.gate.set()
        results = await asyncio.gather(*writes, return_exceptions=True)
        assert [type(r) for r in results] == [TransactionAbortableError] * 2

    run(scenario())
    assert len(coordinator.asked) == 1


class FakeTxnTopic:
    def __init__(self, count: int | None, leader: int) -> None:
        self.count, self.leader = count, leader

    def partition_count(self) -> int | None:
        return self.count

    def leader_of(self, partition: int) -> int:
        return self.leader


class LocalCoordinator:
    def __init__(self, missing: bool) -> None:
        self.missing = missing
        self.asked: list[Sequence[TopicPartition]] = []

    async def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Sequence[TopicPartition],
    ) -> list[TopicPartition]:
        self.asked.append(partitions)
        return list(partitions) if self.missing else []


def test_a_local_coordinator_is_asked_directly_and_a_missing_one_is_not_available() -> None:
    channels = BrokerChannels(MetadataImage)
    for missing in (False, True):
        local = LocalCoordinator(missing)
        transport = CoordinatorVerification(
            FakeTxnTopic(3, leader=1), channels, broker_id=1, local=local
        )
        if missing:
            with pytest.raises(TransactionAbortableError, match="events-4"):
                run(transport.verify(TID, 7, 1, ("events", 4)))
        else:
            run(transport.verify(TID, 7, 1, ("events", 4)))
        assert local.asked == [[("events", 4)]]
    for topic in (FakeTxnTopic(None, leader=1), FakeTxnTopic(3, leader=-1)):
        transport = CoordinatorVerification(
            topic, channels, broker_id=1, local=LocalCoordinator(False)
        )
        with pytest.raises(CoordinatorNotAvailableError, match=TID):
            run(transport.verify(TID, 7, 1, ("events", 4)))
    transport = CoordinatorVerification(
        FakeTxnTopic(3, leader=2), channels, broker_id=1, local=LocalCoordinator(False)
    )
    with pytest.raises(NetworkError, match="broker 2"):  # not in the (empty) image
        run(transport.verify(TID, 7, 1, ("events", 4)))
