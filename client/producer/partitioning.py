"""Which partition a record goes to: an explicit partition wins, then a custom partitioner,
then Kafka's default: murmur2 of the key for keyed records, and uniform sticky partitioning
(KIP-794) for records without a key."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from raftka.client.producer.partitioner import partition_for_key

Availability = Callable[[], tuple[Sequence[int], Callable[[int], int]]]


@dataclass(slots=True)
class _Sticky:
    partition: int
    produced_bytes: int = 0


class StickyPartitioner:
    """Null-key records stay on one partition until ``batch_size`` bytes went there, then move
    to another partition chosen at random among those with a leader, favouring partitions with
    fewer queued batches (weights ``max_queue + 1 - queue``)."""

    def __init__(self, batch_size: int, rng: random.Random | None = None) -> None:
        self._batch_size = batch_size
        self._rng = rng or random.Random()
        self._current: dict[str, _Sticky] = {}

    def partition(self, topic: str, partitions: int, availability: Availability) -> int:
        """The topic's sticky partition; ``availability()`` (partitions with a leader, and
        each partition's queued batch count) is asked only when a new one is chosen."""
        sticky = self._current.get(topic)
        if sticky is None or sticky.partition >= partitions:
            available, queued = availability()
            sticky = self._current[topic] = _Sticky(self._choose(partitions, available, queued))
        return sticky.partition

    def current(self, topic: str, partitions: int) -> int:
        """The topic's sticky partition while it has one (else -1: call :meth:`partition`)."""
        sticky = self._current.get(topic)
        if sticky is None or sticky.partition >= partitions:
            return -1
        return sticky.partition

    def room(self, topic: str) -> int:
        """Bytes the topic's sticky partition takes before the next record moves on."""
        sticky = self._current.get(topic)
        return self._batch_size - sticky.produced_bytes if sticky is not None else 0

    def on_append(self, topic: str, partition: int, nbytes: int) -> None:
        """Count bytes sent to the sticky partition; once a batch's worth went there, the next
        record chooses a new one."""
        sticky = self._current.get(topic)
        if sticky is None or sticky.partition != partition:
            return
        sticky.produced_bytes += nbytes
        if sticky.produced_bytes >= self._batch_size:
            del self._current[topic]

    def _choose(
        self, partitions: int, available: Sequence[int], queued: Callable[[int], int]
    ) -> int:
        candidates = list(available) or list(range(partitions))
        if len(candidates) == 1:
            return candidates[0]
        queues = [queued(p) for p in candidates]
        top = max(queues)
        weights = [top + 1 - q for q in queues]
        return self._rng.choices(candidates, weights=weights)[0]


def keyed_partition(key: bytes, partitions: int) -> int:
    return partition_for_key(key, partitions)
