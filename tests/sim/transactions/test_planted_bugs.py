"""The simulation's checker catches broken coordinators: each variant below plants one bug in
the shard, and some of a few seeds must fail on a transaction invariant (the replay comparison
is off, so it is not what catches them)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import pytest

from raftka.broker.transactions import transitions
from raftka.broker.transactions.api import (
    InitProducerIdResult,
    MarkerJob,
    TopicPartition,
    TxnOutcome,
)
from raftka.broker.transactions.shard import TransactionShard
from raftka.broker.transactions.state import TransactionMetadata, TxnState

from .simulation import TxnSimulation

SEEDS = range(6)


class SkipsThePrepareRecord(TransactionShard):
    """Decides in memory and sends the markers, but never makes the decision durable: a new
    coordinator does not know it and may decide the other way."""

    def end_transaction(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        *,
        now_ms: int,
        fresh_producer_id: Callable[[], int],
        bump_epoch: bool = True,
    ) -> TxnOutcome[InitProducerIdResult]:
        outcome = super().end_transaction(
            transactional_id,
            producer_id,
            producer_epoch,
            committed,
            now_ms=now_ms,
            fresh_producer_id=fresh_producer_id,
            bump_epoch=bump_epoch,
        )
        if outcome.markers:
            return dataclasses.replace(outcome, records=())
        return outcome


class ForgetsDecisionsOnLoad(TransactionShard):
    """A new coordinator does not resume the markers of the decisions it loads."""

    def loaded(self, now_ms: int) -> list[MarkerJob]:
        super().loaded(now_ms)
        return []


class TimeoutAbortWithoutBump(TransactionShard):
    """Aborts timed-out transactions at the producer's own epoch: a late write of the aborted
    transaction is accepted after the marker and opens a transaction no one will close."""

    def tick(self, *, now_ms: int) -> TxnOutcome[None]:
        real = transitions.abort_started

        def no_bump(meta: TransactionMetadata, now: int) -> TransactionMetadata:
            return dataclasses.replace(real(meta, now), producer_epoch=meta.producer_epoch)

        transitions.abort_started = no_bump  # type: ignore[assignment]
        try:
            return super().tick(now_ms=now_ms)
        finally:
            transitions.abort_started = real


class InitLeavesTheOpenTransaction(TransactionShard):
    """InitProducerId bumps the epoch of an id with an open transaction without aborting it."""

    def init_producer_id(
        self,
        transactional_id: str,
        *,
        timeout_ms: int,
        now_ms: int,
        fresh_producer_id: Callable[[], int],
        expected: tuple[int, int] | None = None,
    ) -> TxnOutcome[InitProducerIdResult]:
        meta = self.store.get(transactional_id)
        if meta is not None and meta.state is TxnState.ONGOING:
            self.store.ids[transactional_id] = meta.evolve(state=TxnState.EMPTY)
        return super().init_producer_id(
            transactional_id,
            timeout_ms=timeout_ms,
            now_ms=now_ms,
            fresh_producer_id=fresh_producer_id,
            expected=expected,
        )


class AcceptsStaleEpochs(TransactionShard):
    """Checks the producer id of an add but not its epoch: a zombie keeps adding."""

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Sequence[TopicPartition],
        *,
        now_ms: int,
    ) -> TxnOutcome[None]:
        meta = self.store.get(transactional_id)
        if meta is not None and meta.producer_id == producer_id:
            producer_epoch = meta.producer_epoch
        return super().add_partitions(
            transactional_id, producer_id, producer_epoch, partitions, now_ms=now_ms
        )


@pytest.mark.parametrize(
    ("variant", "words"),
    [
        (SkipsThePrepareRecord, "both committed and aborted|decided twice|not in a transaction"),
        (ForgetsDecisionsOnLoad, "at quiescence|has markers"),
        (TimeoutAbortWithoutBump, "not in a transaction|refused|decided twice"),
        (InitLeavesTheOpenTransaction, "not in a transaction"),
        (AcceptsStaleEpochs, "fenced producer .* added"),
    ],
    ids=lambda v: getattr(v, "__name__", "words"),
)
def test_the_checker_catches_a_planted_bug(variant: type[TransactionShard], words: str) -> None:
    for seed in SEEDS:
        try:
            TxnSimulation(seed, factory=variant, check_replay=False).run(steps=400)
        except AssertionError as e:
            assert re.search(words, str(e)), f"caught, but not by the invariant expected: {e}"
            return
    pytest.fail(f"{variant.__name__} went unnoticed over seeds {list(SEEDS)}")
