"""A seeded run of the transaction coordinator with simulated producers and partitions and a
virtual clock.

One seed determines the whole run. Producers init, add partitions, write and commit or abort;
their answers get lost (they retry), they pause past their timeout, new instances of the same
transactional id start while the old one goes on (zombies). The coordinator fails over (a new
shard loaded from its records with the next coordinator epoch, which resumes the markers of
every decision; the old one's deliveries keep arriving for a while) and loses appends (the
runtime reloads). Marker deliveries are lost, duplicated, or fail on a partition-leader change
and are retried.

After every event: no transaction is both committed and aborted (by the coordinator or on any
partition); every open transaction on a partition (what holds its LSO back) and every accepted
write belongs to a transaction the coordinator holds Ongoing at that epoch, or has decided and
not yet marked there; no fenced instance ever gets a successful add or end; a decision is
completed only once every partition has its marker. At quiescence (every marker job run to the
end, every open transaction timed out): every decision is marked on every partition it added,
no LSO is held back, every write a producer saw committed is committed, and a shard replayed
from the records equals the live one.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from raftka.broker.transactions.api import MarkerJob, TxnConfig, TxnOutcome
from raftka.broker.transactions.records import TxnRecord, encode
from raftka.broker.transactions.shard import TransactionShard
from raftka.broker.transactions.state import TransactionMetadata, TxnState
from raftka.common.txn_errors import (
    ConcurrentTransactionsError,
    InvalidProducerIdMappingError,
    InvalidTxnStateError,
    ProducerFencedError,
)

from .coordinator import ShardFactory, SimCoordinator
from .invariants import Decision, check_backed, check_open_transactions, check_quiescent
from .partitions import NONE, TP, SimPartition
from .producers import Phase, SimProducer

STEP_MS = 100
TIMEOUT_MS = 3_000
TOPICS = {"a": 3, "b": 2}
TIDS = ("t0", "t1", "t2", "t3")
#: An id that starts six epochs before the last, so runs go through the producer id change.
OVERFLOW_TID = "t-old"
CONFIG = TxnConfig(max_timeout_ms=10_000, default_timeout_ms=TIMEOUT_MS, id_expiration_ms=30_000)


@dataclass(frozen=True, slots=True)
class SimSummary:
    seed: int
    commits: int
    aborts: int
    decisions: int
    failovers: int
    fenced_refusals: int  # writes of fenced instances the partitions refused
    fenced_calls: int  # adds and ends of fenced instances the coordinator refused
    overflowed: bool


class TxnSimulation:
    def __init__(
        self,
        seed: int,
        *,
        factory: ShardFactory = TransactionShard,
        check_replay: bool = True,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed * 7_919 + 13)
        self.check_replay_enabled = check_replay
        self.now_ms = 0
        self.partitions = {
            (t, p): SimPartition((t, p)) for t, n in TOPICS.items() for p in range(n)
        }
        self.decisions: dict[tuple[int, int], Decision] = {}
        self.pid_tid: dict[int, str] = {}
        self.producers: list[SimProducer] = []
        self.writes: list[tuple[TP, int, int]] = []  # (partition, offset, producer id)
        self.expected: list[tuple[TP, int, int, bool]] = []  # writes a producer saw end
        self._ids = itertools.count(1_000)
        self._calling: str = ""
        self._serial = 0
        self.commits = self.aborts = self.fenced_refusals = self.fenced_calls = 0
        self.coordinator = SimCoordinator(factory, CONFIG, self)
        old = TransactionMetadata(
            producer_id=self.fresh_for(OVERFLOW_TID),
            producer_epoch=32_760,
            state=TxnState.COMPLETE_COMMIT,
            timeout_ms=TIMEOUT_MS,
        )
        record = encode(TxnRecord(OVERFLOW_TID, old))
        self.coordinator.log.append(record)
        self.coordinator.shard.replay(record)
        self.first_overflow_pid = old.producer_id
        for tid in (*TIDS, OVERFLOW_TID):
            self.spawn(tid)

    # ---- plumbing ----

    def fresh_for(self, tid: str) -> int:
        pid = next(self._ids)
        self.pid_tid[pid] = tid
        return pid

    def fresh(self) -> int:
        return self.fresh_for(self._calling)

    @property
    def shard(self) -> TransactionShard:
        return self.coordinator.shard

    def durable(self) -> bool:
        return self.rng.random() > 0.03

    def lost(self) -> bool:
        return self.rng.random() < 0.08

    def retry(self, p: SimProducer) -> None:
        p.next_ms = self.now_ms + self.rng.choice((100, 200, 500))

    def take(self, outcome: TxnOutcome[object], *, by_coordinator: bool = False) -> bool:
        return self.coordinator.take(
            outcome, durable=self.durable(), now_ms=self.now_ms, by_coordinator=by_coordinator
        )

    def spawn(self, tid: str, delay_ms: int = 0) -> SimProducer:
        self._serial += 1
        p = SimProducer(tid, self._serial, next_ms=self.now_ms + delay_ms)
        self.producers.append(p)
        return p

    def die(self, p: SimProducer) -> None:
        p.phase = Phase.DEAD
        if not any(q.tid == p.tid and q.phase is not Phase.DEAD for q in self.producers):
            self.spawn(p.tid, delay_ms=500)

    # ---- the coordinator's observer ----

    def decided(self, job: MarkerJob, *, by_coordinator: bool) -> None:
        key = (job.producer_id, job.producer_epoch)
        decision = Decision(job.committed, job.partitions)
        prior = self.decisions.get(key)
        assert prior is None or prior == decision, (
            f"transaction of producer {key} decided twice, differently: {prior} then {decision}"
        )
        self.decisions[key] = decision
        if by_coordinator:
            for p in self.producers:
                if p.tid == job.transactional_id and (p.producer_id, p.epoch) == (
                    job.producer_id,
                    job.producer_epoch - 1,
                ):
                    p.fenced = True

    # ---- producers ----

    def act(self, p: SimProducer) -> None:
        self._calling = p.tid
        if p.phase is Phase.INIT:
            self.init(p)
        elif p.phase is Phase.IDLE:
            tps = self.rng.sample(sorted(self.partitions), self.rng.randint(1, 3))
            p.plan = {tp: self.rng.randint(1, 2) for tp in tps}
            p.added, p.written = set(), []
            p.commit = self.rng.random() < 0.7
            p.phase = Phase.TXN
        elif p.phase is Phase.TXN:
            todo = [tp for tp, n in sorted(p.plan.items()) if n > 0]
            if not todo:
                p.phase = Phase.ENDING
                self.end(p)
                return
            tp = self.rng.choice(todo)
            if tp in p.added:
                self.write(p, tp)
            elif self.rng.random() < 0.5:
                self.add(p, [tp])
            else:
                self.add(p, [t for t in todo if t not in p.added])
        elif p.phase is Phase.ENDING:
            self.end(p)

    def init(self, p: SimProducer) -> None:
        try:
            outcome = self.shard.init_producer_id(
                p.tid, timeout_ms=TIMEOUT_MS, now_ms=self.now_ms, fresh_producer_id=self.fresh
            )
        except ConcurrentTransactionsError:
            return self.retry(p)
        if not self.take(outcome, by_coordinator=True):  # type: ignore[arg-type]
            return self.retry(p)
        if outcome.error is not None:
            assert isinstance(outcome.error, ConcurrentTransactionsError), outcome.error
            return self.retry(p)
        for other in self.producers:
            if other.tid == p.tid and other is not p:
                other.fenced = True
        p.fenced = False
        if self.lost():  # the answer never arrives: the next try bumps again
            return self.retry(p)
        p.producer_id, p.epoch = outcome.response.producer_id, outcome.response.producer_epoch
        p.phase = Phase.IDLE

    def add(self, p: SimProducer, tps: list[TP]) -> None:
        try:
            outcome = self.shard.add_partitions(
                p.tid, p.producer_id, p.epoch, tps, now_ms=self.now_ms
            )
        except ConcurrentTransactionsError:
            return self.retry(p)
        except (ProducerFencedError, InvalidProducerIdMappingError):
            self.fenced_calls += p.fenced
            return self.die(p)
        if not self.take(outcome):  # type: ignore[arg-type]
            return self.retry(p)
        assert not p.fenced, f"fenced producer {p} added {tps} to a transaction"
        if self.lost():
            return self.retry(p)
        p.added.update(tps)

    def write(self, p: SimProducer, tp: TP) -> None:
        offset = self.partitions[tp].write(p.producer_id, p.epoch)
        if offset is None:
            assert p.fenced, f"{tp} refused a write of {p}, which no one fenced"
            self.fenced_refusals += 1
            return self.die(p)
        self.check_backed(tp, p.producer_id, p.epoch, "an accepted write")
        p.plan[tp] -= 1
        p.written.append((tp, offset))
        self.writes.append((tp, offset, p.producer_id))

    def end(self, p: SimProducer) -> None:
        try:
            outcome = self.shard.end_transaction(
                p.tid,
                p.producer_id,
                p.epoch,
                p.commit,
                now_ms=self.now_ms,
                fresh_producer_id=self.fresh,
            )
        except ConcurrentTransactionsError:
            return self.retry(p)
        except InvalidTxnStateError as e:
            assert p.fenced, f"{p}: {e}"
            return self.die(p)
        except (ProducerFencedError, InvalidProducerIdMappingError):
            self.fenced_calls += p.fenced
            return self.die(p)
        if not self.take(outcome):  # type: ignore[arg-type]
            return self.retry(p)
        assert not p.fenced, f"fenced producer {p} ended its transaction"
        if self.lost():  # sent again with the same epoch
            return self.retry(p)
        self.expected.extend((tp, off, p.producer_id, p.commit) for tp, off in p.written)
        if p.commit:
            self.commits += 1
        else:
            self.aborts += 1
        p.producer_id, p.epoch = outcome.response.producer_id, outcome.response.producer_epoch
        p.phase = Phase.IDLE
        p.next_ms = self.now_ms + self.rng.choice((0, 100, 300))

    # ---- markers ----

    def deliver_one(self, *, reliable: bool = False) -> None:
        pairs = [(job, tp) for job, left in self.coordinator.jobs.items() for tp in sorted(left)]
        if not pairs:
            return
        job, tp = self.rng.choice(pairs)
        if not reliable and self.rng.random() < 0.2:
            return  # the request is lost, or the leader moved (NOT_LEADER): sent again later
        copies = 2 if not reliable and self.rng.random() < 0.05 else 1
        for _ in range(copies):
            self.append_marker(job, tp, live=True)
        if not reliable and self.rng.random() < 0.1:
            return  # the answer is lost: sent again later (a duplicate marker)
        left = self.coordinator.jobs[job]
        left.discard(tp)
        if left:
            return
        del self.coordinator.jobs[job]
        for marked in sorted(job.partitions):
            outcomes = self.partitions[marked].markers.get((job.producer_id, job.producer_epoch))
            assert outcomes == {job.committed}, f"{job} completed before {marked} was marked"
        outcome = self.shard.markers_written(job, now_ms=self.now_ms)
        if reliable:
            self.coordinator.take(outcome, durable=True, now_ms=self.now_ms)  # type: ignore[arg-type]
        else:
            self.take(outcome)  # type: ignore[arg-type]

    def append_marker(self, job: MarkerJob, tp: TP, *, live: bool) -> None:
        partition = self.partitions[tp]
        key = (job.producer_id, job.producer_epoch)
        code = partition.marker(*key, job.committed, job.coordinator_epoch)
        if live:
            assert code == NONE, f"{tp} refused the live coordinator's marker {job}: {code}"
        if code == NONE:
            assert partition.markers[key] == {job.committed}, (
                f"{tp}: the transaction of producer {key} is both committed and aborted"
            )
            decision = self.decisions.get(key)
            assert decision is not None and decision.committed == job.committed, (
                f"{tp}: marker {job} but the coordinator decided {decision}"
            )

    def deliver_zombie(self) -> None:
        """What an old coordinator still sends arrives late, or never."""
        zombies = self.coordinator.zombie_deliveries
        if zombies and self.rng.random() < 0.3:
            job, tp = zombies.pop(self.rng.randrange(len(zombies)))
            if self.rng.random() < 0.7:
                self.append_marker(job, tp, live=False)

    # ---- faults ----

    def fault(self) -> None:
        roll = self.rng.random()
        live = [p for p in self.producers if p.phase is not Phase.DEAD]
        if roll < 0.3:
            self.coordinator.failover(self.now_ms, compacted=self.rng.random() < 0.5)
        elif roll < 0.6 and live:  # a new instance; the old one goes on (maybe after a pause)
            old = self.rng.choice(live)
            self.spawn(old.tid, delay_ms=self.rng.choice((0, 300)))
            if self.rng.random() < 0.7:
                old.paused_until_ms = self.now_ms + self.rng.choice((500, 2_000, 5_000))
        elif live:  # a pause, sometimes past the transaction timeout
            p = self.rng.choice(live)
            p.paused_until_ms = self.now_ms + self.rng.choice((1_000, TIMEOUT_MS + 1_000))

    def tick(self) -> None:
        self.take(self.shard.tick(now_ms=self.now_ms), by_coordinator=True)  # type: ignore[arg-type]

    # ---- invariants ----

    def check_backed(self, tp: TP, pid: int, epoch: int, what: str) -> None:
        check_backed(self.shard.store, self.pid_tid, tp, pid, epoch, what)

    def check(self) -> None:
        check_open_transactions(self.shard.store, self.pid_tid, self.partitions.values())

    def check_replay(self) -> None:
        assert self.coordinator.replayed().store.ids == self.shard.store.ids, (
            "a shard replayed from the records differs from the live one"
        )

    def check_quiescent(self) -> None:
        check_quiescent(
            self.shard.store, self.decisions, self.partitions, self.writes, self.expected
        )
        if self.check_replay_enabled:
            self.check_replay()

    # ---- the run ----

    def step(self) -> None:
        if self.rng.random() < 0.03:
            self.fault()
            self.check()
        for p in list(self.producers):
            if p.ready(self.now_ms):
                self.act(p)
                self.check()
        for _ in range(3):
            self.deliver_one()
            self.check()
        self.deliver_zombie()
        self.check()
        self.tick()
        self.check()
        self.now_ms += STEP_MS

    def settle(self) -> None:
        """Producers stop; time passes; every marker is delivered."""
        for p in self.producers:
            p.phase = Phase.DEAD
        self.coordinator.zombie_deliveries.clear()
        deadline = self.now_ms + 2 * CONFIG.max_timeout_ms
        while self.now_ms < deadline:
            self.coordinator.take(
                self.shard.tick(now_ms=self.now_ms),  # type: ignore[arg-type]
                durable=True,
                now_ms=self.now_ms,
                by_coordinator=True,
            )
            while self.coordinator.jobs:
                self.deliver_one(reliable=True)
                self.check()
            if all(meta.state.is_idle for meta in self.shard.store.ids.values()):
                break
            self.now_ms += STEP_MS

    def run(self, *, steps: int = 600) -> SimSummary:
        for i in range(steps):
            self.step()
            if self.check_replay_enabled and i % 50 == 49:
                self.check_replay()
            if i % 200 == 199:  # the cleaner runs (and keeps failovers' replays short)
                self.coordinator.log = self.coordinator.compacted()
        self.settle()
        self.check_quiescent()
        return SimSummary(
            seed=self.seed,
            commits=self.commits,
            aborts=self.aborts,
            decisions=len(self.decisions),
            failovers=self.coordinator.failovers,
            fenced_refusals=self.fenced_refusals,
            fenced_calls=self.fenced_calls,
            overflowed=any(
                meta.previous_producer_id == self.first_overflow_pid
                or meta.producer_id != self.first_overflow_pid
                for tid, meta in self.shard.store.ids.items()
                if tid == OVERFLOW_TID
            ),
        )
