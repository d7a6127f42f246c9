"""Striped rack-aware placement properties (Kafka's StripedReplicaPlacer)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from raftka.common.errors import InvalidReplicationFactorError
from raftka.common.ids import BrokerId
from raftka.controller.control.placement import (
    PlacementBroker,
    StripedReplicaPlacer,
    usable_brokers,
)

from .harness import Harness


def _brokers(racks: dict[str, int], fenced: frozenset[int] = frozenset()) -> list[PlacementBroker]:
    out = []
    next_id = 0
    for rack, count in racks.items():
        for _ in range(count):
            out.append(PlacementBroker(BrokerId(next_id), rack, next_id in fenced))
            next_id += 1
    return out


def _place(
    brokers: list[PlacementBroker], partitions: int, rf: int, seed: int = 0
) -> list[tuple[BrokerId, ...]]:
    return StripedReplicaPlacer(random.Random(seed)).place(brokers, partitions, rf)


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize(
    ("racks", "rf"),
    [({"a": 3, "b": 3, "c": 3}, 3), ({"a": 2, "b": 2}, 2), ({"": 5}, 3), ({"a": 4, "b": 4}, 3)],
)
def test_replicas_spread_across_racks_and_leaders_across_brokers(
    seed: int, racks: dict[str, int], rf: int
) -> None:
    brokers = _brokers(racks)
    rack_of = {b.broker_id: b.rack for b in brokers}
    partitions = 4 * len(brokers)
    placement = _place(brokers, partitions, rf, seed)
    assert len(placement) == partitions
    for replicas in placement:
        assert len(replicas) == rf and len(set(replicas)) == rf
        # As many distinct racks as possible.
        assert len({rack_of[b] for b in replicas}) == min(rf, len(racks))
    leaders = Counter(replicas[0] for replicas in placement)
    assert set(leaders) == {b.broker_id for b in brokers}
    assert max(leaders.values()) - min(leaders.values()) <= 1
    load = Counter(b for replicas in placement for b in replicas)
    assert max(load.values()) - min(load.values()) <= 1


def test_leader_racks_stripe() -> None:
    brokers = _brokers({"a": 1, "b": 1, "c": 1})
    rack_of = {b.broker_id: b.rack for b in brokers}
    placement = _place(brokers, 6, 3, seed=3)
    leader_racks = [rack_of[r[0]] for r in placement]
    # Each rack leads once per round of three partitions, in a fixed rotation.
    assert leader_racks[:3] == leader_racks[3:] and len(set(leader_racks[:3])) == 3
    assert [rack_of[b] for b in placement[0]][1:] == [rack_of[b] for b in placement[1]][:2]


def test_placement_is_deterministic_for_a_seed_and_input_order() -> None:
    brokers = _brokers({"a": 3, "b": 2})
    assert _place(brokers, 10, 2, 5) == _place(list(reversed(brokers)), 10, 2, 5)
    assert any(_place(brokers, 10, 2, s) != _place(brokers, 10, 2, 5) for s in range(6, 12))


def test_leader_is_never_fenced_and_unfenced_brokers_come_first() -> None:
    brokers = _brokers({"a": 2, "b": 2}, fenced=frozenset({0, 1}))  # rack a fully fenced
    for seed in range(20):
        for replicas in _place(brokers, 8, 2, seed):
            assert replicas[0] in (2, 3)
            assert set(replicas) == {2, 3}  # both unfenced used before any fenced one
        for replicas in _place(brokers, 8, 3, seed):
            assert replicas[0] in (2, 3) and set(replicas[:2]) == {2, 3}
            assert replicas[2] in (0, 1)


def test_too_large_replication_factor_fails() -> None:
    with pytest.raises(InvalidReplicationFactorError, match="replication factor 4 is larger"):
        _place(_brokers({"a": 3}), 1, 4)
    with pytest.raises(InvalidReplicationFactorError, match="at least 1"):
        _place(_brokers({"a": 3}), 1, 0)
    with pytest.raises(InvalidReplicationFactorError, match="no unfenced broker"):
        _place(_brokers({"a": 2}, fenced=frozenset({0, 1})), 1, 1)
    with pytest.raises(InvalidReplicationFactorError, match="no unfenced broker"):
        _place([], 1, 1)


def test_zero_partitions_place_nothing() -> None:
    assert _place(_brokers({"a": 1}), 0, 1) == []


def test_usable_brokers_skip_controlled_shutdown() -> None:
    h = Harness()
    h.add_brokers([1, 2, 3], racks={1: "x", 2: "y", 3: "x"})
    h.register(4)
    h.create_topic("t", 1, 1)
    leader = h.leaders("t")[0]
    h.heartbeat(leader, want_shut_down=True)
    usable = {b.broker_id: b for b in usable_brokers(h.image)}
    assert leader not in usable
    assert usable[BrokerId(4)].fenced and usable[BrokerId(4)].rack == ""
    assert {b for b in usable if not usable[b].fenced} == {1, 2, 3} - {leader}
