"""A Ready hands out at most ``max_committed_bytes_per_ready`` of committed entries (always at
least one), so the runtime applies a large backlog in slices and yields between them."""

from __future__ import annotations

import random

import pytest

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.node import RaftNode
from raftka.controller.raft.status import Role
from raftka.controller.raft.types import HardState, PersistedState


def _single_leader(max_bytes: int) -> RaftNode:
    config = RaftConfig(
        election_timeout_ticks=2, heartbeat_ticks=1, max_committed_bytes_per_ready=max_bytes
    )
    node = RaftNode(
        NodeId(1),
        [NodeId(1)],
        config,
        PersistedState(HardState(Term(0), None), None, ()),
        random.Random(1),
        entry_check=lambda _data: None,
    )
    for _ in range(10):
        node.tick()
        _handle_all(node)
        if node.status().role is Role.LEADER:
            return node
    raise AssertionError("a single voter did not elect itself in 10 ticks")


def _handle_all(node: RaftNode) -> list[tuple[Index, ...]]:
    """Handles every Ready; the indexes of the NORMAL entries each one handed out committed."""
    handed: list[tuple[Index, ...]] = []
    while node.has_ready():
        ready = node.ready()
        handed.append(tuple(e.index for e in ready.committed if e.data))
        node.advance(ready)
    return [h for h in handed if h]


def test_committed_entries_come_in_slices_of_bounded_bytes() -> None:
    node = _single_leader(max_bytes=250)
    proposed = [node.propose(bytes(100))[0] for _ in range(7)]
    slices = _handle_all(node)
    assert [i for s in slices for i in s] == proposed  # every entry once, in order
    assert [len(s) for s in slices] == [2, 2, 2, 1]


def test_an_entry_larger_than_the_bound_still_comes_alone() -> None:
    node = _single_leader(max_bytes=10)
    proposed = [node.propose(bytes(100))[0] for _ in range(3)]
    assert _handle_all(node) == [(i,) for i in proposed]


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_committed_bytes_per_ready"):
        RaftConfig(max_committed_bytes_per_ready=0)
