"""What the shard keeps about members only in memory: session and rebalance deadlines, and what
each member was last told (so an answer carries the assignment only when it changed)."""

from __future__ import annotations

from dataclasses import dataclass

from raftka.broker.groups.state import TopicPartitions

MemberKey = tuple[str, str]  # (group id, member id)


@dataclass(frozen=True, slots=True)
class Told:
    epoch: int
    assigned: TopicPartitions


class MemberTracker:
    __slots__ = ("pushed_adds", "rebalance_deadline", "session_deadline", "told")

    def __init__(self) -> None:
        self.session_deadline: dict[MemberKey, int] = {}
        self.rebalance_deadline: dict[MemberKey, int] = {}
        self.told: dict[MemberKey, Told] = {}
        # Partitions pushed to a member since its last heartbeat: the next heartbeat may have
        # been sent before the push arrived, so its report does not prove they were released.
        self.pushed_adds: dict[MemberKey, frozenset[tuple[str, int]]] = {}

    def touch(self, key: MemberKey, deadline_ms: int) -> None:
        self.session_deadline[key] = deadline_ms

    def forget(self, key: MemberKey) -> None:
        self.session_deadline.pop(key, None)
        self.rebalance_deadline.pop(key, None)
        self.told.pop(key, None)
        self.pushed_adds.pop(key, None)

    def forget_group(self, group_id: str) -> None:
        keys = {
            k
            for table in (
                self.session_deadline,
                self.rebalance_deadline,
                self.told,
                self.pushed_adds,
            )
            for k in table
            if k[0] == group_id
        }
        for key in keys:
            self.forget(key)

    def expired(self, now_ms: int) -> list[tuple[MemberKey, str]]:
        """Members whose session or rebalance timeout passed, with which one, sorted."""
        out: dict[MemberKey, str] = {}
        for key, deadline in self.rebalance_deadline.items():
            if deadline <= now_ms:
                out[key] = "rebalance_timeout"
        for key, deadline in self.session_deadline.items():
            if deadline <= now_ms:
                out[key] = "session_timeout"
        return sorted(out.items())

    def next_deadline_ms(self) -> int | None:
        deadlines = [*self.session_deadline.values(), *self.rebalance_deadline.values()]
        return min(deadlines) if deadlines else None
