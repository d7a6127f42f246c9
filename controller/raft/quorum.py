"""VoterSet: who votes, and every majority computation (elections, commit, check-quorum).

Keeping the voters and the quorum arithmetic here, and only here, is what lets dynamic
membership (joint consensus) be added later by swapping this class for a joint configuration.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping

from raftka.common.ids import Index, NodeId


class VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


class VoterSet:
    """An immutable set of voter ids with majority arithmetic."""

    __slots__ = ("_ids", "_majority", "_members")

    def __init__(self, voters: Iterable[NodeId]) -> None:
        ids = tuple(voters)
        if not ids:
            raise ValueError("a voter set needs at least one voter")
        if len(set(ids)) != len(ids):
            raise ValueError(f"voter ids must be distinct, got {ids}")
        self._ids = tuple(sorted(ids))
        self._members = frozenset(ids)
        self._majority = len(ids) // 2 + 1

    @property
    def ids(self) -> tuple[NodeId, ...]:
        """The voters in ascending id order."""
        return self._ids

    @property
    def majority(self) -> int:
        return self._majority

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._members

    def __iter__(self) -> Iterator[NodeId]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def committed_index(self, match: Mapping[NodeId, Index]) -> Index:
        """The highest index a majority of voters has (voters missing from ``match`` have 0)."""
        acked = sorted((match.get(v, Index(0)) for v in self._ids), reverse=True)
        return acked[self._majority - 1]

    def vote_result(self, votes: Mapping[NodeId, bool]) -> VoteResult:
        """WON once a majority granted, LOST once a majority can no longer be reached."""
        granted = sum(1 for v in self._ids if votes.get(v) is True)
        refused = sum(1 for v in self._ids if votes.get(v) is False)
        if granted >= self._majority:
            return VoteResult.WON
        if len(self._ids) - refused < self._majority:
            return VoteResult.LOST
        return VoteResult.PENDING

    def has_quorum(self, nodes: Iterable[NodeId]) -> bool:
        """True when ``nodes`` include a majority of the voters."""
        return len(self._members.intersection(nodes)) >= self._majority
