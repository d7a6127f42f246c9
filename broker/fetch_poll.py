"""What every Fetch shares, whatever its wire (gRPC's BrokerService, the Kafka listener): the
leader and leader-epoch check of a partition named in it, and the long poll that reads
rounds until min_bytes have come, an error settles the answer, or max_wait passes.

A round is read by the caller (one pass over the partitions) and reports its batch bytes,
the events that fire on each read partition's next append (taken before its read, so an
append racing with the read still wakes the poll) and whether something in it must be
answered at once (an error, a divergence). A round that is not answered is released (its
file regions closed) before the next.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from raftka.broker.partition import NotLeaderOrFollowerError, Partition, check_current_leader_epoch
from raftka.broker.replica_manager import ReplicaManager
from raftka.common.clock import monotonic_ms

T = TypeVar("T")


def leader_partition(
    replicas: ReplicaManager, topic: str, partition: int, epoch: int | None
) -> Partition:
    """The partition if this broker leads it. Otherwise, as Kafka checks the leader epoch
    first (KIP-320): FENCED_LEADER_EPOCH for an ``epoch`` older than the one this broker
    knows, UNKNOWN_LEADER_EPOCH for a newer one (this broker is behind), else
    NOT_LEADER_OR_FOLLOWER with the leader this broker knows."""
    try:
        return replicas.leader_partition(topic, partition)
    except NotLeaderOrFollowerError as e:
        if e.leader_epoch >= 0:
            check_current_leader_epoch(
                epoch, e.leader_epoch, f"{topic}-{partition}", leader_id=e.leader_id
            )
        raise


@dataclass(slots=True)
class PollRound(Generic[T]):
    """One pass over a Fetch's partitions."""

    answer: T
    nbytes: int = 0
    """Batch bytes read."""
    wakes: list[asyncio.Event] = field(default_factory=list)
    """Fire on the next append of a partition read."""
    settled: bool = False
    """Something must be answered now: waiting would not change it."""
    release: Callable[[], None] | None = None
    """Frees what the answer holds (file regions) when it is not sent."""


@dataclass(frozen=True, slots=True)
class PollOutcome(Generic[T]):
    answer: T
    nbytes: int
    waited_s: float
    """Time spent waiting for data (not reading)."""


async def long_poll(
    read_round: Callable[[], Awaitable[PollRound[T]]], *, min_bytes: int, max_wait_ms: int
) -> PollOutcome[T]:
    """Read rounds until one holds ``min_bytes`` (at least 1), is settled, has nothing to
    wait on, or ``max_wait_ms`` (from now) has passed."""
    deadline_ms = monotonic_ms() + max(0, max_wait_ms)
    waited_s = 0.0
    while True:
        got = await read_round()
        remaining_ms = deadline_ms - monotonic_ms()
        if got.nbytes >= max(1, min_bytes) or got.settled or remaining_ms <= 0 or not got.wakes:
            return PollOutcome(got.answer, got.nbytes, waited_s)
        if got.release is not None:
            got.release()
        started = time.monotonic()
        await wait_any(got.wakes, remaining_ms / 1000)
        waited_s += time.monotonic() - started


async def wait_any(events: list[asyncio.Event], seconds: float) -> None:
    """Return when any event fires or ``seconds`` pass."""
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
