"""InitProducerId: new ids, bumps, overflow, fencing an open transaction, refusals."""

from __future__ import annotations

import pytest

from raftka.broker.transactions.api import TxnConfig
from raftka.broker.transactions.shard import TransactionShard
from raftka.broker.transactions.state import TransactionMetadata, TxnState
from raftka.common.errors import InvalidConfigError, InvalidRequestError
from raftka.common.txn_errors import (
    ConcurrentTransactionsError,
    InvalidTransactionTimeoutError,
    ProducerFencedError,
)

from .support import COORDINATOR_EPOCH, TxnHarness


def test_a_new_id_gets_a_fresh_producer_id_at_epoch_0_and_the_default_timeout(
    h: TxnHarness,
) -> None:
    outcome = h.init("t", timeout_ms=0)
    assert (outcome.response.producer_id, outcome.response.producer_epoch) == (5_000, 0)
    assert len(outcome.records) == 1 and not outcome.markers and outcome.error is None
    meta = h.meta()
    assert meta.state is TxnState.EMPTY and meta.timeout_ms == h.config.default_timeout_ms
    assert meta.last_update_ms == h.now_ms


def test_the_timeout_asked_for_is_kept_up_to_the_maximum(h: TxnHarness) -> None:
    h.init("t", timeout_ms=h.config.max_timeout_ms)
    assert h.meta().timeout_ms == h.config.max_timeout_ms
    h.init("t", timeout_ms=1_234)  # a known id takes the new timeout too
    assert h.meta().timeout_ms == 1_234


@pytest.mark.parametrize("timeout_ms", [-1, 900_001])
def test_a_timeout_outside_the_range_is_refused(h: TxnHarness, timeout_ms: int) -> None:
    with pytest.raises(InvalidTransactionTimeoutError, match=r"outside 1\.\.900000"):
        h.init("t", timeout_ms=timeout_ms)
    assert h.shard.transactional_ids() == [] and not h.log


@pytest.mark.parametrize("tid", ["", "é" * 125, "x" * 250])
def test_a_transactional_id_of_0_or_more_than_249_bytes_is_refused(h: TxnHarness, tid: str) -> None:
    with pytest.raises(InvalidRequestError, match="transactional_id"):
        h.init(tid)


def test_249_bytes_is_fine(h: TxnHarness) -> None:
    h.init("é" * 124 + "x")
    assert len(h.shard.transactional_ids()) == 1


def test_a_known_idle_id_gets_the_next_epoch_of_the_same_producer_id(h: TxnHarness) -> None:
    first = h.init().response
    second = h.init().response
    assert second.producer_id == first.producer_id and second.producer_epoch == 1
    # From CompleteCommit as well: the epoch after the EndTxn bump.
    h.add(second.producer_id, 1)
    end = h.end(second.producer_id, 1, True)
    h.finish(end.markers[0])
    assert h.meta().state is TxnState.COMPLETE_COMMIT
    third = h.init().response
    assert (third.producer_id, third.producer_epoch) == (first.producer_id, 3)
    assert h.meta().state is TxnState.EMPTY and h.meta().partitions == frozenset()


def test_past_the_last_epoch_the_id_moves_to_a_fresh_producer_id(h: TxnHarness) -> None:
    h.seed("t", TransactionMetadata(77, 32_766, TxnState.COMPLETE_ABORT, 1_000))
    result = h.init().response
    assert (result.producer_id, result.producer_epoch) == (5_000, 0)
    meta = h.meta()
    assert meta.previous_producer_id == 77 and meta.state is TxnState.EMPTY
    # The old producer id is now a fenced one, not an unknown one.
    with pytest.raises(ProducerFencedError):
        h.add(77, 32_766)


def test_init_on_an_open_transaction_aborts_it_and_answers_concurrent(h: TxnHarness) -> None:
    first = h.begun("t", ("a", 0), ("b", 1))
    outcome = h.init()
    assert isinstance(outcome.error, ConcurrentTransactionsError)
    assert "being aborted" in str(outcome.error)
    (job,) = outcome.markers
    assert (job.producer_id, job.producer_epoch, job.committed) == (first.producer_id, 1, False)
    assert job.partitions == {("a", 0), ("b", 1)} and job.coordinator_epoch == COORDINATOR_EPOCH
    meta = h.meta()
    assert meta.state is TxnState.PREPARE_ABORT and meta.producer_epoch == 1
    assert len(outcome.records) == 1
    # While the markers are written, a retry is refused and writes nothing.
    with pytest.raises(ConcurrentTransactionsError):
        h.init()
    # The old instance is fenced: it can neither add nor end (not even as an EndTxn retry).
    with pytest.raises(ProducerFencedError):
        h.add(first.producer_id, 0, ("c", 0))
    with pytest.raises(ProducerFencedError):
        h.end(first.producer_id, 0, False)
    h.finish(job)
    assert h.meta().state is TxnState.COMPLETE_ABORT
    retry = h.init().response
    assert (retry.producer_id, retry.producer_epoch) == (first.producer_id, 2)
    with pytest.raises(ProducerFencedError):
        h.end(first.producer_id, 0, False)


@pytest.mark.parametrize("committed", [True, False])
def test_init_while_a_decision_completes_is_concurrent_and_writes_nothing(
    h: TxnHarness, committed: bool
) -> None:
    first = h.begun()
    h.end(first.producer_id, 0, committed)
    records = len(h.log)
    with pytest.raises(ConcurrentTransactionsError, match="retry shortly"):
        h.init()
    assert len(h.log) == records


def test_a_default_timeout_above_the_maximum_is_a_config_error() -> None:
    with pytest.raises(InvalidConfigError, match="default timeout"):
        TransactionShard(0, 0, TxnConfig(max_timeout_ms=1_000, default_timeout_ms=2_000))
