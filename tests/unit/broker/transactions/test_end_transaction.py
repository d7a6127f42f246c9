"""EndTxn under KIP-890 (TV2): the epoch bump, retries, wrong states and epoch overflow."""

from __future__ import annotations

import pytest

from raftka.broker.transactions.state import TransactionMetadata, TxnState
from raftka.common.txn_errors import (
    ConcurrentTransactionsError,
    InvalidProducerIdMappingError,
    InvalidTxnStateError,
    ProducerFencedError,
)

from .support import COORDINATOR_EPOCH, TxnHarness


@pytest.mark.parametrize("committed", [True, False])
def test_ending_an_open_transaction_decides_with_the_bumped_epoch(
    h: TxnHarness, committed: bool
) -> None:
    pid = h.begun("t", ("a", 0), ("b", 1)).producer_id
    outcome = h.end(pid, 0, committed)
    assert (outcome.response.producer_id, outcome.response.producer_epoch) == (pid, 1)
    assert len(outcome.records) == 1
    (job,) = outcome.markers
    assert (job.transactional_id, job.producer_id, job.producer_epoch) == ("t", pid, 1)
    assert job.committed is committed and job.coordinator_epoch == COORDINATOR_EPOCH
    assert job.partitions == {("a", 0), ("b", 1)}
    meta = h.meta()
    want = TxnState.PREPARE_COMMIT if committed else TxnState.PREPARE_ABORT
    assert meta.state is want and meta.producer_epoch == 1 and meta.last_producer_epoch == 0
    h.finish(job)
    meta = h.meta()
    want = TxnState.COMPLETE_COMMIT if committed else TxnState.COMPLETE_ABORT
    assert meta.state is want and meta.partitions == frozenset() and meta.producer_epoch == 1


@pytest.mark.parametrize("committed", [True, False])
def test_a_retry_while_deciding_is_concurrent_and_the_opposite_is_refused(
    h: TxnHarness, committed: bool
) -> None:
    pid = h.begun().producer_id
    h.end(pid, 0, committed)
    records = len(h.log)
    with pytest.raises(ConcurrentTransactionsError):
        h.end(pid, 0, committed)
    with pytest.raises(InvalidTxnStateError, match="decided the other way"):
        h.end(pid, 0, not committed)
    assert len(h.log) == records


@pytest.mark.parametrize("committed", [True, False])
def test_a_retry_after_completion_gets_the_same_answer(h: TxnHarness, committed: bool) -> None:
    pid = h.begun().producer_id
    first = h.end(pid, 0, committed)
    h.finish(first.markers[0])
    records = len(h.log)
    again = h.end(pid, 0, committed)
    assert again.response == first.response and not again.records and not again.markers
    with pytest.raises(InvalidTxnStateError, match="decided the other way"):
        h.end(pid, 0, not committed)
    assert len(h.log) == records


def test_commit_with_nothing_open_is_refused(h: TxnHarness) -> None:
    pid = h.init().response.producer_id
    with pytest.raises(InvalidTxnStateError, match=r"no transaction open \(Empty\)"):
        h.end(pid, 0, True)
    h.add(pid, 0)
    h.finish(h.end(pid, 0, True).markers[0])
    with pytest.raises(InvalidTxnStateError, match=r"CompleteCommit"):
        h.end(pid, 1, True)  # the new epoch: not a retry, and nothing is open


def test_abort_with_nothing_open_bumps_and_completes_at_once(h: TxnHarness) -> None:
    pid = h.init().response.producer_id
    outcome = h.end(pid, 0, False)
    assert (outcome.response.producer_id, outcome.response.producer_epoch) == (pid, 1)
    assert not outcome.markers and len(outcome.records) == 1
    meta = h.meta()
    assert meta.state is TxnState.COMPLETE_ABORT and meta.producer_epoch == 1
    assert h.end(pid, 0, False).response == outcome.response  # its retry
    assert h.end(pid, 1, False).response.producer_epoch == 2  # a new abort bumps again


def test_wrong_producers_are_refused(h: TxnHarness) -> None:
    with pytest.raises(InvalidProducerIdMappingError):
        h.end(1, 0, True, tid="nobody")
    pid = h.begun().producer_id
    with pytest.raises(InvalidProducerIdMappingError):
        h.end(pid + 7, 0, True)
    for epoch in (1, -1):
        with pytest.raises(ProducerFencedError):
            h.end(pid, epoch, True)
    assert h.meta().state is TxnState.ONGOING


def test_a_timed_out_transaction_fences_its_producer(h: TxnHarness) -> None:
    pid = h.begun().producer_id
    h.now_ms += h.config.default_timeout_ms
    h.finish(h.tick().markers[0])
    for committed in (True, False):
        with pytest.raises(ProducerFencedError, match="after its timeout"):
            h.end(pid, 0, committed)


def test_ending_at_the_last_epoch_moves_to_a_fresh_producer_id(h: TxnHarness) -> None:
    h.seed("t", TransactionMetadata(77, 32_766, TxnState.EMPTY, 60_000))
    h.add(77, 32_766, ("a", 0))
    outcome = h.end(77, 32_766, True)
    assert (outcome.response.producer_id, outcome.response.producer_epoch) == (5_000, 0)
    (job,) = outcome.markers
    assert (job.producer_id, job.producer_epoch) == (77, 32_767)  # the markers' epoch
    meta = h.meta()
    assert meta.next_producer_id == 5_000 and meta.producer_id == 77
    with pytest.raises(ConcurrentTransactionsError):  # the new identity, still deciding
        h.add(5_000, 0, ("b", 0))
    with pytest.raises(ConcurrentTransactionsError):  # a retry of the old one
        h.end(77, 32_766, True)
    h.finish(job)
    meta = h.meta()
    assert (meta.producer_id, meta.producer_epoch, meta.previous_producer_id) == (5_000, 0, 77)
    assert h.end(77, 32_766, True).response == outcome.response  # retried after completion
    with pytest.raises(ProducerFencedError):
        h.add(77, 32_767)  # no producer is ever given the markers' epoch
    h.add(5_000, 0, ("b", 0))
    assert h.meta().state is TxnState.ONGOING


def test_abort_with_nothing_open_at_the_last_epoch_moves_too(h: TxnHarness) -> None:
    h.seed("t", TransactionMetadata(77, 32_766, TxnState.EMPTY, 60_000))
    outcome = h.end(77, 32_766, False)
    assert (outcome.response.producer_id, outcome.response.producer_epoch) == (5_000, 0)
    meta = h.meta()
    assert meta.state is TxnState.COMPLETE_ABORT and meta.previous_producer_id == 77
    assert h.end(77, 32_766, False).response == outcome.response


def test_a_coordinator_abort_at_the_last_epoch_leaves_init_to_move_on(h: TxnHarness) -> None:
    h.seed("t", TransactionMetadata(77, 32_766, TxnState.EMPTY, 60_000))
    h.add(77, 32_766, ("a", 0))
    h.now_ms += 60_000
    (job,) = h.tick().markers
    assert job.producer_epoch == 32_767
    h.finish(job)
    with pytest.raises(ProducerFencedError):
        h.add(77, 32_767)
    result = h.init().response
    assert (result.producer_id, result.producer_epoch) == (5_000, 0)
