"""The transaction coordinator's runtime: the generic coordinator runtime
(:mod:`raftka.broker.coordinator.runtime`: loading, group-commit writes, ticks, reload on a
failed write) over the ``__transaction_state`` shards, plus what transactions add:

- Coordinator epoch: a shard is made for the partition's leader epoch, which is its
  coordinator epoch (the markers carry it; a partition refuses markers of an older one).
- Producer ids: a call that may need a fresh producer id gets one before it runs (the
  broker's :class:`~raftka.broker.producers.id_blocks.ProducerIdManager` is asynchronous, the
  shard call is not); an id the call did not use goes back to a small pool for the next call.
- Markers: the marker jobs of an outcome start once its records are committed, and those
  ``loaded`` returns (transactions a previous coordinator decided but did not finish) once
  the shard is loaded. Each job runs in the background on the marker sender; when every
  partition has its marker, ``markers_written`` is written through the shard's write path.
  Unloading a shard cancels its jobs: the next coordinator resumes them from the log.
- Checks against the metadata image: AddPartitionsToTxn adds nothing if any partition does
  not exist; AddOffsetsToTxn needs ``__consumer_offsets`` (created on first use, like
  FindCoordinator does).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar

import structlog

from raftka.broker.coordinator.api import ShardOutcome
from raftka.broker.coordinator.internal_log import InternalLog
from raftka.broker.coordinator.runtime import CoordinatorRuntime, ShardCall, Slot
from raftka.broker.groups.placement import OFFSETS_TOPIC, partition_for
from raftka.broker.transactions.api import (
    TRANSACTION_STATE_TOPIC,
    InitProducerIdResult,
    MarkerJob,
    TopicPartition,
    TxnOutcome,
    TxnShard,
)
from raftka.broker.transactions.marker_sender import MarkerOutcome
from raftka.common.clock import wall_clock_ms
from raftka.common.errors import RaftkaError
from raftka.common.group_errors import CoordinatorNotAvailableError
from raftka.common.tasks import cancel_and_wait
from raftka.common.txn_errors import TransactionAbortableError
from raftka.v1 import transactions_pb2 as tpb

log = structlog.get_logger(__name__)

R = TypeVar("R")

DEFAULT_TICK_INTERVAL_MS = 1_000
"""How often every shard is ticked (it aborts timed-out transactions and expires idle ids at
its own intervals; the tick only gives it the chance)."""
MAX_SPARE_PRODUCER_IDS = 16
"""Producer ids fetched for a call that did not use them, kept for the next calls."""


class TxnTopicView(Protocol):
    """What the runtime reads of the metadata image (coordinator/internal_topic.InternalTopic
    for ``__transaction_state``)."""

    def partition_count(self) -> int | None: ...

    def leader_of(self, partition: int) -> int: ...

    def topics(self) -> Mapping[str, int]:
        """topic name -> partition count, for every topic of the image."""
        ...


class OffsetsTopicCreator(Protocol):
    """``__consumer_offsets``' partition count, creating the topic if it is missing
    (groups/offsets_topic.OffsetsTopic)."""

    def ensure(self) -> int | None: ...


class MarkerJobs(Protocol):
    """Writes a job's markers (marker_sender.MarkerSender)."""

    async def send(self, job: MarkerJob) -> MarkerOutcome: ...


class _FreshProducerId:
    """The one producer id a shard call may take (``fresh_producer_id``)."""

    def __init__(self, producer_id: int) -> None:
        self.producer_id = producer_id
        self.used = False

    def __call__(self) -> int:
        if self.used:
            raise RuntimeError("a shard call asked for a second fresh producer id")
        self.used = True
        return self.producer_id


class TransactionCoordinator(CoordinatorRuntime[TxnShard]):
    def __init__(
        self,
        *,
        internal_log: InternalLog,
        topic: TxnTopicView,
        offsets_topic: OffsetsTopicCreator,
        shard_factory: Callable[[int, int], TxnShard],
        producer_ids: Callable[[], Awaitable[int]],
        markers: MarkerJobs,
        broker_id: int,
        clock: Callable[[], int] = wall_clock_ms,
        tick_interval_ms: int = DEFAULT_TICK_INTERVAL_MS,
    ) -> None:
        super().__init__(
            topic=TRANSACTION_STATE_TOPIC,
            internal_log=internal_log,
            shard_factory=shard_factory,
            partition_count=topic.partition_count,
            leader_of=topic.leader_of,
            broker_id=broker_id,
            clock=clock,
            tick_interval_ms=tick_interval_ms,
        )
        self._topic = topic
        self._offsets = offsets_topic
        self._producer_ids = producer_ids
        self._markers = markers
        self._spare_ids: list[int] = []
        self._marker_tasks: dict[Slot[TxnShard], set[asyncio.Task[None]]] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    # ---- calls ----

    async def init_producer_id(
        self, transactional_id: str, timeout_ms: int, expected: tuple[int, int] | None = None
    ) -> InitProducerIdResult:
        """InitProducerId for a transactional id (its next producer id and epoch);
        ``expected``: see :meth:`TxnShard.init_producer_id`."""
        slot = self.slot_of(transactional_id)
        async with self._fresh_id() as fresh:
            return await self._write(
                slot,
                lambda shard, now: shard.init_producer_id(
                    transactional_id,
                    timeout_ms=timeout_ms,
                    now_ms=now,
                    fresh_producer_id=fresh,
                    expected=expected,
                ),
            )

    async def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Sequence[TopicPartition],
    ) -> list[TopicPartition]:
        """Adds ``partitions`` to the transaction; returns those that do not exist in the
        metadata image (then nothing was added)."""
        slot = self.slot_of(transactional_id)
        topics = self._topic.topics()
        unknown = [tp for tp in partitions if not 0 <= tp[1] < topics.get(tp[0], 0)]
        if unknown:
            return unknown
        await self._write(
            slot,
            lambda shard, now: shard.add_partitions(
                transactional_id, producer_id, producer_epoch, partitions, now_ms=now
            ),
        )
        return []

    async def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Sequence[TopicPartition],
    ) -> list[TopicPartition]:
        """AddPartitionsToTxn(verify_only) (KIP-890 part 1): which of ``partitions`` are not
        in the ongoing transaction of this producer id and epoch (nothing is added). Raises
        what :meth:`TxnShard.check_producer` raises for the transaction as a whole (fenced,
        unknown id, completing, nothing ongoing). A read: it waits for any write in progress,
        so it sees only partitions whose registration is durable."""

        def missing(shard: TxnShard) -> list[TopicPartition]:
            shard.check_producer(transactional_id, producer_id, producer_epoch)
            absent: list[TopicPartition] = []
            for tp in partitions:
                try:
                    shard.check_producer(
                        transactional_id, producer_id, producer_epoch, partition=tp
                    )
                except TransactionAbortableError:
                    absent.append(tp)
            return absent

        return await self.read(transactional_id, missing)

    async def add_offsets(
        self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str
    ) -> None:
        """Adds the group's ``__consumer_offsets`` partition to the transaction."""
        slot = self.slot_of(transactional_id)
        count = self._offsets.ensure()
        if count is None:
            raise CoordinatorNotAvailableError(
                f"{OFFSETS_TOPIC} is being created (the coordinator needs it for the offsets of "
                f"group {group_id!r}): retry AddOffsetsToTxn shortly"
            )
        partition = (OFFSETS_TOPIC, partition_for(group_id, count))
        await self._write(
            slot,
            lambda shard, now: shard.add_partitions(
                transactional_id, producer_id, producer_epoch, [partition], now_ms=now
            ),
        )

    async def end_transaction(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        *,
        bump_epoch: bool = True,
    ) -> InitProducerIdResult:
        """EndTxn: the decision is durable when this returns (the producer id and epoch to
        use next); the markers follow in the background. ``bump_epoch``: see
        :meth:`TxnShard.end_transaction`."""
        slot = self.slot_of(transactional_id)
        async with self._fresh_id() as fresh:
            return await self._write(
                slot,
                lambda shard, now: shard.end_transaction(
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    committed,
                    now_ms=now,
                    fresh_producer_id=fresh,
                    bump_epoch=bump_epoch,
                ),
            )

    async def describe(self, transactional_id: str) -> tpb.TransactionDescription:
        return await self.read(transactional_id, lambda shard: shard.describe(transactional_id))

    async def list_transactions(
        self, request: tpb.ListTransactionsRequest
    ) -> list[tpb.ListedTransaction]:
        return await self.read_all(lambda shard: shard.list_transactions(request))

    @contextlib.asynccontextmanager
    async def _fresh_id(self) -> AsyncIterator[_FreshProducerId]:
        """A producer id for one shard call; back to the pool if the call did not take it."""
        fresh = _FreshProducerId(
            self._spare_ids.pop() if self._spare_ids else await self._producer_ids()
        )
        try:
            yield fresh
        finally:
            if not fresh.used and len(self._spare_ids) < MAX_SPARE_PRODUCER_IDS:
                self._spare_ids.append(fresh.producer_id)

    # ---- the runtime's hooks ----

    def _response_of(self, outcome: ShardOutcome[R]) -> R:
        error = outcome.error if isinstance(outcome, TxnOutcome) else None
        if error is not None:
            raise error  # decided and written (an abort started), yet the call fails
        return outcome.response

    def _on_loaded(self, slot: Slot[TxnShard], result: object) -> None:
        jobs = [j for j in result if isinstance(j, MarkerJob)] if isinstance(result, list) else []
        if jobs:
            log.info(
                "txn_markers_resumed",
                partition=slot.partition,
                coordinator_epoch=slot.leader_epoch,
                transactions=len(jobs),
            )
            self._start_markers(slot, jobs)

    def _on_committed(self, slot: Slot[TxnShard], outcome: ShardOutcome[object]) -> None:
        if isinstance(outcome, TxnOutcome) and outcome.markers:
            self._start_markers(slot, outcome.markers)

    def _on_unloaded(self, slot: Slot[TxnShard]) -> None:
        for task in self._marker_tasks.pop(slot, set()):
            task.cancel()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def _tick_call(self) -> ShardCall[TxnShard, None]:
        return lambda shard, now: shard.tick(now_ms=now)

    def _load_summary(self, shard: TxnShard) -> Mapping[str, object]:
        return {
            "transactional_ids": len(shard.transactional_ids()),
            "coordinator_epoch": shard.coordinator_epoch,
        }

    # ---- markers ----

    def _start_markers(self, slot: Slot[TxnShard], jobs: Sequence[MarkerJob]) -> None:
        if self._slots.get(slot.partition) is not slot:
            return  # unloaded meanwhile: the next coordinator resumes the jobs
        tasks = self._marker_tasks.setdefault(slot, set())
        for job in jobs:
            task = asyncio.create_task(self._complete(slot, job), name="txn-markers")
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _complete(self, slot: Slot[TxnShard], job: MarkerJob) -> None:
        """Writes the job's markers, then records the transaction complete."""
        log.debug(
            "txn_markers_started",
            transactional_id=job.transactional_id,
            producer_id=job.producer_id,
            producer_epoch=job.producer_epoch,
            committed=job.committed,
            partitions=len(job.partitions),
        )
        if await self._markers.send(job) is MarkerOutcome.SUPERSEDED:
            return
        try:
            await self._write(slot, lambda shard, now: shard.markers_written(job, now_ms=now))
        except RaftkaError as e:
            # The shard was dropped (its successor resumes the job from the log) or refused
            # (the transaction moved on).
            log.info(
                "txn_markers_completion_not_written",
                transactional_id=job.transactional_id,
                producer_id=job.producer_id,
                error=e.message,
            )
            return
        log.debug(
            "txn_markers_written",
            transactional_id=job.transactional_id,
            producer_id=job.producer_id,
            committed=job.committed,
        )

    async def close(self) -> None:
        await super().close()
        tasks = [t for ts in self._marker_tasks.values() for t in ts] + list(self._stopping)
        self._marker_tasks.clear()
        await cancel_and_wait(tasks)
