"""Cluster scenarios: compaction and InstallSnapshot to nodes behind the leader's snapshot."""

from __future__ import annotations

import pytest

from raftka.common.ids import NodeId
from raftka.controller.raft.messages import InstallSnapshot

from .harness.cluster import SIM_CONFIG, Cluster
from .harness.network import LinkRule

SIZES = pytest.mark.parametrize("size", [3, 5])
T = SIM_CONFIG.election_timeout_ticks


def _commit_many(c: Cluster, count: int) -> None:
    for _ in range(count):
        p = c.propose()
        assert p is not None
    c.wait_committed(c.proposals[-1], 10 * T)


def _caught_up(c: Cluster, node: NodeId, max_ticks: int = 10 * T) -> None:
    assert c.run_until(c.converged, max_ticks), f"node {node} did not catch up"
    lid = c.leader()
    assert lid is not None
    assert c.applied_data(node) == c.applied_data(lid)


def _behind_snapshot(c: Cluster, lid: NodeId, node: NodeId) -> bool:
    lead = c.nodes[lid].raft
    assert lead is not None
    return lead.status().snapshot_index > c.nodes[node].storage.snapshot_index + len(
        c.nodes[node].storage.entries
    )


@SIZES
def test_snapshot_installs_on_lagging_follower(size: int) -> None:
    c = Cluster(size, seed=30, snapshot_every=10)
    lid = c.wait_leader()
    f = next(i for i in c.ids if i != lid)
    c.net.isolate(f)
    _commit_many(c, 60)
    assert _behind_snapshot(c, lid, f)
    leader_snapshot = c.raft(lid).status().snapshot_index
    c.net.rejoin(f)
    _caught_up(c, f)
    assert c.net.count(InstallSnapshot) > 2  # chunked (64-byte chunks)
    assert c.nodes[f].storage.snapshot_index >= leader_snapshot


@SIZES
def test_snapshot_installs_on_restarted_node(size: int) -> None:
    c = Cluster(size, seed=31, snapshot_every=10)
    lid = c.wait_leader()
    _commit_many(c, 5)
    f = next(i for i in c.ids if i != lid)
    c.crash(f)
    _commit_many(c, 60)
    assert _behind_snapshot(c, lid, f)
    c.restart(f)
    _caught_up(c, f)
    assert c.net.count(InstallSnapshot) > 2


def test_snapshot_over_lossy_reordering_link() -> None:
    c = Cluster(3, seed=32, snapshot_every=10)
    lid = c.wait_leader()
    f = next(i for i in c.ids if i != lid)
    c.net.isolate(f)
    _commit_many(c, 80)
    bad = LinkRule(drop=0.25, dup=0.2, min_delay=1, max_delay=25, reorder=True)
    c.net.links[(lid, f)] = bad
    c.net.links[(f, lid)] = bad
    c.net.rejoin(f)
    _caught_up(c, f, 40 * T)


def test_snapshot_survives_leader_change_mid_transfer() -> None:
    c = Cluster(5, seed=33, snapshot_every=10)
    lid = c.wait_leader()
    f = next(i for i in c.ids if i != lid)
    c.net.isolate(f)
    _commit_many(c, 80)
    c.net.rejoin(f)
    assert c.run_until(lambda: c.net.count(InstallSnapshot) > 3, 5 * T)
    c.crash(lid)  # the transfer is cut off; the next leader starts its own
    assert c.run_until(lambda: c.stable_leader() not in (None, lid), 6 * T)
    _commit_many(c, 5)
    c.restart(lid)
    _caught_up(c, f, 20 * T)
