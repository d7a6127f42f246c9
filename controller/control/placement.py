"""Striped, rack-aware replica placement (after Kafka's StripedReplicaPlacer).

- Brokers are grouped by rack (brokers without a rack form one group). The rack order and the
  broker order inside each rack are shuffled once per call with the injected rng.
- Partition p starts at rack ``(start + p) % racks`` (``start`` random), so leaders stripe over
  the racks: A,B,C / B,C,A / C,A,B.
- The leader (first replica) is the next unfenced broker of the first rack that has one. Inside
  a rack, leaders rotate through the rack's brokers from a random offset.
- Followers are taken one per rack, visiting the racks after the leader's round-robin, so
  replicas spread over as many racks as possible; inside another rack they rotate from that
  rack's own random follower offset, inside the leader's rack they follow the leader. Unfenced
  brokers are used before any fenced one.
- No broker appears twice in a partition; placement fails with InvalidReplicationFactorError
  when the replication factor exceeds the usable brokers or no broker is unfenced.

Kafka rotates one cursor per rack for leaders and followers alike; with two racks and RF 2 that
makes only half the brokers leaders. Separate leader and follower cursors keep leaders spread
evenly across all brokers.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from raftka.common.errors import InvalidReplicationFactorError
from raftka.common.ids import BrokerId
from raftka.common.metadata.image import MetadataImage


@dataclass(frozen=True, slots=True)
class PlacementBroker:
    """A broker that may receive replicas."""

    broker_id: BrokerId
    rack: str
    fenced: bool


def usable_brokers(image: MetadataImage) -> list[PlacementBroker]:
    """Registered brokers that are not shutting down (fenced ones only as followers)."""
    return [
        PlacementBroker(reg.broker_id, reg.rack, reg.fenced)
        for reg in image.brokers.values()
        if not reg.in_controlled_shutdown
    ]


@dataclass(slots=True)
class _Rack:
    unfenced: list[BrokerId]
    fenced: list[BrokerId]
    leader_cursor: int = 0
    follower_cursor: int = 0

    def follower_candidates(self, pool: str, leader_position: int | None) -> list[BrokerId]:
        """Brokers of ``pool`` in the order followers take them: in the leader's own rack the
        ones after the leader, elsewhere from the rack's follower cursor."""
        brokers = self.unfenced if pool == "unfenced" else self.fenced
        if not brokers:
            return []
        if pool == "unfenced" and leader_position is not None:
            start = (leader_position + 1) % len(brokers)
        else:
            start = self.follower_cursor % len(brokers)
        return brokers[start:] + brokers[:start]


class StripedReplicaPlacer:
    """Places replicas for the partitions of one request; deterministic given the rng."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def place(
        self, brokers: Iterable[PlacementBroker], num_partitions: int, replication_factor: int
    ) -> list[tuple[BrokerId, ...]]:
        """Replica lists (leader first) for ``num_partitions`` partitions."""
        candidates = sorted(brokers, key=lambda b: b.broker_id)
        if len({b.broker_id for b in candidates}) != len(candidates):
            raise ValueError("placement brokers contain duplicate ids")
        if replication_factor < 1:
            raise InvalidReplicationFactorError(
                f"replication factor must be at least 1, got {replication_factor}"
            )
        if num_partitions < 0:
            raise ValueError(f"num_partitions must be >= 0, got {num_partitions}")
        if not any(not b.fenced for b in candidates):
            raise InvalidReplicationFactorError(
                "no unfenced broker is available to lead the new partitions"
            )
        if replication_factor > len(candidates):
            raise InvalidReplicationFactorError(
                f"replication factor {replication_factor} is larger than the number of usable "
                f"brokers ({len(candidates)})"
            )
        racks = self._racks(candidates)
        start = self._rng.randrange(len(racks))
        return [
            self._place_one(racks, (start + p) % len(racks), replication_factor)
            for p in range(num_partitions)
        ]

    def _racks(self, brokers: list[PlacementBroker]) -> list[_Rack]:
        names = sorted({b.rack for b in brokers})
        self._rng.shuffle(names)
        racks = []
        for name in names:
            unfenced = [b.broker_id for b in brokers if b.rack == name and not b.fenced]
            fenced = [b.broker_id for b in brokers if b.rack == name and b.fenced]
            self._rng.shuffle(unfenced)
            self._rng.shuffle(fenced)
            size = max(1, len(unfenced))
            racks.append(
                _Rack(
                    unfenced,
                    fenced,
                    leader_cursor=self._rng.randrange(size),
                    follower_cursor=self._rng.randrange(size),
                )
            )
        return racks

    @staticmethod
    def _place_one(racks: list[_Rack], first: int, replication_factor: int) -> tuple[BrokerId, ...]:
        count = len(racks)
        leader_rack = next(
            (first + k) % count for k in range(count) if racks[(first + k) % count].unfenced
        )
        rack = racks[leader_rack]
        leader_position = rack.leader_cursor % len(rack.unfenced)
        leader = rack.unfenced[leader_position]
        rack.leader_cursor += 1
        replicas = [leader]
        used = {leader}
        touched: set[int] = set()
        for pool in ("unfenced", "fenced"):
            queues = [
                [
                    b
                    for b in racks[i].follower_candidates(
                        pool, leader_position if i == leader_rack else None
                    )
                    if b not in used
                ]
                for i in range(count)
            ]
            position = leader_rack
            while len(replicas) < replication_factor and any(queues):
                position = (position + 1) % count
                if queues[position]:
                    broker = queues[position].pop(0)
                    replicas.append(broker)
                    used.add(broker)
                    touched.add(position)
            if len(replicas) == replication_factor:
                break
        for i in touched - {leader_rack}:
            racks[i].follower_cursor += 1
        return tuple(replicas)
