"""Paper rules for log replication, commitment, pipelining, snapshots, leadership transfer and
the Ready contract, scripted message by message against single nodes."""

from __future__ import annotations

import pytest

from raftka.common.ids import Index, Term
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.errors import LeadershipTransferInProgress, NotLeader
from raftka.controller.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    RequestVote,
    TimeoutNow,
)
from raftka.controller.raft.node import RaftNode
from raftka.controller.raft.progress import ReplicaState
from raftka.controller.raft.status import Role
from raftka.controller.raft.types import Snapshot, SnapshotMeta

from .harness.script import (
    CONFIG,
    ack,
    append,
    drain,
    elect,
    ent,
    make_node,
    n,
    of_type,
    sent,
)

# -- follower side -----------------------------------------------------------------------------


def test_follower_appends_and_commits_up_to_last_new_entry() -> None:
    node = make_node(term=1)
    node.step(append(2, 1, 1, 0, 0, [ent(1, 1), ent(2, 1)], commit=5))
    rd = node.ready()
    assert [e.index for e in rd.entries] == [1, 2]
    (resp,) = of_type(rd.messages, AppendEntriesResponse)
    assert resp.success and resp.match_index == 2
    assert [e.index for e in rd.committed] == [1, 2]  # min(leader_commit, last new entry)


def test_follower_commit_ignores_unverified_tail() -> None:
    # Entries 2..3 of term 1 are stale: a heartbeat that matched only index 1 must not
    # commit them even though the leader's commit index is 3.
    node = make_node(term=2, entries=[ent(1, 1), ent(2, 1), ent(3, 1)])
    node.step(append(2, 1, 2, 1, 1, [], commit=3))
    drain(node)
    assert node.commit_index == 1


def test_follower_rejects_with_term_hint() -> None:
    node = make_node(term=3, entries=[ent(1, 1), ent(2, 2), ent(3, 2), ent(4, 2)])
    node.step(append(2, 1, 3, 4, 3, [ent(5, 3)]))
    (resp,) = of_type(sent(node), AppendEntriesResponse)
    assert not resp.success and resp.prev_index == 4
    assert (resp.conflict_term, resp.conflict_index, resp.last_index) == (2, 2, 4)


def test_follower_rejects_with_length_hint() -> None:
    node = make_node(term=3, entries=[ent(1, 1)])
    node.step(append(2, 1, 3, 7, 3))
    (resp,) = of_type(sent(node), AppendEntriesResponse)
    assert not resp.success and (resp.conflict_term, resp.conflict_index) == (0, 2)


def test_conflicting_entries_are_truncated_in_ready() -> None:
    node = make_node(term=2, entries=[ent(1, 1), ent(2, 1), ent(3, 1)])
    node.step(append(2, 1, 2, 1, 1, [ent(2, 2, b"new")]))
    rd = node.ready()
    assert rd.truncate_from == 2
    assert [(e.index, e.term) for e in rd.entries] == [(2, 2)]
    node.advance(rd)
    assert [(e.index, e.term) for e in node.log_entries()] == [(1, 1), (2, 2)]


def test_late_shorter_append_never_truncates() -> None:
    node = make_node(term=1)
    node.step(append(2, 1, 1, 0, 0, [ent(1, 1), ent(2, 1), ent(3, 1)]))
    drain(node)
    node.step(append(2, 1, 1, 0, 0, [ent(1, 1)]))
    rd = node.ready()
    assert rd.truncate_from is None and not rd.entries
    assert node.status().last_index == 3


def test_truncation_of_entries_still_being_persisted() -> None:
    node = make_node(term=1)
    node.step(append(2, 1, 1, 0, 0, [ent(1, 1), ent(2, 1), ent(3, 1)]))
    in_flight = node.ready()  # the runtime is writing 1..3
    node.step(append(3, 1, 2, 1, 1, [ent(2, 2)]))  # a new leader replaces 2..3
    node.advance(in_flight)
    rd = node.ready()
    assert rd.truncate_from == 2 and [(e.index, e.term) for e in rd.entries] == [(2, 2)]


# -- leader side -------------------------------------------------------------------------------


def test_leader_commits_only_own_term_entries_by_counting() -> None:
    """Figure 8: an entry of an earlier term is not committed by counting replicas."""
    cfg = RaftConfig(max_append_bytes=1)  # one entry per message
    node = make_node(term=2, entries=[ent(1, 1), ent(2, 2)], config=cfg)
    apps = of_type(elect(node), AppendEntries)  # term 3, NOOP at 3
    to2 = next(a for a in apps if a.dst == 2)
    assert to2.prev_index == 2  # probes at the NOOP
    node.step(ack(append(1, 2, 3, 1, 1, [ent(2, 2)]), match=2))  # follower holds up to 2
    drain(node)
    assert node.commit_index == 0
    node.step(ack(to2))  # now it holds the NOOP of term 3 too
    drain(node)
    assert node.commit_index == 3


def test_leader_counts_own_entries_only_once_persisted() -> None:
    node = make_node()
    for a in of_type(elect(node), AppendEntries):
        node.step(ack(a))  # followers now replicating
    drain(node)
    index, _ = node.propose(b"a")
    rd = node.ready()  # not advanced: the leader's own write is not durable yet
    to2 = next(m for m in of_type(rd.messages, AppendEntries) if m.dst == 2)
    node.step(ack(to2, match=index))
    assert node.commit_index < index
    node.advance(rd)
    assert node.commit_index == index


def test_fast_backoff_skips_whole_terms() -> None:
    # Leader log: 1@1, 2..4@3, NOOP 5@5. Follower holds 1@1 then 2..50@2 (divergent).
    node = make_node(term=4, entries=[ent(1, 1), ent(2, 3), ent(3, 3), ent(4, 3)])
    apps = of_type(elect(node), AppendEntries)
    probe = next(a for a in apps if a.dst == 2)
    assert probe.prev_index == 4
    node.step(
        AppendEntriesResponse(
            src=n(2),
            dst=n(1),
            term=node.term,
            success=False,
            prev_index=Index(4),
            match_index=Index(0),
            conflict_term=Term(2),
            conflict_index=Index(2),
            last_index=Index(50),
        )
    )
    (retry,) = [m for m in of_type(sent(node), AppendEntries) if m.dst == 2]
    assert retry.prev_index == 1  # jumped over all of term 2 in one round trip


def test_pipelining_respects_max_inflight_and_bytes() -> None:
    cfg = RaftConfig(max_inflight=3, max_append_bytes=4)
    node = make_node(config=cfg)
    apps = of_type(elect(node), AppendEntries)
    node.step(ack(next(a for a in apps if a.dst == 2)))
    node.step(ack(next(a for a in apps if a.dst == 3)))
    drain(node)
    for i in range(10):
        node.propose(bytes([i]) * 2)  # two entries fit in 4 bytes
    msgs = [m for m in of_type(sent(node), AppendEntries) if m.dst == 2]
    assert [len(m.entries) for m in msgs] == [2, 2, 2]  # window of 3, 2 entries each
    assert [m.prev_index for m in msgs] == [1, 3, 5]  # optimistic next index
    node.step(ack(msgs[0]))
    more = [m for m in of_type(sent(node), AppendEntries) if m.dst == 2]
    assert [m.prev_index for m in more] == [7]


def test_probing_sends_one_message_per_heartbeat() -> None:
    node = make_node()
    elect(node)
    for i in range(5):
        node.propose(bytes([i]))
    for _ in range(3):
        node.tick()
        to2 = [m for m in of_type(sent(node), AppendEntries) if m.dst == 2]
        assert len(to2) == 1


def _replicating_leader() -> RaftNode:
    node = make_node()
    apps = of_type(elect(node), AppendEntries)
    node.step(ack(next(a for a in apps if a.dst == 2)))
    drain(node)
    assert node.status().progress[0].state is ReplicaState.REPLICATE
    return node


def test_heartbeats_go_at_match_and_lost_appends_are_resent() -> None:
    node = _replicating_leader()
    node.propose(b"a")
    (lost,) = [m for m in of_type(sent(node), AppendEntries) if m.dst == 2]
    for _ in range(2):
        node.tick()
        (hb,) = [m for m in of_type(sent(node), AppendEntries) if m.dst == 2]
        assert hb.prev_index == lost.prev_index and not hb.entries  # never refused
    node.tick()  # no progress for a third heartbeat: the append counts as lost
    (resend,) = [m for m in of_type(sent(node), AppendEntries) if m.dst == 2]
    assert resend.entries == lost.entries
    assert node.status().progress[0].state is ReplicaState.PROBE


def test_reject_sends_replicating_follower_back_to_probe() -> None:
    node = _replicating_leader()
    node.propose(b"a")
    (lost,) = [m for m in of_type(sent(node), AppendEntries) if m.dst == 2]
    node.propose(b"b")
    (later,) = [m for m in of_type(sent(node), AppendEntries) if m.dst == 2]
    assert later.prev_index == lost.prev_index + 1
    node.step(
        AppendEntriesResponse(
            src=n(2),
            dst=n(1),
            term=node.term,
            success=False,
            prev_index=later.prev_index,
            match_index=Index(0),
            conflict_term=Term(0),
            conflict_index=Index(lost.prev_index + 1),
            last_index=lost.prev_index,
        )
    )
    (resend,) = [m for m in of_type(sent(node), AppendEntries) if m.dst == 2]
    assert resend.entries == lost.entries + later.entries
    assert node.status().progress[0].state is ReplicaState.PROBE


def test_restarted_node_redelivers_committed_entries_once_commit_is_relearned() -> None:
    node = make_node(term=1, entries=[ent(1, 1, b"a"), ent(2, 1, b"b")])
    assert node.commit_index == 0 and not node.has_ready()
    node.step(append(2, 1, 1, 2, 1, [], commit=2))
    rd = node.ready()
    assert [e.data for e in rd.committed] == [b"a", b"b"]
    node.advance(rd)
    node.step(append(2, 1, 1, 2, 1, [], commit=2))
    assert not node.ready().committed


# -- snapshots ---------------------------------------------------------------------------------


def _snap(index: int, term: int, data: bytes) -> Snapshot:
    return Snapshot(SnapshotMeta(Index(index), Term(term)), data)


def test_compact_is_bounded_by_applied_index() -> None:
    node = make_node(term=1)
    node.step(append(2, 1, 1, 0, 0, [ent(1, 1), ent(2, 1), ent(3, 1)], commit=2))
    drain(node)
    with pytest.raises(ValueError, match="past the applied index"):
        node.compact(_snap(3, 1, b"s"))
    with pytest.raises(ValueError, match="differs"):
        node.compact(_snap(2, 7, b"s"))
    node.compact(_snap(2, 1, b"s"))
    assert node.status().snapshot_index == 2
    assert [e.index for e in node.log_entries()] == [3]


def test_leader_sends_chunked_snapshot_to_follower_behind_it() -> None:
    cfg = RaftConfig(snapshot_chunk_bytes=4)
    node = make_node(term=1, entries=[ent(i, 1) for i in range(1, 6)], config=cfg)
    elect(node)  # term 2, NOOP at 6
    node.step(ack(append(1, 3, node.term, 0, 0, [ent(i, 1) for i in range(1, 6)]), match=6))
    drain(node)
    assert node.commit_index == 6
    node.compact(_snap(6, 2, b"0123456789"))
    node.step(
        AppendEntriesResponse(
            src=n(2),
            dst=n(1),
            term=node.term,
            success=False,
            prev_index=Index(5),
            match_index=Index(0),
            conflict_term=Term(0),
            conflict_index=Index(1),
            last_index=Index(0),
        )
    )
    chunks = [m for m in of_type(sent(node), InstallSnapshot) if m.dst == 2]
    assert [(c.offset, c.data, c.done) for c in chunks] == [(0, b"0123", False)]
    received = b""
    offset = 0
    while True:
        (c,) = chunks
        received += c.data
        offset += len(c.data)
        node.step(
            InstallSnapshotResponse(
                src=n(2),
                dst=n(1),
                term=node.term,
                snapshot_index=Index(6),
                next_offset=offset,
                done=c.done,
            )
        )
        if c.done:
            break
        chunks = [m for m in of_type(sent(node), InstallSnapshot) if m.dst == 2]
    assert received == b"0123456789"
    assert node.status().progress[0].match_index == 6


def test_follower_assembles_snapshot_in_order() -> None:
    node = make_node(term=1, entries=[ent(1, 1)])

    def chunk(offset: int, data: bytes, done: bool) -> InstallSnapshot:
        return InstallSnapshot(
            src=n(2),
            dst=n(1),
            term=Term(2),
            meta=SnapshotMeta(Index(9), Term(2)),
            offset=offset,
            data=data,
            total_size=6,
            done=done,
        )

    node.step(chunk(2, b"cd", False))  # not from the start: start over
    node.step(chunk(0, b"ab", False))
    node.step(chunk(0, b"ab", False))  # duplicate: ask for what comes next
    node.step(chunk(2, b"cd", False))
    answers = [(r.next_offset, r.done) for r in of_type(sent(node), InstallSnapshotResponse)]
    assert answers == [(0, False), (2, False), (2, False), (4, False)]
    node.step(chunk(4, b"ef", True))
    rd = node.ready()
    assert rd.snapshot == _snap(9, 2, b"abcdef")
    assert of_type(rd.messages, InstallSnapshotResponse)[0].done
    node.advance(rd)
    s = node.status()
    assert (s.commit_index, s.applied_index, s.snapshot_index, s.last_index) == (9, 9, 9, 9)
    assert node.log_entries() == ()


# -- leadership transfer -----------------------------------------------------------------------


def test_transfer_to_caught_up_follower_sends_timeout_now() -> None:
    node = make_node(config=RaftConfig(check_quorum=False))
    apps = of_type(elect(node), AppendEntries)
    for a in apps:
        node.step(ack(a))
    drain(node)
    node.transfer_leadership(n(3))
    (tn,) = of_type(sent(node), TimeoutNow)
    assert tn.dst == 3
    with pytest.raises(LeadershipTransferInProgress):
        node.propose(b"x")
    for _ in range(CONFIG.election_timeout_ticks):
        node.tick()
    drain(node)
    node.propose(b"x")  # the transfer was aborted after an election timeout


def test_transfer_waits_for_target_to_catch_up() -> None:
    node = make_node()
    apps = of_type(elect(node), AppendEntries)
    node.step(ack(next(a for a in apps if a.dst == 2)))
    drain(node)
    node.transfer_leadership(n(3))  # lagging: no TimeoutNow yet
    assert node.status().transfer_target == 3
    assert not of_type(sent(node), TimeoutNow)
    node.step(ack(next(a for a in apps if a.dst == 3)))
    (tn,) = of_type(sent(node), TimeoutNow)
    assert tn.dst == 3


def test_transfer_to_none_picks_most_caught_up() -> None:
    node = make_node()
    apps = of_type(elect(node), AppendEntries)
    node.step(ack(next(a for a in apps if a.dst == 3)))
    drain(node)
    node.transfer_leadership(None)
    assert node.status().transfer_target == 3
    (tn,) = of_type(sent(node), TimeoutNow)
    assert tn.dst == 3


def test_timeout_now_skips_pre_vote() -> None:
    node = make_node(term=1)
    node.step(append(2, 1, 1, 0, 0))
    drain(node)
    node.step(TimeoutNow(src=n(2), dst=n(1), term=Term(1)))
    reqs = of_type(sent(node), RequestVote)
    assert node.role is Role.CANDIDATE and node.term == 2
    assert all(r.transfer and not r.pre_vote for r in reqs)


def test_transfer_requires_leadership() -> None:
    node = make_node()
    with pytest.raises(NotLeader):
        node.transfer_leadership(n(2))


# -- the Ready contract ------------------------------------------------------------------------


def test_ready_must_be_advanced_before_the_next() -> None:
    node = make_node()
    elect(node)
    node.propose(b"a")
    rd = node.ready()
    assert not node.has_ready()
    with pytest.raises(RuntimeError):
        node.ready()
    with pytest.raises(ValueError):
        node.advance(
            type(rd)(
                hard_state=None,
                snapshot=None,
                truncate_from=None,
                entries=(),
                messages=(),
                committed=(),
                soft_state=None,
            )
        )
    node.advance(rd)
