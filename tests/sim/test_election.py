"""Cluster scenarios: elections, pre-vote, check-quorum and leadership transfer."""

from __future__ import annotations

from functools import partial

import pytest

from raftka.common.ids import NodeId
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.errors import LeadershipTransferInProgress
from raftka.controller.raft.messages import RequestVote
from raftka.controller.raft.status import Role

from .harness.cluster import SIM_CONFIG, Cluster

SIZES = pytest.mark.parametrize("size", [3, 5])
T = SIM_CONFIG.election_timeout_ticks


@SIZES
def test_initial_election(size: int) -> None:
    c = Cluster(size, seed=1)
    lid = c.wait_leader(4 * T)
    term = c.max_term()
    assert term >= 1
    c.run_ticks(5 * T)  # a healthy cluster keeps its leader and term
    assert c.leader() == lid and c.leaders() == [lid]
    assert set(c.terms().values()) == {term}


@SIZES
def test_reelection(size: int) -> None:
    c = Cluster(size, seed=2)
    first = c.wait_leader()
    c.net.isolate(first)
    assert c.run_until(lambda: c.leader() not in (None, first), 4 * T)
    second = c.leader()
    assert second is not None
    # The old leader rejoins: it must not disturb the new one.
    c.net.rejoin(first)
    assert c.wait_leader() == second
    # Without a majority nobody can be elected: cut off the leader and enough others that
    # no group holds a majority (the old leader steps down by check-quorum).
    others = [i for i in c.ids if i != second]
    for i in [second, *others[: size // 2]]:
        c.net.isolate(i)
    c.run_ticks(6 * T)
    assert c.leaders() == []
    c.net.heal()
    c.wait_leader()


def _leads_among(c: Cluster, nodes: list[NodeId]) -> bool:
    return c.stable_leader() in nodes


@SIZES
def test_many_elections(size: int) -> None:
    c = Cluster(size, seed=3)
    c.wait_leader()
    for _ in range(8):
        out = c.rng.sample(c.ids, size // 2)
        c.net.partition(out, [i for i in c.ids if i not in out])
        majority = [i for i in c.ids if i not in out]
        assert c.run_until(partial(_leads_among, c, majority), 6 * T)
        c.net.heal()
        c.wait_leader()
    assert len(c.checker.leaders) >= 2


@SIZES
def test_pre_vote_keeps_rejoining_node_from_disrupting(size: int) -> None:
    c = Cluster(size, seed=4)
    lid = c.wait_leader()
    term = c.max_term()
    victim = next(i for i in c.ids if i != lid)
    c.net.isolate(victim)
    c.run_ticks(10 * T)
    node = c.nodes[victim].raft
    assert node is not None
    assert node.term == term  # it campaigned (pre-vote only) without bumping its term
    assert c.net.sent[RequestVote.__name__] > 0
    c.net.rejoin(victim)
    c.run_ticks(5 * T)
    assert c.leader() == lid and set(c.terms().values()) == {term}


def test_without_pre_vote_a_rejoining_node_deposes_the_leader() -> None:
    """The contrast to the test above: proves that it exercises pre-vote."""
    c = Cluster(3, seed=4, config=RaftConfig(election_timeout_ticks=T, pre_vote=False))
    lid = c.wait_leader()
    term = c.max_term()
    victim = next(i for i in c.ids if i != lid)
    c.net.isolate(victim)
    c.run_ticks(10 * T)
    c.net.rejoin(victim)
    c.run_ticks(5 * T)
    assert c.max_term() > term + 1


@SIZES
def test_check_quorum_leader_cut_off_steps_down(size: int) -> None:
    c = Cluster(size, seed=5)
    lid = c.wait_leader()
    c.net.isolate(lid)
    c.run_ticks(2 * T + 1)
    old = c.nodes[lid].raft
    assert old is not None and old.role is Role.FOLLOWER and old.leader_id is None
    assert c.stable_leader() not in (None, lid)


def test_without_check_quorum_a_cut_off_leader_stays() -> None:
    c = Cluster(3, seed=5, config=RaftConfig(election_timeout_ticks=T, check_quorum=False))
    lid = c.wait_leader()
    c.net.isolate(lid)
    c.run_ticks(4 * T)
    old = c.nodes[lid].raft
    assert old is not None and old.role is Role.LEADER


@SIZES
def test_leadership_transfer_is_quick(size: int) -> None:
    c = Cluster(size, seed=6)
    lid = c.wait_leader()
    c.wait_committed(c.must_propose())
    term = c.max_term()
    target = next(i for i in c.ids if i != lid)
    c.transfer_leadership(target)
    assert c.run_until(lambda: c.leader() == target, 3)  # well under an election timeout
    assert c.max_term() == term + 1
    c.wait_committed(c.must_propose())


@SIZES
def test_leadership_transfer_waits_for_lagging_target(size: int) -> None:
    c = Cluster(size, seed=7)
    lid = c.wait_leader()
    target = next(i for i in c.ids if i != lid)
    c.net.isolate(target)
    props = [c.must_propose() for _ in range(30)]
    for p in props:
        c.wait_committed(p)
    c.net.rejoin(target)
    c.transfer_leadership(target)
    with pytest.raises(LeadershipTransferInProgress):
        c.raft(lid).propose(b"refused")
    assert c.run_until(lambda: c.leader() == target, T)
    assert c.raft(target).status().last_index > props[-1].index
    c.wait_committed(c.must_propose())


def test_leadership_transfer_aborts_when_target_unreachable() -> None:
    c = Cluster(3, seed=8)
    lid = c.wait_leader()
    target = next(i for i in c.ids if i != lid)
    c.net.isolate(target)
    c.transfer_leadership(target)
    assert c.propose() is None
    c.run_ticks(T + 1)
    assert c.leader() == lid
    c.wait_committed(c.must_propose())
