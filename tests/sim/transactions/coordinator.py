"""The coordinator side of the simulation: a shard, the records it made durable, and its marker
jobs with the partitions still to mark, as the runtime would hold them; failover rebuilds the
shard from the records with the next coordinator epoch, and what the old one was still sending
keeps arriving for a while (a zombie coordinator)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from raftka.broker.transactions.api import MarkerJob, StoredRecord, TxnConfig, TxnOutcome
from raftka.broker.transactions.shard import TransactionShard

from .partitions import TP

ShardFactory = Callable[[int, int, TxnConfig], TransactionShard]


class DecisionObserver(Protocol):
    def decided(self, job: MarkerJob, *, by_coordinator: bool) -> None: ...


class SimCoordinator:
    def __init__(
        self, factory: ShardFactory, config: TxnConfig, observer: DecisionObserver
    ) -> None:
        self.factory = factory
        self.config = config
        self.observer = observer
        self.epoch = 1
        self.log: list[StoredRecord] = []
        self.shard = factory(0, self.epoch, config)
        self.shard.loaded(0)
        #: The live coordinator's jobs -> partitions not yet marked.
        self.jobs: dict[MarkerJob, set[TP]] = {}
        #: Deliveries an old coordinator still has in flight.
        self.zombie_deliveries: list[tuple[MarkerJob, TP]] = []
        self.failovers = 0

    def take(
        self,
        outcome: TxnOutcome[object],
        *,
        durable: bool,
        now_ms: int,
        by_coordinator: bool = False,
    ) -> bool:
        """The runtime appends the records; if that fails (``durable`` False) it drops the
        shard and loads it again (here: a failover), and nothing of the outcome happened."""
        if not durable and outcome.records:
            self.failover(now_ms)
            return False
        self.log.extend(outcome.records)
        for job in outcome.markers:
            self.start(job, by_coordinator=by_coordinator)
        return True

    def start(self, job: MarkerJob, *, by_coordinator: bool = False) -> None:
        """``by_coordinator``: a decision the shard took itself (an init fencing, a timeout),
        which fences the producer instance of the aborted transaction."""
        self.observer.decided(job, by_coordinator=by_coordinator)
        self.jobs[job] = set(job.partitions)

    def failover(self, now_ms: int, *, compacted: bool = False) -> None:
        for job, left in self.jobs.items():
            self.zombie_deliveries.extend((job, tp) for tp in sorted(left))
        self.jobs = {}
        self.failovers += 1
        self.epoch += 1
        self.shard = self.factory(0, self.epoch, self.config)
        for record in self.compacted() if compacted else self.log:
            self.shard.replay(record)
        for job in self.shard.loaded(now_ms):
            assert job.coordinator_epoch == self.epoch, job
            self.start(job)

    def compacted(self) -> list[StoredRecord]:
        """What the cleaner leaves: the latest record per key, and no tombstones."""
        latest = {r.key: i for i, r in enumerate(self.log)}
        return [r for i, r in enumerate(self.log) if latest[r.key] == i and r.value is not None]

    def replayed(self) -> TransactionShard:
        shard = TransactionShard(0, self.epoch, self.config)
        for record in self.log:
            shard.replay(record)
        return shard
