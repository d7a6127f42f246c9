"""Helpers for scripted, message-by-message tests of single RaftNodes (paper-rule tests)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
)
from raftka.controller.raft.node import RaftNode
from raftka.controller.raft.ready import Ready
from raftka.controller.raft.status import Role
from raftka.controller.raft.types import Entry, EntryKind, HardState, PersistedState, Snapshot

M = TypeVar("M")

CONFIG = RaftConfig(election_timeout_ticks=10, heartbeat_ticks=1)


def n(i: int) -> NodeId:
    return NodeId(i)


def ent(index: int, term: int, data: bytes = b"x") -> Entry:
    return Entry(Index(index), Term(term), EntryKind.NORMAL, data)


def make_node(
    node_id: int = 1,
    voters: Sequence[int] = (1, 2, 3),
    *,
    term: int = 0,
    voted_for: int | None = None,
    entries: Sequence[Entry] = (),
    snapshot: Snapshot | None = None,
    config: RaftConfig = CONFIG,
    seed: int = 0,
    entry_check: Callable[[bytes], str | None] | None = None,
    incarnation: int = 0,
) -> RaftNode:
    hs = HardState(Term(term), n(voted_for) if voted_for is not None else None)
    return RaftNode(
        n(node_id),
        [n(v) for v in voters],
        config,
        PersistedState(hs, snapshot, tuple(entries)),
        random.Random(seed),
        entry_check=entry_check or (lambda _data: None),
        incarnation=incarnation,
    )


def drain(node: RaftNode) -> list[Ready]:
    """Take and advance every Ready (as a runtime would after persisting/sending/applying)."""
    out = []
    while node.has_ready():
        rd = node.ready()
        node.advance(rd)
        out.append(rd)
    return out


def sent(node: RaftNode) -> list[Message]:
    return [m for rd in drain(node) for m in rd.messages]


def of_type(msgs: Sequence[Message], kind: type[M]) -> list[M]:
    return [m for m in msgs if isinstance(m, kind)]


def tick_until_campaign(node: RaftNode) -> list[Message]:
    """Tick until the node starts a (pre-)campaign; returns what it sent."""
    for _ in range(100):
        node.tick()
        msgs = sent(node)
        if node.role in (Role.PRE_CANDIDATE, Role.CANDIDATE):
            return msgs
    raise AssertionError("node never campaigned")


def grant(req: RequestVote) -> RequestVoteResponse:
    return RequestVoteResponse(
        src=req.dst, dst=req.src, term=req.term, granted=True, pre_vote=req.pre_vote
    )


def elect(node: RaftNode) -> list[Message]:
    """Make ``node`` leader by granting its (pre-)votes from every peer; returns what it sent
    on becoming leader."""
    msgs = tick_until_campaign(node)
    for _ in range(2):  # pre-vote round, then the real one
        reqs = of_type(msgs, RequestVote)
        for r in reqs:
            node.step(grant(r))
        msgs = sent(node)
        if node.role is Role.LEADER:
            return msgs
    raise AssertionError(f"node did not become leader: {node.role}")


def ack(m: AppendEntries, match: int | None = None) -> AppendEntriesResponse:
    """A follower's success answer to ``m``."""
    return AppendEntriesResponse(
        src=m.dst,
        dst=m.src,
        term=m.term,
        success=True,
        prev_index=m.prev_index,
        match_index=Index(match if match is not None else m.prev_index + len(m.entries)),
        conflict_term=Term(0),
        conflict_index=Index(0),
        last_index=Index(match if match is not None else m.prev_index + len(m.entries)),
    )


def append(
    src: int,
    dst: int,
    term: int,
    prev_index: int,
    prev_term: int,
    entries: Sequence[Entry] = (),
    commit: int = 0,
) -> AppendEntries:
    return AppendEntries(
        src=n(src),
        dst=n(dst),
        term=Term(term),
        prev_index=Index(prev_index),
        prev_term=Term(prev_term),
        entries=tuple(entries),
        leader_commit=Index(commit),
    )


def vote_request(
    src: int,
    dst: int,
    term: int,
    last_index: int,
    last_term: int,
    *,
    pre_vote: bool = False,
    transfer: bool = False,
) -> RequestVote:
    return RequestVote(
        src=n(src),
        dst=n(dst),
        term=Term(term),
        last_index=Index(last_index),
        last_term=Term(last_term),
        pre_vote=pre_vote,
        transfer=transfer,
    )
