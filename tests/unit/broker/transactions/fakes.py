"""A small transaction shard and marker sender for testing the coordinator's runtime.

FakeTxnShard keeps one JSON record per transactional id (``t/<id>``): producer id, epoch,
state, partitions, start time and timeout. It follows the TxnShard contract only as far as the
runtime's tests need: new id -> fresh producer id; EndTxn -> Prepare* with epoch + 1 and a
marker job; markers_written -> Complete*; tick aborts what is past its timeout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from raftka.broker.transactions.api import (
    InitProducerIdResult,
    MarkerJob,
    StoredRecord,
    TopicPartition,
    TxnOutcome,
)
from raftka.broker.transactions.marker_sender import MarkerOutcome
from raftka.common.txn_errors import (
    ConcurrentTransactionsError,
    InvalidTxnStateError,
    ProducerFencedError,
    TransactionAbortableError,
    TransactionalIdNotFoundError,
)
from raftka.v1 import transactions_pb2 as tpb


@dataclass
class Txn:
    producer_id: int
    epoch: int
    state: str = "Empty"
    partitions: tuple[TopicPartition, ...] = ()
    started_ms: int = -1
    timeout_ms: int = 60_000


class FakeTxnShard:
    def __init__(self, partition: int, coordinator_epoch: int) -> None:
        self.partition = partition
        self._epoch = coordinator_epoch
        self.txns: dict[str, Txn] = {}
        self.replayed = 0
        self.loaded_at: int | None = None
        self.ticks = 0

    @property
    def coordinator_epoch(self) -> int:
        return self._epoch

    # ---- records ----

    def replay(self, record: StoredRecord) -> None:
        self.replayed += 1
        tid = record.key.decode().removeprefix("t/")
        if record.value is None:
            self.txns.pop(tid, None)
            return
        fields = json.loads(record.value)
        fields["partitions"] = tuple(tuple(tp) for tp in fields["partitions"])
        self.txns[tid] = Txn(**fields)

    def _record(self, tid: str) -> StoredRecord:
        txn = self.txns[tid]
        value = {**txn.__dict__, "partitions": [list(tp) for tp in txn.partitions]}
        return StoredRecord(f"t/{tid}".encode(), json.dumps(value).encode())

    def _job(self, tid: str) -> MarkerJob:
        txn = self.txns[tid]
        return MarkerJob(
            tid,
            txn.producer_id,
            txn.epoch,
            txn.state == "PrepareCommit",
            self._epoch,
            frozenset(txn.partitions),
        )

    def loaded(self, now_ms: int) -> list[MarkerJob]:
        self.loaded_at = now_ms
        return [self._job(t) for t, txn in self.txns.items() if txn.state.startswith("Prepare")]

    # ---- calls ----

    def init_producer_id(
        self,
        transactional_id: str,
        *,
        timeout_ms: int,
        now_ms: int,
        fresh_producer_id: Callable[[], int],
        expected: tuple[int, int] | None = None,
    ) -> TxnOutcome[InitProducerIdResult]:
        txn = self.txns.get(transactional_id)
        if txn is None:
            txn = Txn(fresh_producer_id(), 0, timeout_ms=timeout_ms)
        elif txn.state == "Ongoing":  # aborted first (written), then the call fails
            txn.epoch += 1
            txn.state = "PrepareAbort"
            return TxnOutcome(
                InitProducerIdResult(-1, -1),
                [self._record(transactional_id)],
                [self._job(transactional_id)],
                error=ConcurrentTransactionsError(f"{transactional_id} was Ongoing: aborting it"),
            )
        elif txn.state.startswith("Prepare"):
            raise ConcurrentTransactionsError(f"{transactional_id} is {txn.state}")
        else:
            txn = Txn(txn.producer_id, txn.epoch + 1, timeout_ms=timeout_ms)
        self.txns[transactional_id] = txn
        return TxnOutcome(
            InitProducerIdResult(txn.producer_id, txn.epoch), [self._record(transactional_id)]
        )

    def _check(self, tid: str, producer_id: int, epoch: int) -> Txn:
        txn = self.txns.get(tid)
        if txn is None or txn.producer_id != producer_id:
            raise InvalidTxnStateError(f"{tid} does not hold producer {producer_id}")
        if epoch < txn.epoch:
            raise ProducerFencedError(f"epoch {epoch} < {txn.epoch}")
        if txn.state.startswith("Prepare"):
            raise ConcurrentTransactionsError(f"{tid} is {txn.state}")
        return txn

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Sequence[TopicPartition],
        *,
        now_ms: int,
    ) -> TxnOutcome[None]:
        txn = self._check(transactional_id, producer_id, producer_epoch)
        if txn.state != "Ongoing":
            txn.state, txn.partitions, txn.started_ms = "Ongoing", (), now_ms
        txn.partitions = tuple(sorted(set(txn.partitions) | set(partitions)))
        return TxnOutcome(None, [self._record(transactional_id)])

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
        txn = self._check(transactional_id, producer_id, producer_epoch)
        if txn.state != "Ongoing":
            raise InvalidTxnStateError(f"{transactional_id} has no transaction open")
        txn.epoch += 1
        txn.state = "PrepareCommit" if committed else "PrepareAbort"
        return TxnOutcome(
            InitProducerIdResult(txn.producer_id, txn.epoch),
            [self._record(transactional_id)],
            [self._job(transactional_id)],
        )

    def markers_written(self, job: MarkerJob, *, now_ms: int) -> TxnOutcome[None]:
        txn = self.txns[job.transactional_id]
        if not txn.state.startswith("Prepare") or txn.epoch != job.producer_epoch:
            raise InvalidTxnStateError(f"{job.transactional_id} is {txn.state}")
        txn.state = "CompleteCommit" if job.committed else "CompleteAbort"
        return TxnOutcome(None, [self._record(job.transactional_id)])

    def tick(self, *, now_ms: int) -> TxnOutcome[None]:
        self.ticks += 1
        records, jobs = [], []
        for tid, txn in self.txns.items():
            if txn.state == "Ongoing" and now_ms >= txn.started_ms + txn.timeout_ms:
                txn.epoch += 1
                txn.state = "PrepareAbort"
                records.append(self._record(tid))
                jobs.append(self._job(tid))
        return TxnOutcome(None, records, jobs)

    def next_deadline_ms(self) -> int | None:
        return None

    def describe(self, transactional_id: str) -> tpb.TransactionDescription:
        txn = self.txns.get(transactional_id)
        if txn is None:
            raise TransactionalIdNotFoundError(f"{transactional_id} is not known")
        return tpb.TransactionDescription(
            transactional_id=transactional_id,
            state=txn.state,
            producer_id=txn.producer_id,
            producer_epoch=txn.epoch,
        )

    def list_transactions(
        self, request: tpb.ListTransactionsRequest
    ) -> list[tpb.ListedTransaction]:
        return [
            tpb.ListedTransaction(transactional_id=t, producer_id=x.producer_id, state=x.state)
            for t, x in sorted(self.txns.items())
        ]

    def transactional_ids(self) -> list[str]:
        return sorted(self.txns)

    def check_producer(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        *,
        partition: TopicPartition | None = None,
    ) -> None:
        txn = self._check(transactional_id, producer_id, producer_epoch)
        if txn.state != "Ongoing":
            raise InvalidTxnStateError(f"{transactional_id} is {txn.state}")
        if partition is not None and partition not in txn.partitions:
            raise TransactionAbortableError(f"{partition} is not in {transactional_id}")


class FakeMarkers:
    """Records each job it is asked to send; ``gate`` holds every send until set; the answer is
    ``outcome``. ``cancelled`` counts sends cancelled while waiting."""

    def __init__(self) -> None:
        self.jobs: list[MarkerJob] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.outcome = MarkerOutcome.WRITTEN
        self.cancelled = 0
        self.finished: list[MarkerJob] = []

    async def send(self, job: MarkerJob) -> MarkerOutcome:
        self.jobs.append(job)
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished.append(job)
        return self.outcome


class FakeProducerIds:
    def __init__(self, first: int = 1000) -> None:
        self.next = first
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        self.next += 1
        return self.next - 1


class FakeTxnTopic:
    def __init__(self, partitions: int | None = 4) -> None:
        self.partitions = partitions
        self.leaders: dict[int, int] = {}
        self.topic_counts: dict[str, int] = {"events": 3}

    def partition_count(self) -> int | None:
        return self.partitions

    def leader_of(self, partition: int) -> int:
        return self.leaders.get(partition, -1)

    def topics(self) -> dict[str, int]:
        return self.topic_counts


class FakeOffsetsTopic:
    def __init__(self, partitions: int | None = None) -> None:
        self.partitions = partitions
        self.ensured = 0

    def ensure(self) -> int | None:
        self.ensured += 1
        return self.partitions
