"""Followers gone silent: the leader's side of fast failover.

A live follower long-polls its leader without pause, so its fetches are at most FETCH_WAIT_MS
apart plus a round trip. A follower broker that sent no fetch for FOLLOWER_SILENCE_MS while it
holds back the high watermark of a partition led here (in its ISR, behind its log end) is
reported unreachable; the controller confirms with its own probe before it fences anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from raftka.broker.replication.fetcher import FETCH_ANSWER_MARGIN_MS, FETCH_WAIT_MS
from raftka.broker.replication.leader_state import LeaderReplicaState

FOLLOWER_SILENCE_MS = FETCH_WAIT_MS + FETCH_ANSWER_MARGIN_MS
"""A follower that sent no fetch for this long, while it holds back a high watermark here, is
reported unreachable (its long polls are at most FETCH_WAIT_MS apart plus a round trip; the
same bound after which a follower reports a leader that does not answer)."""


class FollowerSilence:
    """When each follower broker last fetched, and which of them hold back a high watermark."""

    def __init__(self) -> None:
        self._last_fetch_ms: dict[int, int] = {}
        """When each follower broker's last fetch arrived (or, before its first, when this
        broker started expecting one: it became a leader the follower replicates)."""
        self._expected: set[int] = set()

    def fetched(self, replica: int, now_ms: int) -> None:
        """A fetch from follower broker ``replica`` arrived (once per Fetch request)."""
        self._last_fetch_ms[replica] = now_ms

    def expect(self, followers: set[int], now_ms: int) -> None:
        """The followers of the partitions led here are ``followers``: a new one gets a full
        FOLLOWER_SILENCE_MS from ``now_ms`` before it counts as silent; the others are
        forgotten."""
        for b in followers - self._expected:
            self._last_fetch_ms[b] = now_ms
        for b in self._expected - followers:
            self._last_fetch_ms.pop(b, None)
        self._expected = followers

    def holding_back(
        self,
        now_ms: int,
        led: Iterable[LeaderReplicaState],
        is_active: Callable[[int], bool],
    ) -> list[int]:
        """The active follower brokers silent for FOLLOWER_SILENCE_MS that hold back the high
        watermark of one of the ``led`` partitions, sorted."""
        silent = {
            b
            for b in self._expected
            if now_ms - self._last_fetch_ms.get(b, now_ms) > FOLLOWER_SILENCE_MS and is_active(b)
        }
        if not silent:
            return []
        holding: set[int] = set()
        for state in led:
            if state.high_watermark >= state.leader_log_end_offset:
                continue
            for b in silent.intersection(state.isr):
                if b in state.progress and state.replica_leo(b) < state.leader_log_end_offset:
                    holding.add(b)
        return sorted(holding)
