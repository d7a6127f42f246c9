"""Cluster scenarios: crashes and restarts (persistence), Figure 8 and churn."""

from __future__ import annotations

import random

import pytest

from raftka.controller.raft.config import RaftConfig

from .harness.cluster import SIM_CONFIG, Cluster, Proposal
from .harness.network import LinkRule
from .harness.node import CrashPoint

SIZES = pytest.mark.parametrize("size", [3, 5])
T = SIM_CONFIG.election_timeout_ticks
UNRELIABLE = LinkRule(drop=0.1, dup=0.05, min_delay=1, max_delay=30, reorder=True)


def _commit(c: Cluster, max_ticks: int = 8 * T) -> Proposal:
    c.wait_leader(max_ticks)
    p = c.propose()
    assert p is not None, "proposal refused"
    c.wait_committed(p, max_ticks)
    return p


def _converge(c: Cluster, max_ticks: int = 20 * T) -> None:
    assert c.run_until(c.converged, max_ticks), "live nodes did not converge"
    first = c.applied_data(c.alive()[0])
    assert all(c.applied_data(i) == first for i in c.alive())


@SIZES
def test_persistence_across_follower_crash(size: int) -> None:
    c = Cluster(size, seed=20)
    lid = c.wait_leader()
    _commit(c)
    f = next(i for i in c.ids if i != lid)
    term = c.raft(f).term
    c.crash(f)
    _commit(c)
    c.restart(f)
    assert c.raft(f).term == term
    _commit(c)
    _converge(c)


@SIZES
def test_persistence_across_leader_crash(size: int) -> None:
    c = Cluster(size, seed=21)
    lid = c.wait_leader()
    before = _commit(c)
    c.crash(lid)
    assert c.run_until(lambda: c.stable_leader() not in (None, lid), 6 * T)
    _commit(c)
    c.restart(lid)
    _commit(c)
    _converge(c)
    assert before.data in c.applied_data(lid)


@SIZES
def test_persistence_across_crash_of_all_nodes(size: int) -> None:
    c = Cluster(size, seed=22)
    c.wait_leader()
    committed = [_commit(c) for _ in range(5)]
    hard = {i: c.nodes[i].storage.hard_state for i in c.ids}
    for i in c.ids:
        c.crash(i)
    c.run_ticks(3)
    for i in c.ids:
        c.restart(i)
        assert c.raft(i).term == hard[i].term
        assert c.raft(i).status().voted_for == hard[i].voted_for
    _commit(c)
    _converge(c)
    assert [p.data for p in committed] == c.applied_data(c.ids[0])[: len(committed)]


@pytest.mark.parametrize("point", list(CrashPoint))
@pytest.mark.parametrize("who", ["leader", "follower"])
def test_crash_inside_a_ready(point: CrashPoint, who: str) -> None:
    c = Cluster(3, seed=23, fsync_delay=(1, 5))
    lid = c.wait_leader()
    _commit(c)
    victim = lid if who == "leader" else next(i for i in c.ids if i != lid)
    for _ in range(5):
        c.arm_crash(victim, point)
        c.propose()
        c.run_ticks(2)
        if not c.nodes[victim].alive:
            break
    assert not c.nodes[victim].alive, "the armed crash never struck"
    c.run_ticks(2 * T)
    c.restart(victim)
    _commit(c)
    _converge(c)


def _figure8(c: Cluster, rng: random.Random, rounds: int) -> None:
    """The Raft lab's Figure 8 test: leaders crash often, right after taking entries, while
    a majority stays up; every entry that committed must survive."""
    size = len(c.ids)
    for _ in range(rounds):
        lid = c.leader()
        if lid is not None:
            c.propose(node_id=lid)
        if rng.random() < 0.1:
            c.run_ticks(rng.randint(1, 2 * T))
        else:
            c.run_ticks(rng.randint(0, 1))
        lid = c.leader()
        if lid is not None and rng.random() < 0.5:
            if rng.random() < 0.5:
                c.arm_crash(lid, rng.choice(list(CrashPoint)))
            else:
                c.crash(lid)
        if len(c.alive()) < size // 2 + 1:
            c.restart(rng.choice([i for i in c.ids if not c.nodes[i].alive]))
    c.net.heal()
    for i in c.ids:
        c.nodes[i].crash_at = None
        c.restart(i)


def run_figure8(seed: int, unreliable: bool, rounds: int = 1000) -> Cluster:
    # One entry per AppendEntries so that old-term entries can be acknowledged on their own.
    cfg = RaftConfig(election_timeout_ticks=T, max_append_bytes=1, max_inflight=2)
    c = Cluster(5, seed=seed, config=cfg, fsync_delay=(1, 8))
    if unreliable:
        c.net.default = UNRELIABLE
    c.wait_leader()
    _figure8(c, random.Random(seed), rounds)
    _commit(c, 20 * T)
    _converge(c)
    return c


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("unreliable", [False, True], ids=["reliable", "unreliable"])
def test_figure8(unreliable: bool, seed: int) -> None:
    c = run_figure8(seed, unreliable)
    assert len(c.checker.leaders) > 10
    assert c.stats.crashes > 20


def _churn(c: Cluster, rng: random.Random, rounds: int) -> None:
    ids = c.ids
    for _ in range(rounds):
        r = rng.random()
        if r < 0.15:
            victim = rng.choice(ids)
            if rng.random() < 0.5:
                c.arm_crash(victim, rng.choice(list(CrashPoint)))
            else:
                c.crash(victim)
        elif r < 0.4:
            dead = [i for i in ids if not c.nodes[i].alive]
            if dead:
                c.restart(rng.choice(dead))
        elif r < 0.5:
            shuffled = list(ids)
            rng.shuffle(shuffled)
            cut = rng.randint(1, len(ids) // 2)
            c.net.partition(shuffled[:cut], shuffled[cut:])
        elif r < 0.6:
            c.net.partition()
        for _ in range(rng.randint(0, 3)):
            c.propose()
        c.run_ticks(rng.randint(1, 5))
    c.net.heal()
    for i in ids:
        c.nodes[i].crash_at = None
        c.restart(i)


@pytest.mark.parametrize("unreliable", [False, True], ids=["reliable", "unreliable"])
@SIZES
def test_churn(size: int, unreliable: bool) -> None:
    c = Cluster(size, seed=26 + size + unreliable, snapshot_every=10, fsync_delay=(1, 6))
    if unreliable:
        c.net.default = UNRELIABLE
    _churn(c, random.Random(size), 150)
    final = _commit(c, 20 * T)
    _converge(c)
    committed = [p for p in c.proposals if c.is_committed(p)]
    assert len(committed) > 20
    assert all(c.is_resolved(p) for p in c.proposals if p.index <= final.index)
    assert c.stats.crashes > 5


def run_ack_then_crash(seed: int) -> bool:
    """A follower's acknowledgement makes an entry committed, then that follower crashes at
    its next fsync and the leader goes down too: the entry must survive on the follower,
    because Raft sends an acknowledgement only once what it acknowledges is durable. (A
    runtime that sent before its fsync would lose it, and the next leader would lack a
    committed entry.) Returns whether the entry committed (it does only if the ack left)."""
    c = Cluster(3, seed=seed, fsync_delay=(2, 6))
    lid = c.wait_leader()
    _commit(c)
    _converge(c)
    acker, down = (i for i in c.ids if i != lid)
    c.crash(down)
    c.arm_crash(acker, CrashPoint.BEFORE_SYNC)
    p = c.propose()
    assert p is not None
    c.run_ticks(3)
    assert not c.nodes[acker].alive, "the armed crash never struck"
    committed = c.is_committed(p)
    c.crash(lid)
    c.restart(down)
    c.restart(acker)
    c.wait_leader(20 * T)
    _commit(c)
    _converge(c)
    return committed


@pytest.mark.parametrize("seed", range(10))
def test_a_follower_crash_between_its_writes_and_fsync_loses_nothing_acknowledged(
    seed: int,
) -> None:
    assert not run_ack_then_crash(seed), "the entry committed without the acker's fsync"
