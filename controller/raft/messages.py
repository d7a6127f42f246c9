"""The messages Raft nodes exchange: plain frozen values that map 1:1 to protobuf messages.

Every message carries ``src``, ``dst`` and the sender's ``term``. Term 0 and index 0 stand for
"none" (real terms and indexes start at 1), so every field has a plain wire value.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft.types import Entry, SnapshotMeta


@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Leader -> follower: entries after (prev_index, prev_term); empty as a heartbeat/probe."""

    src: NodeId
    dst: NodeId
    term: Term
    prev_index: Index
    prev_term: Term
    entries: tuple[Entry, ...]
    leader_commit: Index


@dataclass(frozen=True, slots=True)
class AppendEntriesResponse:
    """Follower -> leader.

    On success ``match_index`` is the last index the follower now shares with the leader.
    On rejection the follower's log lacks (prev_index, prev_term) and gives a back-off hint:
    ``conflict_term`` is its term at prev_index (0 when its log is shorter) and
    ``conflict_index`` the first index it holds of that term (its last index + 1 when shorter).
    """

    src: NodeId
    dst: NodeId
    term: Term
    success: bool
    prev_index: Index
    """The prev_index of the AppendEntries this answers (lets the leader drop stale answers)."""
    match_index: Index
    conflict_term: Term
    conflict_index: Index
    last_index: Index
    """The follower's last log index."""
    incarnation: int = 0
    """The follower's run: set at each start of its process, larger than the previous run's.
    A leader that sees it grow forgets what it recorded of that follower (it may have lost
    entries it acknowledged) and probes again; a smaller one is an earlier run's, stale."""


@dataclass(frozen=True, slots=True)
class RequestVote:
    """Candidate -> voter. ``pre_vote``: a trial round for ``term`` that changes nobody's term.
    ``transfer``: sent on a leadership transfer, so voters ignore leader stickiness."""

    src: NodeId
    dst: NodeId
    term: Term
    last_index: Index
    last_term: Term
    pre_vote: bool
    transfer: bool


@dataclass(frozen=True, slots=True)
class RequestVoteResponse:
    src: NodeId
    dst: NodeId
    term: Term
    """The requested term when granted; the voter's own term when refused."""
    granted: bool
    pre_vote: bool


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Leader -> follower: one chunk, bytes [offset, offset + len(data)) of the snapshot."""

    src: NodeId
    dst: NodeId
    term: Term
    meta: SnapshotMeta
    offset: int
    data: bytes
    total_size: int
    done: bool
    """True on the last chunk."""


@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    """Follower -> leader: the byte offset it expects next for that snapshot (0 = start over),
    or ``done`` once it holds everything the snapshot covers."""

    src: NodeId
    dst: NodeId
    term: Term
    snapshot_index: Index
    next_offset: int
    done: bool


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leader -> transfer target: campaign now, skipping pre-vote."""

    src: NodeId
    dst: NodeId
    term: Term


Message = (
    AppendEntries
    | AppendEntriesResponse
    | RequestVote
    | RequestVoteResponse
    | InstallSnapshot
    | InstallSnapshotResponse
    | TimeoutNow
)
"""Any message the core takes in ``step()`` or emits in ``Ready.messages``."""
