"""RaftConfig: the tunables of one Raft node, validated once when built.

Time is counted in ticks: the runtime decides how long a tick lasts (e.g. 100 ms) and calls
``RaftNode.tick()`` that often. Sizes are in bytes of entry payload.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RaftConfig:
    election_timeout_ticks: int = 10
    """T: a follower that hears from no leader for a random number of ticks in [T, 2T) campaigns;
    a leader that hears from no majority for T ticks steps down (check-quorum)."""
    heartbeat_ticks: int = 1
    """H: a leader sends every follower an AppendEntries at least every H ticks (H < T)."""
    max_inflight: int = 64
    """Unacknowledged AppendEntries carrying entries, per follower, while replicating."""
    max_append_bytes: int = 1024 * 1024
    """Entry payload bytes per AppendEntries (a message always carries at least one entry)."""
    snapshot_chunk_bytes: int = 256 * 1024
    """Snapshot bytes per InstallSnapshot message."""
    max_committed_bytes_per_ready: int = 128 * 1024
    """Committed entry payload bytes handed out per Ready (always at least one entry), so that
    applying one Ready's entries holds the runtime's event loop for a bounded time; the rest
    come in the next Readies."""
    check_quorum: bool = True
    """A leader that hears from no majority within an election timeout steps down."""
    pre_vote: bool = True
    """Run a pre-vote round (no term bump) before a real election."""

    def __post_init__(self) -> None:
        if self.election_timeout_ticks < 2:
            raise ValueError(
                f"election_timeout_ticks must be at least 2, got {self.election_timeout_ticks}"
            )
        if self.heartbeat_ticks < 1:
            raise ValueError(f"heartbeat_ticks must be at least 1, got {self.heartbeat_ticks}")
        if self.heartbeat_ticks >= self.election_timeout_ticks:
            raise ValueError(
                "heartbeat_ticks must be smaller than election_timeout_ticks, got "
                f"{self.heartbeat_ticks} >= {self.election_timeout_ticks}"
            )
        if self.max_inflight < 1:
            raise ValueError(f"max_inflight must be at least 1, got {self.max_inflight}")
        if self.max_committed_bytes_per_ready < 1:
            raise ValueError(
                "max_committed_bytes_per_ready must be at least 1, got "
                f"{self.max_committed_bytes_per_ready}"
            )
        if self.max_append_bytes < 1:
            raise ValueError(f"max_append_bytes must be at least 1, got {self.max_append_bytes}")
        if self.snapshot_chunk_bytes < 1:
            raise ValueError(
                f"snapshot_chunk_bytes must be at least 1, got {self.snapshot_chunk_bytes}"
            )
