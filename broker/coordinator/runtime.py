"""A coordinator's runtime: it owns one sans-I/O shard per partition of its internal topic
that this broker leads, and does the I/O the shards do not. The group coordinator and the
transaction coordinator are thin subclasses (what they add: pushes, marker jobs).

Leadership: :meth:`CoordinatorRuntime.sync` compares the partitions this broker leads (and
their leader epochs) with the shards it holds, after every metadata change and on every tick.
A newly led partition gets a fresh shard in state LOADING: a task reads the partition from its
log start (once everything in the leader's log is committed) and replays every record into
it, then calls ``loaded``. A partition led no more (or led in a new epoch) is unloaded: its
shard is dropped, and calls waiting on it answer NOT_COORDINATOR.

Routing: a key's partition is Kafka's (``groups/placement.py``). Until the topic exists or
while the partition has no leader: COORDINATOR_NOT_AVAILABLE; led by another broker:
NOT_COORDINATOR; led here but not loaded yet: COORDINATOR_LOAD_IN_PROGRESS.

Writes: one lock per shard, held by the shard's writer task. Calls queue up for it; under the
lock it runs every queued call on the shard in order and appends all their records as one
batch with acks=all (group commit: while one batch replicates, the next calls queue; records
a call writes in a producer's transaction go in a transactional batch of their own), and only
then do the callers get their answers (and the subclass sees the outcomes:
:meth:`_on_committed`). An append fails only when nothing was written or leadership moved (a
batch already in the leader's log is waited for until it is committed: ``internal_log.py``);
then the shard (which has already applied the records) is dropped and loaded again from the
log, and every caller of that batch gets a retriable error. Reads take the same lock, so they
see only committed state.

Timers: :meth:`run` ticks every loaded shard every ``tick_interval_ms`` and at the shard's own
``next_deadline_ms``, and writes what the tick produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog

from raftka.broker.coordinator.api import (
    CoordinatorShard,
    ShardOutcome,
    StoredMarker,
    StoredRecord,
)
from raftka.broker.coordinator.internal_log import InternalLog
from raftka.broker.groups.placement import partition_for
from raftka.common.clock import wall_clock_ms
from raftka.common.errors import CoordinatorLoadInProgressError, RaftkaError
from raftka.common.group_errors import CoordinatorNotAvailableError, NotCoordinatorError
from raftka.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

R = TypeVar("R")
S = TypeVar("S", bound=CoordinatorShard)

DEFAULT_TICK_INTERVAL_MS = 200
MIN_TICK_WAIT_MS = 20
"""The shortest wait between two rounds of ticks, even when a deadline is already due."""
MAX_COMBINED_BATCH_BYTES = 512 * 1024
"""Queued writes of one shard are appended together until their records reach this size (one
call's records always go in one batch, whatever their size)."""

ShardCall = Callable[[S, int], ShardOutcome[R]]


@dataclass(slots=True, eq=False)
class _PendingWrite:
    call: Callable[[Any, int], ShardOutcome[Any]]
    future: asyncio.Future[Any]


@dataclass(slots=True, eq=False)
class _Segment:
    """Records of consecutive calls of one write round that go in one batch: plain ones, or
    those of one producer's transaction (``producer``: (id, epoch))."""

    producer: tuple[int, int] | None
    records: list[StoredRecord] = field(default_factory=list)
    calls: list[tuple[_PendingWrite, ShardOutcome[Any]]] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Slot(Generic[S]):
    """One led partition's shard and its state (LOADING until ``loaded`` is True)."""

    partition: int
    leader_epoch: int
    shard: S
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loaded: bool = False
    loader: asyncio.Task[None] | None = None
    ticker: asyncio.Task[None] | None = None
    writer: asyncio.Task[None] | None = None
    pending: deque[_PendingWrite] = field(default_factory=deque)

    @property
    def name(self) -> str:
        return f"partition {self.partition} (leader epoch {self.leader_epoch})"


class CoordinatorRuntime(Generic[S]):
    """Loads, writes and ticks the shards of the led partitions of ``topic``.

    ``shard_factory(partition, leader_epoch)`` makes a fresh shard; ``partition_count()`` is
    the topic's partition count (None while it does not exist) and ``leader_of(partition)``
    its leader in the metadata image (-1 for none)."""

    def __init__(
        self,
        *,
        topic: str,
        internal_log: InternalLog,
        shard_factory: Callable[[int, int], S],
        partition_count: Callable[[], int | None],
        leader_of: Callable[[int], int],
        broker_id: int,
        clock: Callable[[], int] = wall_clock_ms,
        tick_interval_ms: int = DEFAULT_TICK_INTERVAL_MS,
    ) -> None:
        self.topic = topic
        self._log = internal_log
        self._new_shard = shard_factory
        self._partition_count = partition_count
        self._leader_of = leader_of
        self._broker_id = broker_id
        self._clock = clock
        self._tick_interval_ms = tick_interval_ms
        self._slots: dict[int, Slot[S]] = {}
        self._wake = asyncio.Event()

    # ---- what subclasses add ----

    def _on_loaded(self, slot: Slot[S], result: object) -> None:
        """The shard is loaded; ``result`` is what its ``loaded`` returned."""

    def _on_committed(self, slot: Slot[S], outcome: ShardOutcome[object]) -> None:
        """The outcome's records are committed (called before its caller gets the answer)."""

    def _on_unloaded(self, slot: Slot[S]) -> None:
        """The shard was dropped (leadership moved, a failed write, or the runtime stopped)."""

    def _response_of(self, outcome: ShardOutcome[R]) -> R:
        """The answer for a committed outcome (raise a RaftkaError to answer with it)."""
        return outcome.response

    def _tick_call(self) -> ShardCall[S, None] | None:
        """The call a tick runs on every loaded shard (None: no ticks)."""
        return None

    def _load_summary(self, shard: S) -> Mapping[str, object]:
        """Fields for the ``coordinator_loaded`` event."""
        return {}

    def _replay_marker(self, shard: S, marker: StoredMarker) -> None:
        """A transaction marker met while loading (only the group coordinator writes
        transactionally; elsewhere a marker has nothing to settle)."""

    def _transactional_producer(self, outcome: ShardOutcome[object]) -> tuple[int, int] | None:
        """(producer id, epoch) when the outcome's records go in that producer's transaction
        (a batch of their own), None for plain records."""
        return None

    # ---- leadership ----

    def wake(self) -> None:
        """The metadata changed: re-check leadership and tick soon."""
        self._wake.set()

    def sync(self) -> None:
        """Loads the partitions newly led here, unloads those led no more."""
        led = self._log.led_partitions()
        for p, slot in list(self._slots.items()):
            if led.get(p) != slot.leader_epoch:
                self._unload(slot, "leadership moved")
        for p, epoch in led.items():
            if p not in self._slots:
                self._start_loading(p, epoch)

    def _start_loading(self, partition: int, leader_epoch: int) -> None:
        slot = Slot(partition, leader_epoch, self._new_shard(partition, leader_epoch))
        self._slots[partition] = slot
        slot.loader = asyncio.create_task(self._load(slot), name=f"{self.topic}-load-{partition}")

    async def _load(self, slot: Slot[S]) -> None:
        started = time.monotonic()
        fields = {"topic": self.topic, "partition": slot.partition}
        log.info("coordinator_loading", **fields, leader_epoch=slot.leader_epoch)
        try:
            records = await self._log.read_all(slot.partition, slot.leader_epoch)
            for record in records:
                if isinstance(record, StoredMarker):
                    self._replay_marker(slot.shard, record)
                else:
                    slot.shard.replay(record)
            result = slot.shard.loaded(self._clock())
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # Dropped: the next sync loads it again if this broker still leads it.
            log.warning("coordinator_load_failed", **fields, error=repr(e))
            if self._slots.get(slot.partition) is slot:
                del self._slots[slot.partition]
            return
        slot.loaded = True
        log.info(
            "coordinator_loaded",
            **fields,
            leader_epoch=slot.leader_epoch,
            records=len(records),
            duration_ms=round((time.monotonic() - started) * 1000),
            **self._load_summary(slot.shard),
        )
        self._on_loaded(slot, result)
        self._wake.set()

    def _unload(self, slot: Slot[S], reason: str) -> None:
        if self._slots.get(slot.partition) is slot:
            del self._slots[slot.partition]
        if slot.loader is not None and asyncio.current_task() is not slot.loader:
            slot.loader.cancel()
        self._on_unloaded(slot)
        log.info(
            "coordinator_unloaded",
            topic=self.topic,
            partition=slot.partition,
            leader_epoch=slot.leader_epoch,
            reason=reason,
        )

    def _reload(self, slot: Slot[S], reason: str) -> None:
        """Drops a shard whose state may be ahead of its log; loads it again if still led."""
        self._unload(slot, reason)
        epoch = self._log.led_partitions().get(slot.partition)
        if epoch is not None:
            self._start_loading(slot.partition, epoch)

    # ---- routing ----

    def partition_of(self, key: str) -> int:
        count = self._partition_count()
        if count is None:
            raise CoordinatorNotAvailableError(
                f"{self.topic} does not exist yet: call FindCoordinator (it creates it) and retry"
            )
        return partition_for(key, count)

    def not_here(self, partition: int) -> str:
        """Why this broker does not answer for ``partition``, and what to do."""
        leader = self._leader_of(partition)
        return (
            f"broker {self._broker_id} does not coordinate {self.topic}-{partition} "
            f"(its leader is broker {leader}): call FindCoordinator and retry there"
        )

    def _check_slot(self, partition: int, slot: Slot[S] | None) -> Slot[S]:
        """The partition's loaded slot (``slot`` itself when given: the one a caller waited
        on), or the coordinator error that explains why there is none."""
        current = self._slots.get(partition)
        if current is not None and current.loaded and slot in (None, current):
            return current
        if current is not None:
            raise CoordinatorLoadInProgressError(
                f"broker {self._broker_id} is loading {self.topic}-{partition}; retry shortly"
            )
        leader = self._leader_of(partition)
        if leader < 0:
            raise CoordinatorNotAvailableError(
                f"{self.topic}-{partition} has no leader now: retry FindCoordinator"
            )
        if leader == self._broker_id or partition in self._log.led_partitions():
            self.wake()
            raise CoordinatorLoadInProgressError(
                f"broker {self._broker_id} has just become the coordinator of "
                f"{self.topic}-{partition} and is about to load it; retry shortly"
            )
        raise NotCoordinatorError(self.not_here(partition))

    def slot_of(self, key: str) -> Slot[S]:
        return self._check_slot(self.partition_of(key), None)

    # ---- calls ----

    async def write(self, key: str, call: ShardCall[S, R]) -> R:
        """Runs ``call(shard, now_ms)`` on the key's shard and makes its records durable."""
        return await self._write(self.slot_of(key), call)

    async def read(self, key: str, call: Callable[[S], R]) -> R:
        """Runs a read-only call on the key's shard (after any write in progress, so it sees
        only committed state)."""
        slot = self.slot_of(key)
        async with slot.lock:
            slot = self._check_slot(slot.partition, slot)
            return call(slot.shard)

    def loaded_shards(self) -> list[S]:
        """The shards loaded now, for a synchronous look that does not await (metrics)."""
        return [slot.shard for slot in self._slots.values() if slot.loaded]

    async def read_all(self, call: Callable[[S], list[R]]) -> list[R]:
        """A read-only call on every loaded shard, the results concatenated."""
        results: list[R] = []
        for slot in list(self._slots.values()):
            if not slot.loaded:
                continue
            async with slot.lock:
                if self._slots.get(slot.partition) is slot:
                    results.extend(call(slot.shard))
        return results

    async def _write(self, slot: Slot[S], call: ShardCall[S, R]) -> R:
        """Queues the call for the shard's writer and waits for its answer (fails with a
        coordinator error if ``slot`` is no longer the partition's loaded shard)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        slot.pending.append(_PendingWrite(call, future))
        if slot.writer is None or slot.writer.done():
            slot.writer = asyncio.create_task(self._drain(slot), name=f"{self.topic}-write")
        response: R = await future
        return response

    async def _drain(self, slot: Slot[S]) -> None:
        while slot.pending:
            async with slot.lock:
                await self._write_round(slot)

    async def _write_round(self, slot: Slot[S]) -> None:
        """Runs the queued calls on the shard, one after another, and appends all their records
        as one batch (group commit); answers them once it is committed. Records written in a
        producer's transaction go in a batch of their own, in their place among the others
        (log order is the order the shard applied them in)."""
        try:
            self._check_slot(slot.partition, slot)
        except RaftkaError as e:
            _fail(slot.pending, e)
            return
        now = self._clock()
        segments: list[_Segment] = [_Segment(None)]
        size = 0
        while slot.pending and (size < MAX_COMBINED_BATCH_BYTES or size == 0):
            write = slot.pending.popleft()
            if write.future.done():  # the caller went away before it ran
                continue
            try:
                outcome = write.call(slot.shard, now)
            except RaftkaError as e:
                write.future.set_exception(e)  # refused before anything changed
                continue
            except Exception as e:
                log.exception(
                    "coordinator_shard_failed", topic=self.topic, partition=slot.partition
                )
                self._reload(slot, f"the shard failed: {e!r}")
                write.future.set_exception(e)
                error = self._retry_error(slot, "the shard failed")
                _fail([w for seg in segments for w, _ in seg.calls], error)
                _fail(slot.pending, error)
                return
            producer = self._transactional_producer(outcome) if outcome.records else None
            if outcome.records and producer != segments[-1].producer:
                segments.append(_Segment(producer))
            segments[-1].calls.append((write, outcome))
            segments[-1].records.extend(outcome.records)
            size += sum(len(r.key) + len(r.value or b"") for r in outcome.records)
        for i, segment in enumerate(segments):
            if segment.records:
                try:
                    await self._log.append(
                        slot.partition,
                        slot.leader_epoch,
                        segment.records,
                        producer=segment.producer,
                    )
                except (RaftkaError, OSError) as e:
                    self._write_failed(slot, segments[i:], e)
                    return
            for write, outcome in segment.calls:
                self._on_committed(slot, outcome)
                if write.future.done():
                    continue
                try:
                    write.future.set_result(self._response_of(outcome))
                except RaftkaError as e:
                    write.future.set_exception(e)

    def _write_failed(self, slot: Slot[S], lost: list[_Segment], error: Exception) -> None:
        """The first of ``lost`` was not appended: the shard is reloaded and every call of
        ``lost`` fails. A producer's batch refused for a reason of its own (a fenced epoch) gives
        its callers that error; otherwise they get a retriable one."""
        failed = lost[0]
        log.warning(
            "coordinator_write_failed",
            topic=self.topic,
            partition=slot.partition,
            leader_epoch=slot.leader_epoch,
            records=len(failed.records),
            calls=len(failed.calls),
            producer_id=None if failed.producer is None else failed.producer[0],
            error=str(error),
        )
        self._reload(slot, "a write failed")
        retry = self._retry_error(slot, f"the write failed ({error})")
        own = isinstance(error, RaftkaError) and not error.retriable and failed.producer is not None
        _fail([w for w, _ in failed.calls], error if own else retry)
        _fail([w for seg in lost[1:] for w, _ in seg.calls], retry)
        _fail(slot.pending, retry)

    def _retry_error(self, slot: Slot[S], what: str) -> RaftkaError:
        """The retriable error for calls lost with a dropped shard."""
        if slot.partition in self._slots:
            return CoordinatorLoadInProgressError(
                f"{what} on {self.topic}-{slot.partition}; the coordinator is reloading it: "
                "retry shortly"
            )
        return NotCoordinatorError(
            f"{what} on {self.topic}-{slot.partition} and broker {self._broker_id} no longer "
            "leads it: call FindCoordinator and retry"
        )

    # ---- timers ----

    def start_ticks(self) -> list[asyncio.Task[None]]:
        """Starts a tick of every loaded shard that is not ticking already (a shard whose last
        tick is still being written is skipped, not queued)."""
        started = []
        for slot in list(self._slots.values()):
            if slot.loaded and (slot.ticker is None or slot.ticker.done()):
                slot.ticker = asyncio.create_task(self._tick(slot), name=f"{self.topic}-tick")
                started.append(slot.ticker)
        return started

    async def tick_once(self) -> None:
        """Ticks every loaded shard and waits until the ticks are written."""
        started = self.start_ticks()
        if started:
            await asyncio.wait(started)

    async def _tick(self, slot: Slot[S]) -> None:
        call = self._tick_call()
        if call is None:
            return
        try:
            await self._write(slot, call)
        except RaftkaError as e:
            log.debug(
                "coordinator_tick_failed",
                topic=self.topic,
                partition=slot.partition,
                error=e.message,
            )
        except Exception:
            pass  # logged by _write, which reloads the shard

    def _next_wait_s(self) -> float:
        wait_ms = self._tick_interval_ms
        now = self._clock()
        for slot in self._slots.values():
            if slot.loaded:
                deadline = slot.shard.next_deadline_ms()
                if deadline is not None:
                    wait_ms = min(wait_ms, max(0, deadline - now))
        return max(wait_ms, MIN_TICK_WAIT_MS) / 1000

    async def run(self) -> None:
        """Follow leadership and tick, until cancelled."""
        try:
            while True:
                self._wake.clear()
                self.sync()
                self.start_ticks()  # not awaited: a slow write must not hold up leadership
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._next_wait_s())
        finally:
            await self.close()

    async def close(self) -> None:
        slots = list(self._slots.values())
        for slot in slots:
            self._unload(slot, "coordinator stopped")
        await cancel_and_wait([t for s in slots for t in (s.loader, s.ticker, s.writer)])
        for slot in slots:
            _fail(slot.pending, NotCoordinatorError("the coordinator stopped: find it again"))


def _fail(writes: Iterable[_PendingWrite], error: BaseException) -> None:
    for write in writes:
        if not write.future.done():
            write.future.set_exception(error)
    if isinstance(writes, deque):
        writes.clear()
