"""The group coordinator's runtime: the generic coordinator runtime
(:mod:`raftka.broker.coordinator.runtime`: loading, group-commit writes, ticks, reload on a
failed write) over the ``__consumer_offsets`` shards, plus pushes and transaction markers.

Transaction markers: WriteTxnMarkers for a ``__consumer_offsets`` partition comes here
(:meth:`GroupCoordinator.complete_transaction`), so the marker is appended through the
shard's write path and the pending transactional offsets are settled right after it; loading
replays the markers at their place in the log.

Pushes: a ConsumerGroupStream call subscribes its (group, member) and receives the answers the
coordinator computes for that member on its own (a revocation when another member joins),
once the records of the call that computed them are committed. A member's stream ends with
NOT_COORDINATOR when its group's shard is unloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from raftka.broker.coordinator.api import ShardOutcome, StoredMarker
from raftka.broker.coordinator.runtime import (
    DEFAULT_TICK_INTERVAL_MS,
    CoordinatorRuntime,
    ShardCall,
    Slot,
)
from raftka.broker.groups.api import GroupShard, MemberPush, Outcome, TopicsView
from raftka.broker.groups.offsets_log import OffsetsLog
from raftka.broker.groups.placement import OFFSETS_TOPIC
from raftka.common.clock import wall_clock_ms
from raftka.common.errors import (
    InvalidProducerEpochError,
    NotEnoughReplicasError,
    RaftkaError,
)
from raftka.common.group_errors import NotCoordinatorError
from raftka.common.txn_errors import TransactionCoordinatorFencedError
from raftka.v1 import groups_pb2 as gpb

__all__ = ["DEFAULT_TICK_INTERVAL_MS", "CoordinatorMetadata", "GroupCoordinator", "Push"]

PUSH_QUEUE_SIZE = 16
"""Pushes waiting for one stream; older ones are dropped past that (the member's next
heartbeat carries its assignment anyway)."""

_MARKER_REFUSED = (
    InvalidProducerEpochError,
    TransactionCoordinatorFencedError,
    NotEnoughReplicasError,
)
"""A marker write that failed with these wrote nothing: the shard is still the log's."""

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
class _Subscription:
    partition: int
    queue: asyncio.Queue[Push] = field(
        default_factory=lambda: asyncio.Queue(maxsize=PUSH_QUEUE_SIZE)
    )


class GroupCoordinator(CoordinatorRuntime[GroupShard]):
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
        super().__init__(
            topic=OFFSETS_TOPIC,
            internal_log=offsets_log,
            shard_factory=lambda partition, _leader_epoch: shard_factory(partition),
            partition_count=metadata.offsets_partitions,
            leader_of=metadata.leader_of,
            broker_id=broker_id,
            clock=clock,
            tick_interval_ms=tick_interval_ms,
        )
        self._metadata = metadata
        self._streams: dict[tuple[str, str], _Subscription] = {}

    # ---- the runtime's hooks ----

    def _on_committed(self, slot: Slot[GroupShard], outcome: ShardOutcome[object]) -> None:
        if isinstance(outcome, Outcome):
            self._deliver(outcome.pushes, slot.shard)

    def _on_unloaded(self, slot: Slot[GroupShard]) -> None:
        for key, sub in list(self._streams.items()):
            if sub.partition == slot.partition:
                del self._streams[key]
                _offer(sub.queue, NotCoordinatorError(self.not_here(slot.partition)))

    def _tick_call(self) -> ShardCall[GroupShard, None]:
        topics = self._metadata.topics()
        return lambda shard, now: shard.tick(now_ms=now, topics=topics)

    def _load_summary(self, shard: GroupShard) -> Mapping[str, object]:
        return {"groups": len(shard.group_ids())}

    def _replay_marker(self, shard: GroupShard, marker: StoredMarker) -> None:
        shard.replay_marker(marker.producer_id, marker.committed)

    def _transactional_producer(self, outcome: ShardOutcome[object]) -> tuple[int, int] | None:
        return outcome.transactional_producer if isinstance(outcome, Outcome) else None

    # ---- transaction markers ----

    async def complete_transaction(
        self,
        partition: int,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        coordinator_epoch: int,
    ) -> None:
        """WriteTxnMarkers for ``__consumer_offsets-partition`` (the MarkerWriter's
        ``group_marker`` hook): under the shard's write lock, appends the marker (acks=all),
        then settles the producer's pending offsets in the shard. Raises the coordinator error
        (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS: the sender retries) when the partition
        is not loaded here, and the partition's refusal (InvalidProducerEpochError,
        TransactionCoordinatorFencedError) having changed nothing. A write whose outcome is
        unknown reloads the shard, whose replay then settles the offsets as the log says."""
        slot = self._check_slot(partition, None)
        async with slot.lock:
            slot = self._check_slot(partition, slot)
            try:
                await self._log.write_marker(
                    partition,
                    slot.leader_epoch,
                    producer_id,
                    producer_epoch,
                    committed,
                    coordinator_epoch,
                )
            except _MARKER_REFUSED:
                raise
            except BaseException as e:
                self._reload(slot, f"a marker write failed ({e!r})")
                raise
            slot.shard.complete_transaction(producer_id, committed, now_ms=self._clock())

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

    def _deliver(self, pushes: Sequence[MemberPush], shard: GroupShard) -> None:
        """Each push to its member's stream; a member without one was not told (its next
        heartbeat answer carries the assignment instead)."""
        for push in pushes:
            sub = self._streams.get((push.group_id, push.member_id))
            if sub is not None:
                _offer(sub.queue, push.response)
            else:
                shard.not_told(push.group_id, push.member_id)


def _offer(queue: asyncio.Queue[Push], item: Push) -> None:
    """Puts ``item``, dropping the oldest waiting one when the queue is full."""
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(item)
