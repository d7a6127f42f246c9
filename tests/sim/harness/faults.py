"""Random fault schedules for the seed sweep: one seed fully determines a run.

A run builds a 3- or 5-voter cluster, then for ``fault_ticks`` ticks proposes entries while
the network drops, duplicates, delays, reorders and partitions messages, nodes crash (now, or
at an armed point inside their next Ready, losing unflushed writes) and restart, and leaders
are asked to hand over. Then everything heals and the run must show liveness: a stable leader,
every proposal resolved (committed, or its index committed with another entry), and every node
applying the same committed log.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from raftka.common.ids import NodeId
from raftka.controller.raft.config import RaftConfig

from .cluster import Cluster
from .network import LinkRule
from .node import CrashPoint


@dataclass(frozen=True, slots=True)
class RunSummary:
    seed: int
    size: int
    proposals: int
    committed: int
    events: int
    ticks: int
    crashes: int


def replay_command(seed: int, test: str = "tests/sim/test_random.py") -> str:
    return f".venv/bin/python -m pytest {test} --sim-seed {seed}"


def _random_rule(rng: random.Random) -> LinkRule:
    slow = rng.random() < 0.3
    return LinkRule(
        drop=rng.choice((0.0, 0.02, 0.1, 0.3)),
        dup=rng.choice((0.0, 0.05, 0.2)),
        min_delay=1,
        max_delay=rng.randint(20, 60) if slow else rng.randint(2, 8),
        reorder=rng.random() < 0.5,
    )


def run_random(seed: int, *, fault_ticks: int = 120, settle_ticks: int = 200) -> RunSummary:
    rng = random.Random(seed * 7 + 3)
    size = rng.choice((3, 5))
    config = RaftConfig(
        election_timeout_ticks=10,
        heartbeat_ticks=rng.choice((1, 1, 2, 3)),
        max_inflight=rng.choice((2, 8, 64)),
        max_append_bytes=rng.choice((32, 256, 4096)),
        # Chunks go one per round trip and the list state machine's snapshot grows with
        # history: long runs use chunks big enough to catch up within the settle budget.
        snapshot_chunk_bytes=rng.choice((64, 1024, 65536) if fault_ticks <= 300 else (1024, 65536)),
        check_quorum=rng.random() < 0.8,
        pre_vote=rng.random() < 0.8,
    )
    cluster = Cluster(
        size,
        seed=seed,
        config=config,
        snapshot_every=rng.choice((None, 5, 12, 30)),
        fsync_delay=rng.choice((None, (1, 4), (1, 15))),
    )
    ids = cluster.ids
    p_propose = rng.choice((0.2, 0.5, 0.9))
    p_net = rng.choice((0.03, 0.08, 0.15))
    p_crash = rng.choice((0.0, 0.01, 0.03, 0.08))
    p_crash_leader = rng.choice((0.0, 0.5))
    max_down = rng.choice((5, 40))
    down_for: dict[NodeId, int] = {}

    for _ in range(fault_ticks):
        if rng.random() < p_propose:
            for _ in range(rng.randint(1, 3)):
                cluster.propose()
        if rng.random() < p_net:
            kind = rng.randrange(6)
            net = cluster.net
            if kind == 0:
                net.default = _random_rule(rng)
            elif kind == 1:
                a, b = rng.sample(ids, 2)
                net.links[(a, b)] = _random_rule(rng)
            elif kind == 2:
                shuffled = list(ids)
                rng.shuffle(shuffled)
                cut = rng.randint(1, size // 2)
                net.partition(shuffled[:cut], shuffled[cut:])
            elif kind == 3:
                net.isolate(rng.choice(ids))
            elif kind == 4:
                a, b = rng.sample(ids, 2)
                net.cut.add((a, b))
            else:
                net.heal()
        if rng.random() < p_crash:
            lid = cluster.leader()
            victim = lid if lid is not None and rng.random() < p_crash_leader else rng.choice(ids)
            if cluster.nodes[victim].alive:
                if rng.random() < 0.5:
                    cluster.arm_crash(victim, rng.choice(list(CrashPoint)))
                else:
                    cluster.crash(victim)
                down_for[victim] = rng.randint(1, max_down)
        for n in list(down_for):
            if not cluster.nodes[n].alive:
                down_for[n] -= 1
                if down_for[n] <= 0:
                    del down_for[n]
                    cluster.restart(n)
        if rng.random() < 0.01:
            target = rng.choice((None, *ids))
            lid = cluster.leader()
            if lid is not None and target != lid:
                cluster.transfer_leadership(target)
        cluster.run_ticks(1)

    # Heal: reliable network, everyone back up.
    cluster.net.heal()
    for n in ids:
        cluster.nodes[n].crash_at = None
        cluster.restart(n)
    start = cluster.now
    budget_end = start + settle_ticks * 10

    def done() -> bool:
        return all(cluster.is_resolved(p) for p in cluster.proposals) and cluster.converged()

    assert cluster.run_until(lambda: cluster.stable_leader() is not None, settle_ticks), (
        f"no stable leader {settle_ticks} ticks after healing (terms {cluster.terms()})"
    )
    while not done():
        remaining = (budget_end - cluster.now) // 10
        if remaining <= 0:
            unresolved = [p for p in cluster.proposals if not cluster.is_resolved(p)]
            states = {
                i: (n.raft.role.value, n.raft.term, n.raft.commit_index, n.applied_index)
                for i, n in cluster.nodes.items()
                if n.raft is not None
            }
            raise AssertionError(
                f"not live {settle_ticks} ticks after healing: {len(unresolved)} proposals "
                f"unresolved (first {unresolved[:1]}), nodes {states}"
            )
        # Proposals after healing push the commit index past every earlier proposal.
        open_indexes = [p.index for p in cluster.proposals if not cluster.is_resolved(p)]
        lid = cluster.leader()
        lead = cluster.nodes[lid].raft if lid is not None else None
        if open_indexes and lead is not None:
            for _ in range(max(1, min(50, max(open_indexes) - lead.status().last_index))):
                cluster.propose()
        cluster.run_until(done, min(5, remaining))

    committed = sum(1 for p in cluster.proposals if cluster.is_committed(p))
    return RunSummary(
        seed=seed,
        size=size,
        proposals=len(cluster.proposals),
        committed=committed,
        events=cluster.events,
        ticks=cluster.now // 10,
        crashes=cluster.stats.crashes,
    )
