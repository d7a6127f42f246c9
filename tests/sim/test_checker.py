"""The invariant checker itself: it must flag hand-made bad histories and a deliberately
broken core, and stay quiet on good histories (so that passing runs mean something)."""

from __future__ import annotations

import pytest

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.quorum.ready_processor import ReadyProcessor, _Phase
from raftka.controller.raft.leader import LeaderState
from raftka.controller.raft.messages import RequestVote
from raftka.controller.raft.node import RaftNode
from raftka.controller.raft.status import Role
from raftka.controller.raft.types import Entry, EntryKind, HardState, SnapshotMeta

from .harness.faults import run_random
from .harness.invariants import InvariantChecker, InvariantViolation, NodeView
from .harness.state_machine import ListStateMachine
from .test_persistence import run_ack_then_crash, run_figure8


def e(index: int, term: int, data: bytes = b"") -> Entry:
    return Entry(Index(index), Term(term), EntryKind.NORMAL, data)


def view(
    node: int,
    *,
    term: int = 1,
    role: Role = Role.FOLLOWER,
    commit: int = 0,
    entries: tuple[Entry, ...] = (),
    vote: int | None = None,
    durable: tuple[Entry, ...] | None = None,
    snapshot: tuple[int, int] | None = None,
    incarnation: int = 1,
    alive: bool = True,
    sm: ListStateMachine | None = None,
) -> NodeView:
    return NodeView(
        node_id=NodeId(node),
        incarnation=incarnation,
        alive=alive,
        durable_hard=HardState(Term(term), NodeId(vote) if vote is not None else None),
        durable_snapshot=SnapshotMeta(Index(snapshot[0]), Term(snapshot[1])) if snapshot else None,
        durable_entries=entries if durable is None else durable,
        term=Term(term),
        role=role,
        commit=Index(commit),
        snapshot_index=Index(snapshot[0]) if snapshot else Index(0),
        snapshot_term=Term(snapshot[1]) if snapshot else Term(0),
        entries=entries,
        sm=sm,
    )


def test_valid_history_passes() -> None:
    ck = InvariantChecker()
    log = (e(1, 1, b"a"), e(2, 1, b"b"), e(3, 2, b"c"))
    ck.observe(view(1, term=1, role=Role.LEADER, commit=2, entries=log[:2], vote=1))
    ck.observe(view(2, term=1, commit=1, entries=log[:2], vote=1))
    ck.observe(view(2, term=2, role=Role.LEADER, commit=3, entries=log, vote=2))
    ck.observe(view(1, term=2, commit=3, entries=log, vote=2))
    ck.observe(view(1, term=2, alive=False, entries=log, vote=2))
    ck.observe(view(1, term=2, commit=0, entries=log, vote=2, incarnation=2))
    assert ck.committed[3] == (2, EntryKind.NORMAL, b"c")


def test_detects_two_leaders_in_one_term() -> None:
    ck = InvariantChecker()
    ck.observe(view(1, term=3, role=Role.LEADER))
    with pytest.raises(InvariantViolation, match="two leaders in term 3"):
        ck.observe(view(2, term=3, role=Role.LEADER))


def test_detects_changed_committed_entry() -> None:
    ck = InvariantChecker()
    ck.observe(view(1, commit=1, entries=(e(1, 1, b"a"),)))
    with pytest.raises(InvariantViolation, match="committed entry 1 changed"):
        ck.observe(view(2, commit=1, entries=(e(1, 2, b"b"),), term=2))


def test_detects_log_matching_violation() -> None:
    ck = InvariantChecker()
    ck.observe(view(1, term=2, entries=(e(1, 1), e(2, 2, b"x"))))
    with pytest.raises(InvariantViolation, match="log matching broken at index 2"):
        ck.observe(view(2, term=2, entries=(e(1, 2), e(2, 2, b"x"))))


def test_detects_term_going_back_and_double_vote() -> None:
    ck = InvariantChecker()
    ck.observe(view(1, term=4, vote=2))
    with pytest.raises(InvariantViolation, match="voted twice in term 4"):
        ck.observe(view(1, term=4, vote=3))
    ck = InvariantChecker()
    ck.observe(view(1, term=4))
    with pytest.raises(InvariantViolation, match="durable term went back"):
        ck.observe(view(1, term=3, incarnation=2))


def test_detects_commit_index_going_back() -> None:
    ck = InvariantChecker()
    ck.observe(view(1, commit=2, entries=(e(1, 1), e(2, 1))))
    with pytest.raises(InvariantViolation, match="commit index went back"):
        ck.observe(view(1, commit=1, entries=(e(1, 1), e(2, 1))))


def test_detects_lost_committed_entry_on_disk() -> None:
    ck = InvariantChecker()
    log = (e(1, 1, b"a"), e(2, 1, b"b"))
    ck.observe(view(1, commit=2, entries=log))
    with pytest.raises(InvariantViolation, match="durable committed prefix shrank"):
        ck.observe(view(1, alive=False, entries=log, durable=log[:1]))


def test_detects_leader_missing_committed_entries() -> None:
    ck = InvariantChecker()
    ck.observe(view(1, term=1, commit=2, entries=(e(1, 1), e(2, 1))))
    with pytest.raises(InvariantViolation, match="leader completeness"):
        ck.observe(view(2, term=2, role=Role.LEADER, entries=(e(1, 1),)))


def test_detects_state_machine_divergence() -> None:
    ck = InvariantChecker()
    ck.observe(view(1, commit=1, entries=(e(1, 1, b"a"),)))
    sm = ListStateMachine()
    sm.apply(e(1, 1, b"z"))
    with pytest.raises(InvariantViolation, match="committed entry 1 changed"):
        ck.observe(view(2, commit=1, entries=(e(1, 1, b"a"),), sm=sm))


def test_catches_a_core_that_votes_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    real = RaftNode._on_vote_request

    def forgetful(self: RaftNode, m: RequestVote) -> None:
        self._voted_for = None  # the bug: forget whom we voted for in this term
        self._leader_id = None
        real(self, m)

    monkeypatch.setattr(RaftNode, "_on_vote_request", forgetful)
    with pytest.raises(InvariantViolation, match=r"voted twice|two leaders"):
        for seed in range(10):
            run_random(seed)


def test_catches_a_core_that_breaks_the_figure8_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    def commit_by_counting(self: LeaderState) -> bool:
        match = {v: pr.match for v, pr in self.progress.items()}
        match[self._id] = self._log.stable_to
        index = self._voters.committed_index(match)
        # The bug: no check that the entry at ``index`` is of the leader's term.
        return index > self._log.commit and self._log.commit_to(index)

    monkeypatch.setattr(LeaderState, "maybe_commit", commit_by_counting)
    with pytest.raises(InvariantViolation, match=r"committed entry .* changed"):
        run_figure8(0, unreliable=True)


def _send_at_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break the shared Ready handling: messages leave when the Ready is written, before its
    fsync (and ``send`` then sends nothing)."""
    real_write = ReadyProcessor.write

    def write_and_send(self: ReadyProcessor) -> None:
        real_write(self)
        ready = self.in_flight
        assert ready is not None
        if ready.messages:
            self._outbox.send(list(ready.messages))

    def send_nothing(self: ReadyProcessor) -> None:
        self._phase = _Phase.SENT

    monkeypatch.setattr(ReadyProcessor, "write", write_and_send)
    monkeypatch.setattr(ReadyProcessor, "send", send_nothing)


def test_catches_a_runtime_that_sends_before_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    _send_at_write(monkeypatch)
    with pytest.raises(InvariantViolation, match=r"before it was durable|durable only to"):
        run_random(0)


def test_a_crash_between_send_and_fsync_breaks_safety(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the send-time check, the history checks still catch a runtime that sends before
    its fsync: a follower acknowledges an entry, crashes before the fsync and loses it (on the
    seeds where the crash keeps none of the unflushed writes), and the next leader lacks a
    committed entry."""
    _send_at_write(monkeypatch)
    monkeypatch.setattr(InvariantChecker, "observe_send", lambda *args, **kwargs: None)
    with pytest.raises(InvariantViolation, match=r"leader completeness|committed entry"):
        for seed in range(10):
            run_ack_then_crash(seed)
