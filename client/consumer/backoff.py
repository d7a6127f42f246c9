"""Per-partition retry backoff: after a failed fetch or lookup, a partition waits
``retry_backoff_ms``, doubling (with jitter) up to 1 s, before it is tried again."""

from __future__ import annotations

from collections.abc import Callable

from raftka.client.types import TopicPartition
from raftka.common.rpc.retry import RetryPolicy


class PartitionBackoff:
    def __init__(self, retry: RetryPolicy, clock: Callable[[], float]) -> None:
        self._retry = retry
        self._clock = clock
        self._until: dict[TopicPartition, tuple[float, int]] = {}

    def failed(self, tp: TopicPartition) -> None:
        attempts = self._until.get(tp, (0.0, 0))[1] + 1
        self._until[tp] = (self._clock() + self._retry.backoff(attempts), attempts)

    def succeeded(self, tp: TopicPartition) -> None:
        self._until.pop(tp, None)

    def waiting(self, tp: TopicPartition, now: float) -> bool:
        entry = self._until.get(tp)
        return entry is not None and entry[0] > now

    def next_expiry(self, now: float) -> float | None:
        """When the first partition still waiting may go again."""
        times = [until for until, _ in self._until.values() if until > now]
        return min(times) if times else None

    def retain(self, keep: Callable[[TopicPartition], bool]) -> None:
        for tp in [tp for tp in self._until if not keep(tp)]:
            del self._until[tp]
