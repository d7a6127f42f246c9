"""InitProducerId naming the producer's current id and epoch (KIP-360): the epoch of that very
producer is bumped, a stale one is fenced, a lost answer's retry is answered again."""

from __future__ import annotations

import pytest

from raftka.broker.transactions.api import InitProducerIdResult, TxnOutcome
from raftka.broker.transactions.state import TransactionMetadata, TxnState
from raftka.common.txn_errors import (
    ConcurrentTransactionsError,
    InvalidProducerIdMappingError,
    ProducerFencedError,
)

from .support import TxnHarness


def named(h: TxnHarness, pid: int, epoch: int) -> TxnOutcome[InitProducerIdResult]:
    outcome = h.shard.init_producer_id(
        "t", timeout_ms=0, now_ms=h.now_ms, fresh_producer_id=h.fresh, expected=(pid, epoch)
    )
    h._take(outcome)  # type: ignore[arg-type]
    return outcome


def test_the_named_producer_is_bumped_and_a_retry_is_answered_again(h: TxnHarness) -> None:
    pid = h.init().response.producer_id
    bumped = named(h, pid, 0)
    assert (bumped.response.producer_id, bumped.response.producer_epoch) == (pid, 1)
    records = len(h.log)
    again = named(h, pid, 0)
    assert again.response == bumped.response and len(h.log) == records
    assert named(h, pid, 1).response.producer_epoch == 2


def test_a_stale_or_foreign_producer_is_refused_and_nothing_changes(h: TxnHarness) -> None:
    pid = h.init().response.producer_id
    named(h, pid, 0)
    named(h, pid, 1)
    records = len(h.log)
    with pytest.raises(ProducerFencedError):
        named(h, pid, 0)  # no longer the last call's epoch
    with pytest.raises(InvalidProducerIdMappingError):
        named(h, pid + 1, 2)
    assert len(h.log) == records and h.meta().producer_epoch == 2


def test_after_a_version_1_commit_naming_the_producer_bumps_it(h: TxnHarness) -> None:
    pid = h.begun().producer_id
    h.finish(h.end(pid, 0, True, bump_epoch=False).markers[0])
    assert h.meta().last_producer_epoch == 0  # the EndTxn's, not an InitProducerId's
    assert named(h, pid, 0).response.producer_epoch == 1
    assert h.meta().state is TxnState.EMPTY


def test_while_completing_it_is_concurrent(h: TxnHarness) -> None:
    pid = h.begun().producer_id
    h.end(pid, 0, False, bump_epoch=False)
    with pytest.raises(ConcurrentTransactionsError):
        named(h, pid, 0)


def test_an_overflow_moves_on_and_the_retry_names_the_old_id(h: TxnHarness) -> None:
    h.seed("t", TransactionMetadata(42, 32_766, TxnState.EMPTY, 60_000))
    fresh = named(h, 42, 32_766).response
    assert fresh.producer_id != 42 and fresh.producer_epoch == 0
    assert named(h, 42, 32_766).response == fresh
