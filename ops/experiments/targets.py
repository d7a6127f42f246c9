"""What the cluster looks like when a fault strikes, and which node a fault's role means then.

:class:`Topology` is a snapshot of the cluster's answers (the controller leader, each
partition's leader and replicas); :func:`resolve_target` turns a fault's role into a node id
using only that snapshot and the fault's seeded ``choice``, so the same schedule against the
same answers always picks the same nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from raftka.ops.experiments.schedule import Fault, TargetRole


@dataclass(frozen=True, slots=True)
class ObservedPartition:
    leader: int
    """-1 when the partition has no leader."""
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Topology:
    controllers: tuple[int, ...]
    brokers: tuple[int, ...]
    controller_leader: int | None = None
    partitions: Mapping[int, ObservedPartition] = field(default_factory=dict)

    def led_by(self, node: int) -> tuple[int, ...]:
        """The partitions ``node`` leads."""
        return tuple(sorted(p for p, s in self.partitions.items() if s.leader == node))


class NoTarget(Exception):
    """No node fits the fault's role right now (no leader, no follower, unknown node)."""


def resolve_target(fault: Fault, topology: Topology) -> int:
    """The node ``fault`` strikes, given the cluster as ``topology`` shows it."""
    role = fault.target
    if role is TargetRole.NODE:
        assert fault.node is not None
        if fault.node not in (*topology.controllers, *topology.brokers):
            raise NoTarget(f"node {fault.node} is not in the cluster")
        return fault.node
    if role is TargetRole.CONTROLLER_LEADER:
        if topology.controller_leader is None:
            raise NoTarget("no controller leader")
        return topology.controller_leader
    if role is TargetRole.CONTROLLER_FOLLOWER:
        candidates = [c for c in topology.controllers if c != topology.controller_leader]
        return _pick(candidates, fault.choice, "controller follower")
    if role is TargetRole.RANDOM_BROKER:
        return _pick(list(topology.brokers), fault.choice, "broker")
    state = topology.partitions.get(fault.partition)
    if state is None:
        raise NoTarget(f"partition {fault.partition} is unknown")
    if role is TargetRole.PARTITION_LEADER:
        if state.leader < 0:
            raise NoTarget(f"partition {fault.partition} has no leader")
        return state.leader
    followers = [r for r in state.replicas if r != state.leader]
    return _pick(followers, fault.choice, f"follower of partition {fault.partition}")


def _pick(candidates: list[int], choice: int, what: str) -> int:
    if not candidates:
        raise NoTarget(f"no {what}")
    ordered = sorted(candidates)
    return ordered[choice % len(ordered)]
