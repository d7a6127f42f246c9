"""Cluster scenarios: log agreement (the classic Raft lab's replication tests)."""

from __future__ import annotations

import pytest

from raftka.common.ids import NodeId
from raftka.controller.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    RequestVote,
    RequestVoteResponse,
)
from raftka.controller.raft.status import Role

from .harness.cluster import SIM_CONFIG, Cluster, Proposal

SIZES = pytest.mark.parametrize("size", [3, 5])
T = SIM_CONFIG.election_timeout_ticks


def _commit(c: Cluster, node_id: NodeId | None = None, max_ticks: int = 6 * T) -> Proposal:
    p = c.propose(node_id=node_id)
    assert p is not None, "proposal refused"
    c.wait_committed(p, max_ticks)
    return p


def _all_apply(c: Cluster, p: Proposal, max_ticks: int = 6 * T) -> None:
    def done() -> bool:
        return all(p.data in c.applied_data(i) for i in c.alive())

    assert c.run_until(done, max_ticks), f"not every node applied {p}"


@SIZES
def test_basic_agreement(size: int) -> None:
    c = Cluster(size, seed=10)
    c.wait_leader()
    for expected in range(2, 5):  # index 1 is the first leader's NOOP
        p = _commit(c)
        assert p.index == expected
        _all_apply(c, p)
    first = c.applied_data(c.ids[0])
    assert all(c.applied_data(i) == first for i in c.ids)


@SIZES
def test_agreement_despite_failed_follower(size: int) -> None:
    c = Cluster(size, seed=11)
    lid = c.wait_leader()
    _commit(c)
    down = next(i for i in c.ids if i != lid)
    c.net.isolate(down)
    for _ in range(3):
        _commit(c)
    c.net.rejoin(down)
    p = _commit(c)
    _all_apply(c, p)


@SIZES
def test_no_agreement_without_majority(size: int) -> None:
    c = Cluster(size, seed=12)
    lid = c.wait_leader()
    _commit(c)
    followers = [i for i in c.ids if i != lid]
    for i in followers[: size // 2 + 1]:
        c.net.isolate(i)
    p = c.propose(node_id=lid)
    assert p is not None
    c.run_ticks(3 * T)
    assert not c.is_committed(p)
    old = c.nodes[lid].raft
    assert old is not None and old.role is Role.FOLLOWER  # check-quorum made it step down
    c.net.heal()
    c.wait_leader()
    q = _commit(c)
    _all_apply(c, q)


@SIZES
def test_concurrent_proposals(size: int) -> None:
    c = Cluster(size, seed=13)
    c.wait_leader()
    props = c.propose_many(40)
    assert [p.index for p in props] == list(range(props[0].index, props[0].index + 40))
    for p in props:
        c.wait_committed(p)
    _all_apply(c, props[-1])
    data = c.applied_data(c.ids[0])
    assert data[-40:] == [p.data for p in props]


@SIZES
def test_rejoin_of_partitioned_leader(size: int) -> None:
    c = Cluster(size, seed=14)
    leader1 = c.wait_leader()
    _commit(c)
    c.net.isolate(leader1)
    stale = [c.propose(node_id=leader1) for _ in range(3)]  # will never commit
    assert all(p is not None for p in stale)
    assert c.run_until(lambda: c.stable_leader() not in (None, leader1), 6 * T)
    leader2 = c.stable_leader()
    assert leader2 is not None
    _commit(c, leader2)
    c.net.isolate(leader2)
    c.net.rejoin(leader1)
    c.wait_leader()
    _commit(c)
    c.net.heal()
    c.wait_leader()
    p = _commit(c)
    _all_apply(c, p)
    for s in stale:
        assert s is not None and not c.is_committed(s) and c.is_resolved(s)


@SIZES
def test_fast_backup_over_long_divergent_logs(size: int) -> None:
    c = Cluster(size, seed=15)
    leader1 = c.wait_leader()
    _commit(c)
    half = size // 2
    # The leader and a minority keep taking entries that cannot commit.
    p1 = [leader1, *[i for i in c.ids if i != leader1][: half - 1]]
    p2 = [i for i in c.ids if i not in p1]
    c.net.partition(p1, p2)
    for _ in range(50):
        c.propose(node_id=leader1)
    # The majority elects a leader and commits plenty.
    assert c.run_until(lambda: c.stable_leader() in p2, 6 * T)
    for _ in range(50):
        c.propose()
    _commit(c)
    # That leader, cut off with a minority, takes more entries that cannot commit.
    leader2 = c.stable_leader()
    assert leader2 is not None
    group_c = [leader2, *[i for i in p2 if i != leader2][: half - 1]]
    group_d = [i for i in c.ids if i not in group_c]
    c.net.partition(group_c, group_d)
    for _ in range(50):
        c.propose(node_id=leader2)
    # The other side (with the old first leader) elects a leader, which has to back the old
    # leader's 50 divergent entries out, and commits plenty.
    before = c.stats.append_rejects
    assert c.run_until(lambda: c.stable_leader() in group_d, 6 * T)
    for _ in range(50):
        c.propose()
    _commit(c)
    c.net.heal()
    c.wait_leader()
    p = _commit(c)
    _all_apply(c, p)
    backups = c.stats.append_rejects - before
    # Lagging nodes hold ~50 divergent entries each; term hints make back-off O(terms)
    # (one entry at a time would take ~50 round trips per node).
    assert backups <= 3 * size, f"{backups} rejected AppendEntries round trips"


@SIZES
def test_rpc_counts_are_bounded(size: int) -> None:
    c = Cluster(size, seed=16)
    c.wait_leader()
    peers = size - 1
    votes = c.net.count(RequestVote)
    assert 2 * peers <= votes <= 4 * peers, f"{votes} vote requests to elect a leader"
    assert c.net.count(RequestVoteResponse) <= votes

    start = c.net.count(AppendEntries, AppendEntriesResponse)
    t0 = c.now
    for _ in range(10):
        _commit(c)
    used = c.net.count(AppendEntries, AppendEntriesResponse) - start
    ticks = (c.now - t0) // 10 + 1
    # One AppendEntries (+ answer) per follower per proposal and per heartbeat, at most.
    assert used <= 2 * peers * (10 + ticks), f"{used} messages for 10 proposals in {ticks} ticks"

    start = c.net.count(AppendEntries, AppendEntriesResponse)
    c.run_ticks(10)
    idle = c.net.count(AppendEntries, AppendEntriesResponse) - start
    assert idle <= 2 * peers * 11, f"{idle} messages in 10 idle ticks"

    start = c.net.count(AppendEntries)
    props = c.propose_many(100)
    c.wait_committed(props[-1])
    batched = c.net.count(AppendEntries) - start
    assert batched < 100 * peers // 3, f"{batched} AppendEntries for 100 batched proposals"
    assert c.net.count(RequestVote) == votes  # no election since
