"""Per-partition backoff of a follower's fetches from one leader.

A partition the leader answered with an error (it does not lead it yet, an epoch mismatch, a
refused truncation) is left out of the next fetches for a while: 0.1 s after the first
error, doubling while errors persist, up to 1 s. The other partitions keep flowing in the
meantime, and thousands of partitions a leader cannot serve yet (a large topic just created,
whose logs it is still opening) cost it a few error answers a second each, not one per
fetch. A new leader epoch for the partition starts afresh, so a failover is not slowed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

INITIAL_BACKOFF_S = 0.1
MAX_BACKOFF_S = 1.0

Key = tuple[str, int]


@dataclass(slots=True)
class _Delay:
    leader_epoch: int
    failures: int
    until: float


class FetchBackoff:
    def __init__(
        self,
        *,
        initial_s: float = INITIAL_BACKOFF_S,
        max_s: float = MAX_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._clock = clock
        self._delays: dict[Key, _Delay] = {}

    def failed(self, key: Key, leader_epoch: int) -> None:
        delay = self._delays.get(key)
        failures = 1 if delay is None or delay.leader_epoch != leader_epoch else delay.failures + 1
        wait = min(self._max_s, self._initial_s * 2 ** (failures - 1))
        self._delays[key] = _Delay(leader_epoch, failures, self._clock() + wait)

    def succeeded(self, key: Key) -> None:
        self._delays.pop(key, None)

    def waiting(self, key: Key, leader_epoch: int, now: float) -> bool:
        """Whether ``key`` at ``leader_epoch`` must not be fetched yet."""
        delay = self._delays.get(key)
        return delay is not None and delay.leader_epoch == leader_epoch and now < delay.until

    def next_expiry(self, now: float) -> float | None:
        """Seconds until the first delay ends (None when nothing waits)."""
        pending = [d.until for d in self._delays.values() if d.until > now]
        return min(pending) - now if pending else None

    def retain(self, keys: Collection[Key]) -> None:
        """Forget partitions no longer followed from this leader."""
        for key in [k for k in self._delays if k not in keys]:
            del self._delays[key]

    def __len__(self) -> int:
        return len(self._delays)
