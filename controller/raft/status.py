"""Role, SoftState and Status: what the core tells the outside about itself (read-only values)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft.progress import ReplicaState


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the runtime watches to notice leadership changes (never persisted)."""

    role: Role
    leader_id: NodeId | None
    term: Term


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    """A leader's view of one follower."""

    node_id: NodeId
    match_index: Index
    next_index: Index
    state: ReplicaState
    ticks_since_contact: int


@dataclass(frozen=True, slots=True)
class Status:
    node_id: NodeId
    role: Role
    term: Term
    voted_for: NodeId | None
    leader_id: NodeId | None
    commit_index: Index
    last_index: Index
    applied_index: Index
    """Last index whose entry (or snapshot) the runtime reported applied via advance()."""
    snapshot_index: Index
    snapshot_term: Term
    progress: tuple[ProgressStatus, ...]
    """Per follower (ascending id), only on the leader; empty otherwise."""
    transfer_target: NodeId | None
    """On a leader handing leadership over: the target."""
