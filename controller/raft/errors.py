"""Errors the Raft core raises to its caller (the runtime), never for remote input.

A message from a peer that breaks the protocol is dropped, not raised: only local misuse
(proposing on a follower, advancing the wrong Ready, compacting past the applied index) raises.
Each error says whether retrying (possibly on another node) can succeed.
"""

from __future__ import annotations

from typing import ClassVar

from raftka.common.ids import NodeId


class RaftError(Exception):
    """Base of the errors the core raises."""

    retriable: ClassVar[bool] = False


class NotLeader(RaftError):
    """A proposal or leader-only request reached a node that is not the leader."""

    retriable = True

    def __init__(self, leader_id: NodeId | None) -> None:
        self.leader_id = leader_id
        """The leader this node knows of (to redirect to), or None."""
        where = f"node {leader_id} is" if leader_id is not None else "no leader is known"
        super().__init__(f"not the leader; {where}")


class LeadershipTransferInProgress(RaftError):
    """The leader refuses proposals while it hands leadership to ``target``."""

    retriable = True

    def __init__(self, target: NodeId) -> None:
        self.target = target
        super().__init__(f"leadership is being transferred to node {target}")


class InvalidEntryData(RaftError):
    """Proposed data that the state machine could not apply: it is refused, never logged."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"refused to propose an entry the state machine cannot apply: {reason}")
