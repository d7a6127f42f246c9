"""A follower that comes back holding less than it acknowledged (its log wiped, or its tail
cut) and entries the state machine cannot apply: the leader must notice the first at once, and
the second must never enter a log."""

from __future__ import annotations

from dataclasses import replace

import pytest

from raftka.common.ids import Index, Term
from raftka.controller.raft.errors import InvalidEntryData
from raftka.controller.raft.messages import AppendEntries, AppendEntriesResponse
from raftka.controller.raft.node import RaftNode
from raftka.controller.raft.progress import ReplicaState
from raftka.controller.raft.status import ProgressStatus

from .harness.cluster import SIM_CONFIG, Cluster
from .harness.script import ack, append, drain, elect, ent, make_node, n, of_type, sent
from .harness.state_machine import POISON

T = SIM_CONFIG.election_timeout_ticks


@pytest.mark.parametrize("seed", [3, 4])
def test_a_follower_that_lost_its_log_is_caught_up_at_once(seed: int) -> None:
    # No snapshots: before the leader took follower incarnations into account, it kept the
    # wiped follower's old match index, dropped its rejections as stale, and the follower
    # stayed empty until the next snapshot (here: forever).
    c = Cluster(3, seed=seed)
    lid = c.wait_leader()
    for p in c.propose_many(20):
        c.wait_committed(p, 8 * T)
    f = next(i for i in c.ids if i != lid)
    c.wipe_log(f)  # the operator deleted its damaged log, kept quorum-state
    c.restart(f)
    assert c.raft(f).status().last_index == 0
    target = c.raft(lid).status().last_index
    assert c.run_until(lambda: c.raft(f).status().last_index >= target, 3 * T), (
        "the leader did not notice that the follower restarted with less than it acknowledged"
    )
    later = c.must_propose()
    c.wait_committed(later, 8 * T)
    assert c.run_until(lambda: c.converged(), 10 * T)


def test_the_leader_forgets_a_restarted_followers_match_and_drops_its_old_runs_answers() -> None:
    leader = make_node(1, term=1, entries=[ent(i, 1) for i in range(1, 6)])
    msgs = elect(leader)  # term 2, NOOP at 6
    to2 = next(m for m in of_type(msgs, AppendEntries) if m.dst == n(2))
    old_run = ack(to2, match=6)
    leader.step(replace(old_run, incarnation=10))
    drain(leader)
    assert _progress(leader, 2).match_index == 6
    # Node 2 restarts with an empty log (run 11) and refuses a heartbeat at 6.
    leader.step(
        AppendEntriesResponse(
            src=n(2),
            dst=n(1),
            term=leader.term,
            success=False,
            prev_index=Index(6),
            match_index=Index(0),
            conflict_term=Term(0),
            conflict_index=Index(1),
            last_index=Index(0),
            incarnation=11,
        )
    )
    pr = _progress(leader, 2)
    assert pr.match_index == 0 and pr.state is ReplicaState.PROBE and pr.next_index == 1
    (probe,) = [m for m in of_type(sent(leader), AppendEntries) if m.dst == n(2)]
    assert probe.prev_index == 0 and [e.index for e in probe.entries][:1] == [1]
    # A late success of the old run must not count: node 2 no longer holds what it said.
    leader.step(replace(old_run, incarnation=10))
    assert _progress(leader, 2).match_index == 0
    # The new run's answer counts.
    leader.step(replace(ack(probe), incarnation=11))
    assert _progress(leader, 2).match_index == probe.prev_index + len(probe.entries)


def _progress(leader: RaftNode, node: int) -> ProgressStatus:
    return next(p for p in leader.status().progress if p.node_id == n(node))


def _check(data: bytes) -> str | None:
    return "poison" if data.startswith(POISON) else None


def test_a_leader_refuses_to_propose_data_the_state_machine_cannot_apply() -> None:
    leader = make_node(1, term=1, entry_check=_check)
    elect(leader)
    last = leader.status().last_index
    with pytest.raises(InvalidEntryData, match="poison"):
        leader.propose(POISON + b"forged")
    assert leader.status().last_index == last
    leader.propose(b"fine")


def test_a_follower_keeps_entries_it_cannot_apply_out_of_its_log_and_unacknowledged() -> None:
    follower = make_node(2, term=1, entry_check=_check)
    follower.step(append(1, 2, 1, 0, 0, [ent(1, 1), ent(2, 1, POISON + b"x")], commit=2))
    rds = drain(follower)
    assert all(not rd.entries and not rd.committed for rd in rds)
    assert not [m for rd in rds for m in of_type(rd.messages, AppendEntriesResponse)]
    assert follower.status().last_index == 0 and follower.refused_appends == 1
    follower.step(append(1, 2, 1, 0, 0, [ent(1, 1)], commit=1))  # a sound message still works
    assert follower.status().last_index == 1
