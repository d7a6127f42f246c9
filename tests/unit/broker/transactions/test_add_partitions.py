"""AddPartitionsToTxn and check_producer: beginning and extending a transaction, fencing."""

from __future__ import annotations

import pytest

from raftka.broker.transactions.api import TxnConfig
from raftka.broker.transactions.state import TxnState
from raftka.common.errors import InvalidRequestError
from raftka.common.txn_errors import (
    ConcurrentTransactionsError,
    InvalidProducerIdMappingError,
    InvalidTxnStateError,
    ProducerFencedError,
    TransactionAbortableError,
)

from .support import TxnHarness


def test_the_first_add_begins_the_transaction_now(h: TxnHarness) -> None:
    pid = h.init().response.producer_id
    h.now_ms += 50
    outcome = h.add(pid, 0, ("a", 0), ("b", 2))
    assert len(outcome.records) == 1
    meta = h.meta()
    assert meta.state is TxnState.ONGOING and meta.start_time_ms == h.now_ms
    assert meta.partitions == {("a", 0), ("b", 2)}


def test_more_adds_extend_it_and_a_repeat_writes_nothing(h: TxnHarness) -> None:
    pid = h.begun("t", ("a", 0)).producer_id
    started = h.meta().start_time_ms
    h.now_ms += 10
    h.add(pid, 0, ("a", 1))
    assert h.meta().partitions == {("a", 0), ("a", 1)}
    assert h.meta().start_time_ms == started
    assert not h.add(pid, 0, ("a", 1), ("a", 0)).records


def test_after_a_completed_transaction_the_next_one_begins_afresh(h: TxnHarness) -> None:
    pid = h.begun("t", ("a", 0)).producer_id
    end = h.end(pid, 0, True)
    h.finish(end.markers[0])
    h.now_ms += 99
    h.add(pid, 1, ("b", 0))
    meta = h.meta()
    assert meta.state is TxnState.ONGOING and meta.partitions == {("b", 0)}
    assert meta.start_time_ms == h.now_ms


def test_unknown_id_and_other_producer_id_are_mapping_errors(h: TxnHarness) -> None:
    with pytest.raises(InvalidProducerIdMappingError, match="not known"):
        h.add(1, 0, tid="nobody")
    pid = h.init().response.producer_id
    with pytest.raises(InvalidProducerIdMappingError, match="call InitProducerId"):
        h.add(pid + 1, 0)


@pytest.mark.parametrize("epoch", [0, 2])
def test_a_lower_or_higher_epoch_is_fenced(h: TxnHarness, epoch: int) -> None:
    pid = h.init().response.producer_id
    h.init()  # epoch 1 now
    with pytest.raises(ProducerFencedError, match="is fenced"):
        h.add(pid, epoch)
    assert h.meta().state is TxnState.EMPTY


def test_adding_while_the_decision_completes_is_concurrent(h: TxnHarness) -> None:
    pid = h.begun().producer_id
    answer = h.end(pid, 0, True).response
    with pytest.raises(ConcurrentTransactionsError):
        h.add(answer.producer_id, answer.producer_epoch, ("b", 0))
    with pytest.raises(ProducerFencedError):  # the pre-bump epoch is stale for adds
        h.add(pid, 0, ("b", 0))


def test_more_partitions_than_the_maximum_are_refused() -> None:
    h = TxnHarness(TxnConfig(max_partitions_per_txn=3))
    pid = h.begun("t", ("a", 0), ("a", 1)).producer_id
    with pytest.raises(InvalidRequestError, match="at most 3"):
        h.add(pid, 0, ("a", 2), ("a", 3))
    assert h.meta().partitions == {("a", 0), ("a", 1)}
    h.add(pid, 0, ("a", 2))
    h.assert_replay_equal()


@pytest.mark.parametrize(
    ("partitions", "words"),
    [([], "no partitions"), ([("a", -1)], "negative"), ([("", 0)], "topic name")],
)
def test_bad_partition_lists_are_refused(
    h: TxnHarness, partitions: list[tuple[str, int]], words: str
) -> None:
    pid = h.init().response.producer_id
    with pytest.raises(InvalidRequestError, match=words):
        h.shard.add_partitions("t", pid, 0, partitions, now_ms=h.now_ms)


def test_check_producer_accepts_only_the_current_ongoing_transaction(h: TxnHarness) -> None:
    with pytest.raises(InvalidProducerIdMappingError):
        h.shard.check_producer("t", 1, 0)
    pid = h.init().response.producer_id
    with pytest.raises(InvalidTxnStateError, match="no transaction open"):
        h.shard.check_producer("t", pid, 0)
    h.add(pid, 0, ("a", 0))
    h.shard.check_producer("t", pid, 0)
    h.shard.check_producer("t", pid, 0, partition=("a", 0))
    with pytest.raises(TransactionAbortableError, match="a-1 is not in the transaction"):
        h.shard.check_producer("t", pid, 0, partition=("a", 1))
    with pytest.raises(ProducerFencedError):
        h.shard.check_producer("t", pid, 1)
    answer = h.end(pid, 0, False).response
    with pytest.raises(ConcurrentTransactionsError):
        h.shard.check_producer("t", answer.producer_id, answer.producer_epoch)
