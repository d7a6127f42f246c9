"""ReadyProcessor (the Ready handling shared by QuorumRuntime and the simulator), run against
recording fakes: every message leaves only once what it promises is durable."""

from __future__ import annotations

import random

import pytest

from raftka.common.errors import DataDirectoryError
from raftka.common.ids import Index, Term
from raftka.controller.metadata_log import MetadataStateMachine
from raftka.controller.quorum.ports import PeerTransport, RaftLogStore
from raftka.controller.quorum.raft_storage import RaftStorage
from raftka.controller.quorum.ready_processor import ReadyOrderError, ReadyProcessor
from raftka.controller.quorum.transport import RaftTransport
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    RequestVote,
    RequestVoteResponse,
)
from raftka.controller.raft.status import Role
from raftka.controller.raft.types import Entry, EntryKind, HardState

from .fakes import RecordingOutbox, RecordingStateMachine, RecordingStore, n

CONFIG = RaftConfig(election_timeout_ticks=5, heartbeat_ticks=1)


def make(
    node_id: int = 1, *, snapshot_due: bool = False
) -> tuple[ReadyProcessor, RecordingStore, RecordingOutbox, RecordingStateMachine]:
    store = RecordingStore()
    outbox = RecordingOutbox(store)
    sm = RecordingStateMachine()
    p = ReadyProcessor(
        node_id=n(node_id),
        voters=[n(1), n(2), n(3)],
        raft_config=CONFIG,
        storage=store,
        outbox=outbox,
        state_machine=sm,
        snapshot_due=lambda: snapshot_due,
    )
    p.open(store.load(), random.Random(7))
    return p, store, outbox, sm


def drain(p: ReadyProcessor) -> None:
    while p.handle_ready():
        pass


def calls(store: RecordingStore) -> list[str]:
    return [c.what for c in store.calls if c.what != "load"]


def _ports(storage: RaftStorage, transport: RaftTransport) -> tuple[RaftLogStore, PeerTransport]:
    """Never called: mypy --strict checks that the production classes satisfy the ports."""
    return storage, transport


def test_a_campaign_sends_its_votes_only_after_the_term_and_vote_are_synced() -> None:
    p, store, outbox, _ = make()
    while not any(isinstance(m, RequestVote) and not m.pre_vote for m in outbox.sent):
        p.node.tick()
        drain(p)
        for m in list(outbox.sent):
            if isinstance(m, RequestVote) and m.pre_vote:
                outbox.sent.remove(m)
                p.node.step(
                    RequestVoteResponse(
                        src=m.dst, dst=m.src, term=m.term, granted=True, pre_vote=True
                    )
                )
        drain(p)
    # The real campaign's Ready: term and self-vote written, fsynced, and only then sent.
    assert calls(store)[-3:] == ["write", "sync", "send"]
    assert store.durable_hard.voted_for == n(1)


def test_a_leader_replicates_commits_and_applies_in_order() -> None:
    p, store, outbox, sm = make()
    outbox.answer = p.node.step  # peers grant every vote and accept every append
    for _ in range(50):
        p.node.tick()
        drain(p)
        if p.is_leader_ready:
            break
    assert p.role is Role.LEADER and p.is_leader_ready
    index, term = p.node.propose(b"hello")
    for _ in range(5):
        drain(p)
        p.node.tick()
    assert [e.data for e in sm.applied] == [b"hello"]
    assert (p.applied_index, p.applied_term) == (index, term)
    assert store.durable_last_index >= index
    # Every send was checked against durable state by the outbox; each followed a sync when
    # its Ready had something to write.
    seq = calls(store)
    for i, what in enumerate(seq):
        if what == "write":
            assert seq[i + 1] == "sync"


def test_a_follower_acknowledges_entries_only_once_they_are_durable() -> None:
    p, store, outbox, sm = make(2)
    entries = tuple(Entry(Index(i), Term(1), EntryKind.NORMAL, b"e%d" % i) for i in (1, 2))
    p.node.step(
        AppendEntries(
            src=n(1),
            dst=n(2),
            term=Term(1),
            prev_index=Index(0),
            prev_term=Term(0),
            entries=entries,
            leader_commit=Index(1),
        )
    )
    drain(p)
    assert calls(store) == ["write", "sync", "send"]
    (ack,) = outbox.sent
    assert isinstance(ack, AppendEntriesResponse) and ack.success and ack.match_index == 2
    assert [e.index for e in store.durable_entries] == [1, 2]
    assert [e.data for e in sm.applied] == [b"e1"]


def test_phases_refuse_to_run_out_of_turn() -> None:
    p, store, outbox, _ = make(2)
    p.node.step(
        RequestVote(
            src=n(3),
            dst=n(2),
            term=Term(4),
            last_index=Index(0),
            last_term=Term(0),
            pre_vote=False,
            transfer=False,
        )
    )
    with pytest.raises(ReadyOrderError):
        p.send()  # nothing taken
    ready = p.take()
    assert ready is not None and ready.must_sync and ready.messages
    with pytest.raises(ReadyOrderError):
        p.take()  # one at a time
    with pytest.raises(ReadyOrderError, match="send out of turn: the Ready is taken"):
        p.send()
    p.write()
    with pytest.raises(ReadyOrderError, match="send out of turn: the Ready is written"):
        p.send()  # written is not durable
    with pytest.raises(ReadyOrderError):
        p.apply()
    assert outbox.sent == [] and store.unsynced
    p.sync()
    p.send()
    p.apply()
    (vote,) = outbox.sent
    assert isinstance(vote, RequestVoteResponse) and vote.granted
    assert p.in_flight is None and not p.node.has_ready()


def test_snapshots_when_due_and_compacts_the_core() -> None:
    p, store, _, _ = make(2, snapshot_due=True)
    entries = tuple(Entry(Index(i), Term(1), EntryKind.NORMAL, b"e%d" % i) for i in (1, 2, 3))
    p.node.step(
        AppendEntries(
            src=n(1),
            dst=n(2),
            term=Term(1),
            prev_index=Index(0),
            prev_term=Term(0),
            entries=entries,
            leader_commit=Index(2),
        )
    )
    drain(p)
    (snap,) = store.snapshots
    assert snap.meta.index == 2 and snap.data == b"e1|e2"
    assert p.node.status().snapshot_index == 2
    assert calls(store) == ["write", "sync", "send", "compact"]


def test_a_quorum_state_voting_for_a_non_voter_is_refused_with_a_clear_message() -> None:
    store = RecordingStore()
    store.durable_hard = HardState(Term(4), n(9))
    p = ReadyProcessor(
        node_id=n(1),
        voters=[n(1), n(2), n(3)],
        raft_config=CONFIG,
        storage=store,
        outbox=RecordingOutbox(store),
        state_machine=RecordingStateMachine(),
        snapshot_due=lambda: False,
    )
    with pytest.raises(DataDirectoryError) as caught:
        p.open(store.load(), random.Random(1))
    message = caught.value.message
    assert "vote for node 9 in term 4" in message and "[1, 2, 3]" in message
    assert "controller.voters" in message


def test_metadata_state_machine_vets_entry_data() -> None:
    sm = MetadataStateMachine()
    assert sm.check(b"") is None
    problem = sm.check(b"\xff\xff\xff")
    assert problem is not None and "do not decode as a MetadataBatch" in problem
