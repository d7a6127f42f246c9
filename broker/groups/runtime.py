"""The group coordinator's runtime: it owns one shard per ``__consumer_offsets`` partition this
broker leads, and does the I/O the sans-I/O shards do not.

Leadership: :meth:`GroupCoordinator.sync` compares the partitions this broker leads (and their
leader epochs) with the shards it holds, after every metadata change and on every tick. A
newly led partition gets a fresh shard in state LOADING: a task reads the partition from its
log start (once everything in the leader's log is committed) and replays every record into
it, then calls ``loaded``. A partition led no more (or led in a new epoch) is unloaded: its
shard is dropped, and calls waiting on it answer NOT_COORDINATOR.

Routing: a group's partition is Kafka's (placement.py). Until ``__consumer_offsets`` exists or
while the partition has no leader: COORDINATOR_NOT_AVAILABLE; led by another broker:
NOT_COORDINATOR; led here but not loaded yet: COORDINATOR_LOAD_IN_PROGRESS.

Writes: one lock per shard, held by the shard's writer task. Calls queue up for it; under the
lock it runs every queued call on the shard in order and appends all their records as one
batch with acks=all (group commit: while one batch replicates, the next calls queue), and only
then do the callers get their answers and connected members their pushes. An append fails
only when nothing was written or leadership moved (a batch already in the leader's log is
waited for until it is committed: ``offsets_log.py``); then the shard (which has already
applied the records) is dropped and loaded again from the log, and every caller of that batch
gets a retriable error. Reads take the same lock, so they
see only committed state.

Timers: :meth:`run` ticks every loaded shard every ``tick_interval_ms`` and at the shard's own
``next_deadline_ms``, and writes what the tick produced.

Pushes: a ConsumerGroupStream call subscribes its (group, member) and receives the answers the
coordinator computes for that member on its own (a revocation when another member joins).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, TypeVar

import structlog

from raftka.broker.groups.api import GroupShard, MemberPush, Outcome, StoredRecord, TopicsView
from raftka.broker.groups.offsets_log import OffsetsLog
from raftka.broker.groups.placement import partition_for
from raftka.common.clock import wall_clock_ms
from raftka.common.errors import CoordinatorLoadInProgressError, RaftkaError
from raftka.common.group_errors import CoordinatorNotAvailableError, NotCoordinatorError
from raftka.common.tasks import cancel_and_wait
from raftka.v1 import groups_pb2 as gpb

log = structlog.get_logger(__name__)

R = TypeVar("R")

DEFAULT_TICK_INTERVAL_MS = 200
MIN_TICK_WAIT_MS = 20
"""The shortest wait between two rounds of ticks, even when a deadline is already due."""
MAX_COMBINED_BATCH_BYTES = 512 * 1024
"""Queued writes of one shard are appended together until their records reach this size (one
call's records always go in one batch, whatever their size)."""
PUSH_QUEUE_SIZE = 16
"""Pushes waiting for one stream; older ones are dropped past that (the member's next
heartbeat carries its assignment anyway)."""

Push: TypeAlias = gpb.ConsumerGroupHeartbeatResponse | RaftkaError
"""What a stream's queue carries: an answer to send, or the error that ends the stream."""


class CoordinatorMetadata(Protocol):
    """What the runtime reads from the broker's metadata image."""

    def offsets_partitions(self) -> int | None:
        """The partition count of ``__consumer_offsets``, or None while it does not exist."""
        ...

    def leader_of(self, partition: int) -> int:
        """The leader of a ``__consumer_offsets`` partition, -1 for none."""
        ...

    def topics(self) -> TopicsView: ...


@dataclass(slots=True, eq=False)
class _PendingWrite:
    call: Callable[[GroupShard, int], Outcome[Any]]
    future: asyncio.Future[Any]


@dataclass(slots=True, eq=False)
class _Slot:
    """One led partition's shard and its state (LOADING until ``loaded`` is True)."""

    partition: int
    leader_epoch: int
    shard: GroupShard
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loaded: bool = False
    loader: asyncio.Task[None] | None = None
    ticker: asyncio.Task[None] | None = None
    writer: asyncio.Task[None] | None = None
    pending: deque[_PendingWrite] = field(default_factory=deque)


@dataclass(slots=True, eq=False)
class _Subscription:
    partition: int
    queue: asyncio.Queue[Push] = field(
        default_factory=lambda: asyncio.Queue(maxsize=PUSH_QUEUE_SIZE)
    )


class GroupCoordinator:
    def __init__(
        self,
        *,
        offsets_log: OffsetsLog,
        metadata: CoordinatorMetadata,
        shard_factory: Callable[[int], GroupShard],
        broker_id: int,
        clock: Callable[[], int] = wall_clock_ms,
        tick_interval_ms: int = DEFAULT_TICK_INTERVAL_MS,
    ) -> None:
        self._log = offsets_log
        self._metadata = metadata
        self._new_shard = shard_factory
        self._broker_id = broker_id
        self._clock = clock
        self._tick_interval_ms = tick_interval_ms
        self._slots: dict[int, _Slot] = {}
        self._streams: dict[tuple[str, str], _Subscription] = {}
        self._wake = asyncio.Event()

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
        slot = _Slot(partition, leader_epoch, self._new_shard(partition))
        self._slots[partition] = slot
        slot.loader = asyncio.create_task(self._load(slot), name=f"group-load-{partition}")

    async def _load(self, slot: _Slot) -> None:
        started = time.monotonic()
        log.info("coordinator_loading", partition=slot.partition, leader_epoch=slot.leader_epoch)
        try:
            records = await self._log.read_all(slot.partition, slot.leader_epoch)
            for record in records:
                slot.shard.replay(record)
            slot.shard.loaded(self._clock())
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # Dropped: the next sync loads it again if this broker still leads it.
            log.warning("coordinator_load_failed", partition=slot.partition, error=repr(e))
            if self._slots.get(slot.partition) is slot:
                del self._slots[slot.partition]
            return
        slot.loaded = True
        log.info(
            "coordinator_loaded",
            partition=slot.partition,
            leader_epoch=slot.leader_epoch,
            groups=len(slot.shard.group_ids()),
            records=len(records),
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        self._wake.set()

    def _unload(self, slot: _Slot, reason: str) -> None:
        if self._slots.get(slot.partition) is slot:
            del self._slots[slot.partition]
        if slot.loader is not None and asyncio.current_task() is not slot.loader:
            slot.loader.cancel()
        for key, sub in list(self._streams.items()):
            if sub.partition == slot.partition:
                del self._streams[key]
                _offer(sub.queue, NotCoordinatorError(self._not_here(slot.partition)))
        log.info(
            "coordinator_unloaded",
            partition=slot.partition,
            leader_epoch=slot.leader_epoch,
            reason=reason,
        )

    def _reload(self, slot: _Slot, reason: str) -> None:
        """Drops a shard whose state may be ahead of its log; loads it again if still led."""
        self._unload(slot, reason)
        epoch = self._log.led_partitions().get(slot.partition)
        if epoch is not None:
            self._start_loading(slot.partition, epoch)

    # ---- routing ----

    def partition_of(self, group_id: str) -> int:
        count = self._metadata.offsets_partitions()
        if count is None:
            raise CoordinatorNotAvailableError(
                "__consumer_offsets does not exist yet: call FindCoordinator (it creates it) "
                "and retry"
            )
        return partition_for(group_id, count)

    def _not_here(self, partition: int) -> str:
        leader = self._metadata.leader_of(partition)
        return (
            f"broker {self._broker_id} does not coordinate __consumer_offsets-{partition} "
            f"(its leader is broker {leader}): call FindCoordinator and retry there"
        )

    def _check_slot(self, partition: int, slot: _Slot | None) -> _Slot:
        """The partition's loaded slot (``slot`` itself when given: the one a caller waited
        on), or the coordinator error that explains why there is none."""
        current = self._slots.get(partition)
        if current is not None and current.loaded and slot in (None, current):
            return current
        if current is not None:
            raise CoordinatorLoadInProgressError(
                f"broker {self._broker_id} is loading __consumer_offsets-{partition}; retry shortly"
            )
        leader = self._metadata.leader_of(partition)
        if leader < 0:
            raise CoordinatorNotAvailableError(
                f"__consumer_offsets-{partition} has no leader now: retry FindCoordinator"
            )
        if leader == self._broker_id or partition in self._log.led_partitions():
            self.wake()
            raise CoordinatorLoadInProgressError(
                f"broker {self._broker_id} has just become the coordinator of "
                f"__consumer_offsets-{partition} and is about to load it; retry shortly"
            )
        raise NotCoordinatorError(self._not_here(partition))

    def slot_of(self, group_id: str) -> _Slot:
        partition = self.partition_of(group_id)
        return self._check_slot(partition, None)

    # ---- calls ----

    async def write(self, group_id: str, call: Callable[[GroupShard, int], Outcome[R]]) -> R:
        """Runs ``call(shard, now_ms)`` on the group's shard and makes its records durable."""
        return await self._write(self.slot_of(group_id), call)

    async def read(self, group_id: str, call: Callable[[GroupShard], R]) -> R:
        """Runs a read-only call on the group's shard (after any write in progress, so it sees
        only committed state)."""
        slot = self.slot_of(group_id)
        async with slot.lock:
            slot = self._check_slot(slot.partition, slot)
            return call(slot.shard)

    async def read_all(self, call: Callable[[GroupShard], list[R]]) -> list[R]:
        """A read-only call on every loaded shard, the results concatenated."""
        results: list[R] = []
        for slot in list(self._slots.values()):
            if not slot.loaded:
                continue
            async with slot.lock:
                if self._slots.get(slot.partition) is slot:
                    results.extend(call(slot.shard))
        return results

    async def _write(self, slot: _Slot, call: Callable[[GroupShard, int], Outcome[R]]) -> R:
        """Queues the call for the shard's writer and waits for its answer."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        slot.pending.append(_PendingWrite(call, future))
        if slot.writer is None or slot.writer.done():
            slot.writer = asyncio.create_task(self._drain(slot), name="group-write")
        response: R = await future
        return response

    async def _drain(self, slot: _Slot) -> None:
        while slot.pending:
            async with slot.lock:
                await self._write_round(slot)

    async def _write_round(self, slot: _Slot) -> None:
        """Runs the queued calls on the shard, one after another, and appends all their records
        as one batch (group commit); answers them once it is committed."""
        try:
            self._check_slot(slot.partition, slot)
        except RaftkaError as e:
            _fail(slot.pending, e)
            return
        now = self._clock()
        taken: list[tuple[_PendingWrite, Outcome[Any]]] = []
        records: list[StoredRecord] = []
        size = 0
        while slot.pending and (size < MAX_COMBINED_BATCH_BYTES or not records):
            write = slot.pending.popleft()
            if write.future.done():  # the caller went away before it ran
                continue
            try:
                outcome = write.call(slot.shard, now)
            except RaftkaError as e:
                write.future.set_exception(e)  # refused before anything changed
                continue
            except Exception as e:
                log.exception("coordinator_shard_failed", partition=slot.partition)
                self._reload(slot, f"the shard failed: {e!r}")
                write.future.set_exception(e)
                error = self._retry_error(slot, "the shard failed")
                _fail([w for w, _ in taken], error)
                _fail(slot.pending, error)
                return
            taken.append((write, outcome))
            records.extend(outcome.records)
            size += sum(len(r.key) + len(r.value or b"") for r in outcome.records)
        if records:
            try:
                await self._log.append(slot.partition, slot.leader_epoch, records)
            except (RaftkaError, OSError) as e:
                log.warning(
                    "coordinator_write_failed",
                    partition=slot.partition,
                    leader_epoch=slot.leader_epoch,
                    records=len(records),
                    calls=len(taken),
                    error=str(e),
                )
                self._reload(slot, "a write failed")
                error = self._retry_error(slot, f"the write failed ({e})")
                _fail([w for w, _ in taken], error)
                _fail(slot.pending, error)
                return
        for write, outcome in taken:
            self._deliver(outcome.pushes)
            if not write.future.done():
                write.future.set_result(outcome.response)

    def _retry_error(self, slot: _Slot, what: str) -> RaftkaError:
        """The retriable error for calls lost with a dropped shard."""
        if slot.partition in self._slots:
            return CoordinatorLoadInProgressError(
                f"{what} on __consumer_offsets-{slot.partition}; the coordinator is reloading "
                "it: retry shortly"
            )
        return NotCoordinatorError(
            f"{what} on __consumer_offsets-{slot.partition} and broker {self._broker_id} no "
            "longer leads it: call FindCoordinator and retry"
        )

    # ---- pushes ----

    def subscribe(self, group_id: str, member_id: str) -> asyncio.Queue[Push]:
        """A queue of the answers pushed to this member (replacing any earlier stream's)."""
        sub = _Subscription(self.partition_of(group_id))
        old = self._streams.get((group_id, member_id))
        if old is not None:
            _offer(old.queue, NotCoordinatorError("another stream took over this member"))
        self._streams[(group_id, member_id)] = sub
        return sub.queue

    def unsubscribe(self, group_id: str, member_id: str, queue: asyncio.Queue[Push]) -> None:
        sub = self._streams.get((group_id, member_id))
        if sub is not None and sub.queue is queue:
            del self._streams[(group_id, member_id)]

    def _deliver(self, pushes: Sequence[MemberPush]) -> None:
        for push in pushes:
            sub = self._streams.get((push.group_id, push.member_id))
            if sub is not None:
                _offer(sub.queue, push.response)

    # ---- timers ----

    def start_ticks(self) -> list[asyncio.Task[None]]:
        """Starts a tick of every loaded shard that is not ticking already (a shard whose last
        tick is still being written is skipped, not queued)."""
        started = []
        for slot in list(self._slots.values()):
            if slot.loaded and (slot.ticker is None or slot.ticker.done()):
                slot.ticker = asyncio.create_task(self._tick(slot), name="group-tick")
                started.append(slot.ticker)
        return started

    async def tick_once(self) -> None:
        """Ticks every loaded shard and waits until the ticks are written."""
        started = self.start_ticks()
        if started:
            await asyncio.wait(started)

    async def _tick(self, slot: _Slot) -> None:
        topics = self._metadata.topics()
        try:
            await self._write(slot, lambda shard, now: shard.tick(now_ms=now, topics=topics))
        except RaftkaError as e:
            log.debug("coordinator_tick_failed", partition=slot.partition, error=e.message)
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


def _offer(queue: asyncio.Queue[Push], item: Push) -> None:
    """Puts ``item``, dropping the oldest waiting one when the queue is full."""
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(item)
