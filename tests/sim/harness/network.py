"""SimNetwork: seeded links that drop, duplicate and delay (hence reorder) messages, plus
partitions and one-way cuts. It only decides fates; the cluster schedules the deliveries."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from raftka.common.ids import NodeId
from raftka.controller.raft.messages import Message


@dataclass(frozen=True, slots=True)
class LinkRule:
    drop: float = 0.0
    """Probability that a message is lost."""
    dup: float = 0.0
    """Probability that a message is delivered twice (each copy with its own delay)."""
    min_delay: int = 1
    max_delay: int = 3
    """Delay in simulator time units, drawn uniformly (a tick is ``TICK`` units)."""
    reorder: bool = False
    """Let a message overtake earlier ones on the link (else the link is FIFO, like a TCP
    stream: a message never arrives before one sent earlier)."""

    def __post_init__(self) -> None:
        if not (0 <= self.drop <= 1 and 0 <= self.dup <= 1):
            raise ValueError("probabilities must be in [0, 1]")
        if not 0 < self.min_delay <= self.max_delay:
            raise ValueError("need 0 < min_delay <= max_delay")


RELIABLE = LinkRule()


class SimNetwork:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.default = RELIABLE
        self.links: dict[tuple[NodeId, NodeId], LinkRule] = {}
        self._group: dict[NodeId, int] = {}
        self._next_group = 1
        self.cut: set[tuple[NodeId, NodeId]] = set()
        self._last_arrival: dict[tuple[NodeId, NodeId], int] = {}
        self.sent: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.dropped = 0

    # -- topology ------------------------------------------------------------------------------

    def connected(self, src: NodeId, dst: NodeId) -> bool:
        return self._group.get(src, 0) == self._group.get(dst, 0) and (src, dst) not in self.cut

    def partition(self, *groups: Iterable[NodeId]) -> None:
        """Split into groups that cannot talk to each other (unlisted nodes stay in group 0)."""
        self._group.clear()
        for g in groups:
            gid = self._next_group
            self._next_group += 1
            for n in g:
                self._group[n] = gid
        self.cut.clear()

    def isolate(self, node: NodeId) -> None:
        self._group[node] = self._next_group
        self._next_group += 1

    def rejoin(self, node: NodeId) -> None:
        self._group.pop(node, None)

    def heal(self) -> None:
        """Reconnect everything and make every link reliable."""
        self._group.clear()
        self.cut.clear()
        self.links.clear()
        self.default = RELIABLE

    # -- traffic -------------------------------------------------------------------------------

    def fates(self, m: Message, now: int) -> list[int]:
        """Arrival times of the copies of ``m`` sent at ``now`` (empty when it is lost)."""
        kind = type(m).__name__
        self.sent[kind] += 1
        if not self.connected(m.src, m.dst):
            self.dropped += 1
            return []
        link = (m.src, m.dst)
        rule = self.links.get(link, self.default)
        rng = self._rng
        if rule.drop and rng.random() < rule.drop:
            self.dropped += 1
            return []
        copies = 2 if rule.dup and rng.random() < rule.dup else 1
        out = []
        for _ in range(copies):
            at = now + rng.randint(rule.min_delay, rule.max_delay)
            if not rule.reorder:
                at = max(at, self._last_arrival.get(link, 0))
                self._last_arrival[link] = at
            out.append(at)
        return out

    def count(self, *kinds: type) -> int:
        return sum(self.sent[k.__name__] for k in kinds)
