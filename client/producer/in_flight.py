"""The sender's Produce requests in flight, and what moves batches off a leader that stopped
answering.

Each request is a :class:`ProduceAttempt`: the leader's address, its batches, and each
partition's leader epoch when it was sent. Counts per leader (for
max_in_flight_requests_per_connection and for the "idle leader" rule of the accumulator) and
per partition (a retry waits until its partition has nothing in flight) follow the attempts.

A frozen leader (SIGSTOP, a long GC pause, a hung disk) answers nothing, so a request to it
would wait request_timeout_ms although the controllers elect a new leader within seconds. So a
request unanswered for :data:`STALL_AFTER_S` makes the sender refresh metadata every
:data:`STALL_RECHECK_S` (asking the other brokers first), and once metadata shows a newer
leader epoch on another broker for a partition, its batches in flight to the old leader are
*abandoned* there: counted out of flight at once, their answer ignored if it ever comes, and
retried on the new leader with the same producer id, epoch and sequence numbers. That resend is
safe with idempotence: if the old leader appended a batch and it was replicated, the new leader
holds its sequence and answers with the original offset; if not, the old leader, fenced by the
new epoch, can never get it committed (its followers now follow the new leader, and it
truncates when it rejoins). A request whose every batch was abandoned is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

from raftka.client.producer.batch import ProducerBatch
from raftka.client.types import TopicPartition

STALL_AFTER_S = 1.0
"""A Produce request unanswered this long makes the sender look for a leader change. Far
above an ordinary acks=all round trip (milliseconds), far below request_timeout_ms."""
STALL_RECHECK_S = 0.5
"""How often metadata is refreshed while a request stays unanswered."""


@dataclass(eq=False, slots=True)
class ProduceAttempt:
    address: str
    batches: list[ProducerBatch]
    epochs: dict[TopicPartition, int]
    """Each partition's leader epoch in the metadata the request was sent by."""
    sent_at: float
    checked_at: float = 0.0
    """When a stall last made the sender refresh metadata for this request."""
    task: asyncio.Task[None] | None = None
    abandoned: set[ProducerBatch] = field(default_factory=set)
    """Batches moved to a new leader: this request's answer no longer counts for them."""
    released: bool = False

    @property
    def live_batches(self) -> list[ProducerBatch]:
        return [b for b in self.batches if b not in self.abandoned]


class InFlight:
    def __init__(self) -> None:
        self.attempts: set[ProduceAttempt] = set()
        self.per_leader: dict[str, int] = {}
        self.per_partition: dict[TopicPartition, int] = {}
        self.retries: dict[TopicPartition, int] = {}
        """Retried batches in flight per partition: while one is, the partition sends nothing
        else (a newer batch written meanwhile could push the retried one out of the five
        batches per producer the leader remembers for de-duplication)."""

    @property
    def requests(self) -> int:
        return len(self.attempts)

    def to_leader(self, address: str) -> int:
        return self.per_leader.get(address, 0)

    def of_partition(self, tp: TopicPartition) -> int:
        return self.per_partition.get(tp, 0)

    def retrying(self, tp: TopicPartition) -> bool:
        return self.retries.get(tp, 0) > 0

    def start(self, attempt: ProduceAttempt) -> None:
        """``attempt`` was sent (its batches' ``attempts`` already counted it)."""
        self.attempts.add(attempt)
        self.per_leader[attempt.address] = self.per_leader.get(attempt.address, 0) + 1
        for b in attempt.batches:
            self.per_partition[b.tp] = self.per_partition.get(b.tp, 0) + 1
            if b.attempts > 1:
                self.retries[b.tp] = self.retries.get(b.tp, 0) + 1

    def _leave(self, batch: ProducerBatch) -> None:
        self.per_partition[batch.tp] -= 1
        if batch.attempts > 1:
            self.retries[batch.tp] -= 1

    def abandon(self, attempt: ProduceAttempt, batch: ProducerBatch) -> None:
        """``batch`` leaves the request (it goes to a new leader); the request itself stays in
        flight for its other batches, or is released once none is left."""
        if attempt.released or batch in attempt.abandoned:
            return
        attempt.abandoned.add(batch)
        self._leave(batch)
        if len(attempt.abandoned) == len(attempt.batches):
            self.release(attempt)
            if attempt.task is not None:
                attempt.task.cancel()

    def release(self, attempt: ProduceAttempt) -> None:
        """The request is over (answered, failed, or every batch abandoned). Idempotent."""
        if attempt.released:
            return
        attempt.released = True
        self.attempts.discard(attempt)
        self.per_leader[attempt.address] -= 1
        for b in attempt.live_batches:
            self._leave(b)

    def stalled(self, now: float) -> Iterator[ProduceAttempt]:
        """Requests unanswered past STALL_AFTER_S whose metadata check is due (each is
        marked checked now)."""
        for attempt in list(self.attempts):
            if now - attempt.sent_at >= STALL_AFTER_S and (
                now - attempt.checked_at >= STALL_RECHECK_S
            ):
                attempt.checked_at = now
                yield attempt

    def next_check(self, now: float) -> float:
        """Seconds until a request in flight is due a stall check (inf if none)."""
        due = float("inf")
        for attempt in self.attempts:
            at = max(attempt.sent_at + STALL_AFTER_S, attempt.checked_at + STALL_RECHECK_S)
            due = min(due, at - now)
        return due
