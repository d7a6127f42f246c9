"""EndTxn in transaction version 1 (``bump_epoch=False``: Kafka clients' EndTxn before v5,
librdkafka's): the producer keeps its epoch across transactions."""

from __future__ import annotations

import pytest

from raftka.broker.transactions.state import TxnState
from raftka.common.txn_errors import (
    ConcurrentTransactionsError,
    InvalidTxnStateError,
    ProducerFencedError,
)

from .support import TxnHarness


@pytest.mark.parametrize("committed", [True, False])
def test_the_decision_keeps_the_epoch_and_the_markers_carry_it(
    h: TxnHarness, committed: bool
) -> None:
    pid = h.begun("t", ("a", 0), ("b", 1)).producer_id
    outcome = h.end(pid, 0, committed, bump_epoch=False)
    assert (outcome.response.producer_id, outcome.response.producer_epoch) == (pid, 0)
    (job,) = outcome.markers
    assert (job.producer_id, job.producer_epoch, job.committed) == (pid, 0, committed)
    assert job.partitions == {("a", 0), ("b", 1)}
    want = TxnState.PREPARE_COMMIT if committed else TxnState.PREPARE_ABORT
    assert h.meta().state is want and h.meta().producer_epoch == 0
    h.finish(job)
    meta = h.meta()
    assert meta.state is (TxnState.COMPLETE_COMMIT if committed else TxnState.COMPLETE_ABORT)
    assert (meta.producer_id, meta.producer_epoch) == (pid, 0)


def test_the_next_transaction_runs_at_the_same_epoch(h: TxnHarness) -> None:
    pid = h.begun().producer_id
    h.finish(h.end(pid, 0, True, bump_epoch=False).markers[0])
    h.add(pid, 0, ("c", 2))
    meta = h.meta()
    assert meta.state is TxnState.ONGOING and meta.partitions == {("c", 2)}
    (job,) = h.end(pid, 0, False, bump_epoch=False).markers
    assert (job.producer_epoch, job.partitions) == (0, frozenset({("c", 2)}))


def test_retries_while_deciding_and_after_completion(h: TxnHarness) -> None:
    pid = h.begun().producer_id
    first = h.end(pid, 0, True, bump_epoch=False)
    with pytest.raises(ConcurrentTransactionsError):
        h.end(pid, 0, True, bump_epoch=False)
    with pytest.raises(ConcurrentTransactionsError):
        h.add(pid, 0, ("b", 0))
    h.finish(first.markers[0])
    records = len(h.log)
    again = h.end(pid, 0, True, bump_epoch=False)
    assert again.response == first.response and not again.records and not again.markers
    with pytest.raises(InvalidTxnStateError, match="decided the other way"):
        h.end(pid, 0, False, bump_epoch=False)
    assert len(h.log) == records


def test_an_abort_with_nothing_open_changes_nothing(h: TxnHarness) -> None:
    pid = h.init().response.producer_id
    records = len(h.log)
    outcome = h.end(pid, 0, False, bump_epoch=False)
    assert (outcome.response.producer_id, outcome.response.producer_epoch) == (pid, 0)
    assert len(h.log) == records and h.meta().state is TxnState.EMPTY
    with pytest.raises(InvalidTxnStateError):
        h.end(pid, 0, True, bump_epoch=False)


def test_a_new_instance_still_fences_the_old_epoch(h: TxnHarness) -> None:
    pid = h.begun().producer_id
    h.finish(h.end(pid, 0, True, bump_epoch=False).markers[0])
    assert h.init().response.producer_epoch == 1
    with pytest.raises(ProducerFencedError):
        h.add(pid, 0)
    with pytest.raises(ProducerFencedError):
        h.end(pid, 0, True, bump_epoch=False)
