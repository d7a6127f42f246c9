"""A transaction shard under a virtual clock, with short helpers and a replay check."""

from __future__ import annotations

import itertools

from raftka.broker.transactions.api import (
    InitProducerIdResult,
    MarkerJob,
    StoredRecord,
    TopicPartition,
    TxnConfig,
    TxnOutcome,
)
from raftka.broker.transactions.records import TxnRecord, encode
from raftka.broker.transactions.shard import TransactionShard
from raftka.broker.transactions.state import TransactionMetadata

COORDINATOR_EPOCH = 3


class TxnHarness:
    def __init__(self, config: TxnConfig | None = None) -> None:
        self.config = config or TxnConfig()
        self.shard = TransactionShard(0, COORDINATOR_EPOCH, self.config)
        self.now_ms = 1_000_000
        self._ids = itertools.count(5_000)
        self.log: list[StoredRecord] = []
        self.jobs: list[MarkerJob] = []

    def fresh(self) -> int:
        return next(self._ids)

    def _take(self, outcome: TxnOutcome[object]) -> None:
        self.log.extend(outcome.records)
        self.jobs.extend(outcome.markers)

    def seed(self, transactional_id: str, meta: TransactionMetadata) -> None:
        """Puts ``meta`` in the log and the shard, as if written long ago."""
        record = encode(TxnRecord(transactional_id, meta))
        self.log.append(record)
        self.shard.replay(record)

    def init(self, tid: str = "t", timeout_ms: int = 0) -> TxnOutcome[InitProducerIdResult]:
        outcome = self.shard.init_producer_id(
            tid, timeout_ms=timeout_ms, now_ms=self.now_ms, fresh_producer_id=self.fresh
        )
        self._take(outcome)  # type: ignore[arg-type]
        return outcome

    def add(
        self, pid: int, epoch: int, *partitions: TopicPartition, tid: str = "t"
    ) -> TxnOutcome[None]:
        outcome = self.shard.add_partitions(
            tid, pid, epoch, list(partitions or [("a", 0)]), now_ms=self.now_ms
        )
        self._take(outcome)  # type: ignore[arg-type]
        return outcome

    def end(
        self, pid: int, epoch: int, committed: bool, tid: str = "t", *, bump_epoch: bool = True
    ) -> TxnOutcome[InitProducerIdResult]:
        outcome = self.shard.end_transaction(
            tid,
            pid,
            epoch,
            committed,
            now_ms=self.now_ms,
            fresh_producer_id=self.fresh,
            bump_epoch=bump_epoch,
        )
        self._take(outcome)  # type: ignore[arg-type]
        return outcome

    def finish(self, job: MarkerJob) -> TxnOutcome[None]:
        outcome = self.shard.markers_written(job, now_ms=self.now_ms)
        self._take(outcome)  # type: ignore[arg-type]
        return outcome

    def tick(self) -> TxnOutcome[None]:
        outcome = self.shard.tick(now_ms=self.now_ms)
        self._take(outcome)  # type: ignore[arg-type]
        return outcome

    def meta(self, tid: str = "t") -> TransactionMetadata:
        meta = self.shard.store.get(tid)
        assert meta is not None, tid
        return meta

    def begun(self, tid: str = "t", *partitions: TopicPartition) -> InitProducerIdResult:
        """A new id with a transaction open on ``partitions`` (a-0 by default)."""
        result = self.init(tid).response
        self.add(result.producer_id, result.producer_epoch, *partitions, tid=tid)
        return result

    def replayed(self, coordinator_epoch: int = COORDINATOR_EPOCH) -> TransactionShard:
        fresh = TransactionShard(0, coordinator_epoch, self.config)
        for record in self.log:
            fresh.replay(record)
        return fresh

    def assert_replay_equal(self) -> None:
        assert self.replayed().store.ids == self.shard.store.ids
