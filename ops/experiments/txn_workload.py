"""The transaction workload (``raftka experiment --workload txn``), beside the usual queue
workload on the experiment's topic:

* **transactional producers** (``txn_producers`` of them, in this process) each run
  transactions of 2-4 writes spread over the partitions of ``txn-out``, committing most and
  aborting about one in six, and record every attempt (``txn_history``). A producer whose
  instance fails for good (fenced, or its transaction cannot be aborted) is replaced by a new
  instance with the same transactional id, which fences the old one, as an application restart
  would;
* a **read_committed observer** reads ``txn-out`` all along: it must never return a write of
  an aborted transaction;
* an **exactly-once copier** (consume-transform-produce) reads the experiment's topic in a
  consumer group with read_committed and writes ``copy:<value>`` to ``txn-copy`` in
  transactions that also commit its consumer offsets. On any failure it aborts and starts over
  from the group's committed offsets (a new consumer and producer instance).

After the faults heal the copier drains the source topic, every producer stops, and once the
transaction timeout has passed the checker (``txn_rules``) reads both topics with
read_committed and compares them with the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from raftka.client.consumer import AsyncConsumer
from raftka.client.producer import AsyncProducer, RecordDelivery
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError
from raftka.ops.experiments.txn_history import TxnAttempt, TxnOutcome
from raftka.ops.experiments.txn_rules import (
    StableOffsets,
    TxnCheckResult,
    check_pipeline,
    check_transactions,
)

log = structlog.get_logger(__name__)

OUT_TOPIC = "txn-out"
COPY_TOPIC = "txn-copy"
COPY_GROUP = "txn-copier"
COPY_PREFIX = "copy:"
ABORT_RATIO = 1 / 6


@dataclass(frozen=True, slots=True)
class TxnWorkloadSettings:
    bootstrap_servers: list[str]
    partitions: int
    producers: int = 2
    transaction_timeout_ms: int = 10_000
    request_timeout_ms: int = 3_000
    pause_s: float = 0.05
    """Between two transactions of one producer."""


@dataclass(slots=True)
class TxnTally:
    committed: int = 0
    aborted: int = 0
    unknown: int = 0
    instances: int = 0
    copied: int = 0
    copier_restarts: int = 0


class TxnWorkload:
    def __init__(
        self, settings: TxnWorkloadSettings, clock: Callable[[], float], source_topic: str
    ) -> None:
        self._s = settings
        self._clock = clock
        self._source = source_topic
        self.attempts: list[TxnAttempt] = []
        self.observed: list[str] = []
        self.tally = TxnTally()
        self._stop = asyncio.Event()
        self._copier_stop = asyncio.Event()
        self._copied_positions: dict[TopicPartition, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        for i in range(self._s.producers):
            self._tasks.append(asyncio.create_task(self._producer(i), name=f"txn-producer-{i}"))
        self._tasks.append(asyncio.create_task(self._observe(), name="txn-observer"))
        self._tasks.append(asyncio.create_task(self._copy(), name="txn-copier"))

    def stop_producers(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        self._stop.set()
        self._copier_stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _new_producer(self, transactional_id: str) -> AsyncProducer:
        return AsyncProducer(
            bootstrap_servers=self._s.bootstrap_servers,
            transactional_id=transactional_id,
            transaction_timeout_ms=self._s.transaction_timeout_ms,
            request_timeout_ms=self._s.request_timeout_ms,
            delivery_timeout_ms=max(4 * self._s.request_timeout_ms, 10_000),
            max_block_ms=self._s.request_timeout_ms * 4,
            linger_ms=2,
        )

    async def _producer(self, index: int) -> None:
        rng = random.Random(f"txn-producer-{index}")
        incarnation = 0
        while not self._stop.is_set():
            producer = self._new_producer(f"exp-txn-{index}")
            self.tally.instances += 1
            try:
                await producer.init_transactions()
                number = 0
                while not self._stop.is_set():
                    number += 1
                    if not await self._one_transaction(
                        producer, f"p{index}#{incarnation}.{number}", rng
                    ):
                        break
                    await asyncio.sleep(self._s.pause_s)
            except RaftkaError as e:
                log.info("txn_producer_instance_failed", index=index, error=e.code_name)
            finally:
                with contextlib.suppress(Exception):
                    await producer.close(timeout_s=2.0)
            incarnation += 1
            await asyncio.sleep(0.2)

    async def _one_transaction(self, producer: AsyncProducer, key: str, rng: random.Random) -> bool:
        """One attempt, recorded; False when this producer instance cannot go on."""
        count = rng.randint(2, min(4, max(2, self._s.partitions)))
        partitions = rng.sample(range(self._s.partitions), min(count, self._s.partitions))
        writes = tuple(
            (TopicPartition(OUT_TOPIC, p), f"{key}/{i}") for i, p in enumerate(partitions)
        )
        started = self._clock()
        commit_called = False
        outcome = TxnOutcome.ABORTED
        usable = True
        deliveries: list[RecordDelivery] = []
        try:
            producer.begin_transaction()
            for tp, value in writes:
                deliveries.append(
                    await producer.send(OUT_TOPIC, value.encode(), partition=tp.partition)
                )
            if rng.random() < ABORT_RATIO:
                await producer.flush()  # written, then aborted: the reads must skip them
                await producer.abort_transaction()
            else:
                commit_called = True
                await producer.commit_transaction()
                await asyncio.gather(*deliveries)
                outcome = TxnOutcome.COMMITTED
        except RaftkaError as e:
            outcome = TxnOutcome.UNKNOWN if commit_called else TxnOutcome.ABORTED
            log.info("txn_attempt_failed", key=key, error=e.code_name, commit=commit_called)
            try:
                await producer.abort_transaction()
            except RaftkaError:
                usable = False  # fenced, or fatal: a new instance takes over
        # An aborted transaction's records fail their futures: collect them (the outcome is
        # already decided above).
        await asyncio.gather(*deliveries, return_exceptions=True)
        self._record(TxnAttempt(key, writes, outcome, started, self._clock()))
        return usable

    def _record(self, attempt: TxnAttempt) -> None:
        self.attempts.append(attempt)
        if attempt.outcome is TxnOutcome.COMMITTED:
            self.tally.committed += 1
        elif attempt.outcome is TxnOutcome.ABORTED:
            self.tally.aborted += 1
        else:
            self.tally.unknown += 1

    def _consumer(self, **settings: Any) -> AsyncConsumer:
        return AsyncConsumer(
            bootstrap_servers=self._s.bootstrap_servers,
            isolation_level="read_committed",
            request_timeout_ms=self._s.request_timeout_ms,
            **settings,
        )

    async def _observe(self) -> None:
        while True:
            consumer = self._consumer()
            try:
                consumer.assign(TopicPartition(OUT_TOPIC, p) for p in range(self._s.partitions))
                consumer.seek_to_beginning()
                while True:
                    for record in await consumer.poll(timeout_ms=500):
                        if record.value is not None:
                            self.observed.append(record.value.decode())
            except RaftkaError as e:
                log.info("txn_observer_restarted", error=e.code_name)
                self.observed.clear()  # the next reader starts from the beginning again
            finally:
                with contextlib.suppress(Exception):
                    await consumer.close()

    async def _copy(self) -> None:
        while not self._copier_stop.is_set():
            consumer = self._consumer(
                group_id=COPY_GROUP, enable_auto_commit=False, auto_offset_reset="earliest"
            )
            producer = self._new_producer("exp-copier")
            sent: list[RecordDelivery] = []
            try:
                consumer.subscribe([self._source])
                await producer.init_transactions()
                while not self._copier_stop.is_set():
                    records = await consumer.poll(timeout_ms=300, max_records=200)
                    if not records:
                        continue
                    producer.begin_transaction()
                    positions: dict[TopicPartition, int] = {}
                    for record in records:
                        value = (record.value or b"").decode()
                        sent.append(await producer.send(COPY_TOPIC, (COPY_PREFIX + value).encode()))
                        positions[record.topic_partition] = record.offset + 1
                    await producer.send_offsets_to_transaction(positions, consumer.group_metadata())
                    await producer.commit_transaction()
                    await asyncio.gather(*sent)
                    sent.clear()
                    self.tally.copied += len(records)
                    self._copied_positions.update(positions)
            except RaftkaError as e:
                log.info("txn_copier_restarted", error=e.code_name)
                self.tally.copier_restarts += 1
                with contextlib.suppress(Exception):
                    await producer.abort_transaction()
                await asyncio.gather(*sent, return_exceptions=True)
            finally:
                with contextlib.suppress(Exception):
                    await producer.close(timeout_s=2.0)
                with contextlib.suppress(Exception):
                    await consumer.close()
            if not self._copier_stop.is_set():
                await asyncio.sleep(0.2)

    async def drain_copier(self, ends: Mapping[TopicPartition, int], timeout_s: float) -> bool:
        """Until the copier has committed a copy of everything below ``ends`` (the source's
        final log ends); then stops it. False if it did not within ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        done = False
        while loop.time() < deadline:
            if all(self._copied_positions.get(tp, 0) >= end for tp, end in ends.items() if end):
                done = True
                break
            await asyncio.sleep(0.5)
        self._copier_stop.set()
        return done

    # ------------------------------------------------------------------ checking

    async def read_committed(self, topic: str, timeout_s: float) -> dict[TopicPartition, list[str]]:
        """Every value of ``topic`` a read_committed consumer returns, up to the last stable
        offsets."""
        consumer = self._consumer()
        tps = [TopicPartition(topic, p) for p in range(self._s.partitions)]
        values: dict[TopicPartition, list[str]] = {tp: [] for tp in tps}
        try:
            consumer.assign(tps)
            consumer.seek_to_beginning()
            ends = await consumer.end_offsets(tps)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while loop.time() < deadline:
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= ends[tp] for tp in tps):
                    break
                for record in await consumer.poll(timeout_ms=500):
                    if record.value is not None:
                        values[record.topic_partition].append(record.value.decode())
        finally:
            await consumer.close()
        return values

    async def stable_offsets(self, topic: str) -> dict[TopicPartition, StableOffsets]:
        tps = [TopicPartition(topic, p) for p in range(self._s.partitions)]
        committed = self._consumer()
        uncommitted = AsyncConsumer(
            bootstrap_servers=self._s.bootstrap_servers, isolation_level="read_uncommitted"
        )
        try:
            lso = await committed.end_offsets(tps)
            hw = await uncommitted.end_offsets(tps)
        finally:
            await committed.close()
            await uncommitted.close()
        return {tp: StableOffsets(lso[tp], hw[tp]) for tp in tps}

    async def check(
        self, source: Mapping[TopicPartition, Mapping[int, str]], timeout_s: float
    ) -> TxnReport:
        await asyncio.sleep(self._s.transaction_timeout_ms / 1000 + 2.0)  # let timeouts fire
        stable = await self.stable_offsets(OUT_TOPIC)
        stable.update(await self.stable_offsets(COPY_TOPIC))
        final = await self.read_committed(OUT_TOPIC, timeout_s)
        copies = await self.read_committed(COPY_TOPIC, timeout_s)
        result = check_transactions(
            self.attempts, final=final, observed=self.observed, stable_offsets=stable
        )
        source_values = [v for log_ in source.values() for v in log_.values()]
        pipeline = check_pipeline(
            source_values, [v for vs in copies.values() for v in vs], transform=COPY_PREFIX
        )
        return TxnReport(result, pipeline, self.tally, len(self.observed))


@dataclass(frozen=True, slots=True)
class TxnReport:
    transactions: TxnCheckResult
    pipeline: tuple[Any, ...]
    tally: TxnTally
    observed: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.transactions.valid and not self.pipeline

    def to_json(self) -> dict[str, Any]:
        anomalies = [*self.transactions.anomalies, *self.pipeline]
        return {
            "valid": self.valid,
            "committed": self.transactions.committed,
            "aborted": self.transactions.aborted,
            "unknown": self.transactions.unknown,
            "read": self.transactions.read,
            "observed": self.observed,
            "instances": self.tally.instances,
            "copied": self.tally.copied,
            "copier_restarts": self.tally.copier_restarts,
            "anomalies": [
                {"kind": a.kind.value, "subject": a.subject, "explanation": a.explanation}
                for a in anomalies[:200]
            ],
            **self.extra,
        }
