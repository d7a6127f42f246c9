"""Paper rules for terms, elections, pre-vote, leader stickiness and check-quorum, scripted
message by message against single nodes."""

from __future__ import annotations

from typing import Any

import pytest

from raftka.common.ids import Index, Term
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.errors import NotLeader
from raftka.controller.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    RequestVote,
    RequestVoteResponse,
)
from raftka.controller.raft.status import Role
from raftka.controller.raft.types import EntryKind, HardState

from .harness.script import (
    CONFIG,
    append,
    drain,
    elect,
    ent,
    make_node,
    n,
    of_type,
    sent,
    tick_until_campaign,
    vote_request,
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"election_timeout_ticks": 1}, "election_timeout_ticks"),
        ({"heartbeat_ticks": 0}, "heartbeat_ticks"),
        ({"heartbeat_ticks": 10}, "smaller than election_timeout_ticks"),
        ({"max_inflight": 0}, "max_inflight"),
        ({"max_append_bytes": 0}, "max_append_bytes"),
        ({"snapshot_chunk_bytes": 0}, "snapshot_chunk_bytes"),
    ],
)
def test_config_is_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RaftConfig(**kwargs)


def test_node_must_be_a_voter() -> None:
    with pytest.raises(ValueError, match="not one of the voters"):
        make_node(4, (1, 2, 3))


def test_election_timeout_is_randomized_in_t_to_2t() -> None:
    seen = set()
    for seed in range(40):
        node = make_node(seed=seed)
        ticks = 0
        while node.role is Role.FOLLOWER:
            node.tick()
            ticks += 1
        seen.add(ticks)
    assert min(seen) >= CONFIG.election_timeout_ticks
    assert max(seen) < 2 * CONFIG.election_timeout_ticks
    assert len(seen) > 3


def test_pre_vote_does_not_bump_term_or_persist() -> None:
    node = make_node(term=5, entries=[ent(1, 5)])
    msgs = tick_until_campaign(node)
    assert node.role is Role.PRE_CANDIDATE
    assert node.term == 5
    reqs = of_type(msgs, RequestVote)
    assert {r.dst for r in reqs} == {2, 3}
    assert all(r.pre_vote and r.term == 6 and r.last_index == 1 and r.last_term == 5 for r in reqs)
    assert node.status().voted_for is None


def test_candidate_persists_term_and_vote_with_its_requests() -> None:
    node = make_node(term=5, config=RaftConfig(pre_vote=False))
    node.tick()
    for _ in range(30):
        node.tick()
        if node.role is Role.CANDIDATE:
            break
    rd = node.ready()
    assert rd.hard_state == HardState(Term(6), n(1))
    reqs = of_type(rd.messages, RequestVote)
    assert len(reqs) == 2 and all(not r.pre_vote and r.term == 6 for r in reqs)


def test_leader_appends_noop_of_its_term() -> None:
    node = make_node(term=1, entries=[ent(1, 1)])
    msgs = elect(node)
    assert node.role is Role.LEADER and node.term == 2
    apps = of_type(msgs, AppendEntries)
    assert {a.dst for a in apps} == {2, 3}
    noop = apps[0].entries[-1]
    assert noop.index == 2 and noop.term == 2 and noop.kind is EntryKind.NOOP
    assert apps[0].prev_index == 1 and apps[0].prev_term == 1


def test_majority_refusal_ends_pre_campaign() -> None:
    node = make_node(voters=(1, 2, 3, 4, 5))
    msgs = tick_until_campaign(node)
    for r in of_type(msgs, RequestVote)[:3]:
        node.step(
            RequestVoteResponse(src=r.dst, dst=r.src, term=node.term, granted=False, pre_vote=True)
        )
    assert node.role is Role.FOLLOWER and node.term == 0


@pytest.mark.parametrize(
    ("last_index", "last_term", "granted"),
    [(3, 2, True), (4, 2, True), (2, 2, False), (9, 1, False), (1, 3, True)],
)
def test_vote_only_for_up_to_date_logs(last_index: int, last_term: int, granted: bool) -> None:
    node = make_node(term=2, entries=[ent(1, 1), ent(2, 2), ent(3, 2)])
    node.step(vote_request(2, 1, 3, last_index, last_term))
    (resp,) = of_type(sent(node), RequestVoteResponse)
    assert resp.granted is granted
    assert node.term == 3
    assert node.status().voted_for == (2 if granted else None)


def test_one_vote_per_term_and_repeat_grant() -> None:
    node = make_node(term=1)
    node.step(vote_request(2, 1, 2, 0, 0))
    node.step(vote_request(3, 1, 2, 0, 0))
    node.step(vote_request(2, 1, 2, 0, 0))
    answers = [r.granted for r in of_type(sent(node), RequestVoteResponse)]
    assert answers == [True, False, True]


def test_vote_is_persisted_before_the_grant_is_sent() -> None:
    node = make_node(term=1)
    node.step(vote_request(2, 1, 2, 0, 0))
    rd = node.ready()
    assert rd.hard_state == HardState(Term(2), n(2))
    assert of_type(rd.messages, RequestVoteResponse)[0].granted


def test_live_leader_makes_voters_refuse_without_changing_term() -> None:
    node = make_node(term=3)
    node.step(append(2, 1, 3, 0, 0))
    drain(node)
    for pre in (True, False):
        node.step(vote_request(3, 1, 4, 10, 3, pre_vote=pre))
        (resp,) = of_type(sent(node), RequestVoteResponse)
        assert not resp.granted and resp.term == 3
    assert node.term == 3 and node.leader_id == 2
    # A transfer campaign ignores stickiness.
    node.step(vote_request(3, 1, 4, 10, 3, transfer=True))
    (resp,) = of_type(sent(node), RequestVoteResponse)
    assert resp.granted and node.term == 4


def test_stickiness_ends_after_an_election_timeout_without_leader() -> None:
    node = make_node(term=3)
    node.step(append(2, 1, 3, 0, 0))
    drain(node)
    for _ in range(CONFIG.election_timeout_ticks):
        node.tick()
    drain(node)
    node.step(vote_request(3, 1, 4, 10, 3))
    (resp,) = of_type(sent(node), RequestVoteResponse)
    assert resp.granted


def test_pre_vote_granted_without_adopting_the_term() -> None:
    node = make_node(term=3)
    node.step(vote_request(2, 1, 4, 0, 0, pre_vote=True))
    rd = node.ready()
    (resp,) = of_type(rd.messages, RequestVoteResponse)
    assert resp.granted and resp.pre_vote and resp.term == 4
    assert node.term == 3 and rd.hard_state is None


def test_higher_term_turns_leader_into_follower() -> None:
    node = make_node()
    elect(node)
    node.step(append(3, 1, 9, 0, 0))
    assert node.role is Role.FOLLOWER and node.term == 9 and node.leader_id == 3
    assert node.ready().hard_state == HardState(Term(9), None)


def test_stale_leader_is_told_the_newer_term() -> None:
    node = make_node(term=5)
    node.step(append(2, 1, 4, 0, 0))
    (resp,) = of_type(sent(node), AppendEntriesResponse)
    assert not resp.success and resp.term == 5
    assert node.term == 5 and node.leader_id is None


def test_check_quorum_leader_steps_down() -> None:
    node = make_node()
    elect(node)
    term = node.term
    for _ in range(CONFIG.election_timeout_ticks):
        node.tick()
    assert node.role is Role.FOLLOWER and node.leader_id is None
    assert node.term == term  # stepping down does not bump the term


def test_check_quorum_keeps_leader_that_hears_from_majority() -> None:
    node = make_node()
    msgs = elect(node)
    for _ in range(3 * CONFIG.election_timeout_ticks):
        for m in of_type(msgs, AppendEntries):
            if m.dst == 2:
                node.step(
                    AppendEntriesResponse(
                        src=m.dst,
                        dst=m.src,
                        term=m.term,
                        success=True,
                        prev_index=m.prev_index,
                        match_index=Index(m.prev_index + len(m.entries)),
                        conflict_term=Term(0),
                        conflict_index=Index(0),
                        last_index=Index(m.prev_index + len(m.entries)),
                    )
                )
        node.tick()
        msgs = sent(node)
    assert node.role is Role.LEADER


def test_propose_on_non_leader_names_the_leader() -> None:
    node = make_node(term=2)
    with pytest.raises(NotLeader) as err:
        node.propose(b"x")
    assert err.value.leader_id is None and err.value.retriable
    node.step(append(3, 1, 2, 0, 0))
    with pytest.raises(NotLeader) as err:
        node.propose(b"x")
    assert err.value.leader_id == 3


def test_soft_state_reports_leader_changes() -> None:
    node = make_node()
    elect(node)
    node.step(append(2, 1, 7, 0, 0))
    rd = node.ready()
    assert rd.soft_state is not None
    assert rd.soft_state.role is Role.FOLLOWER and rd.soft_state.leader_id == 2
    node.advance(rd)
    assert not node.has_ready()
