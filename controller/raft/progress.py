"""Progress: what a leader knows about one follower's log, and how it feeds it.

A follower is in one of three replication states:

* PROBE: the leader does not know where the follower's log stops matching. It sends one
  AppendEntries at a time (at most one per heartbeat while unanswered) and backs ``next`` off
  using the follower's hint on each rejection.
* REPLICATE: the follower matched; the leader streams entries optimistically, advancing
  ``next`` on send, with at most ``max_inflight`` unacknowledged messages.
* SNAPSHOT: the entries the follower needs are compacted; the leader sends a snapshot in
  chunks, one chunk in flight at a time.
"""

from __future__ import annotations

import enum
from collections import deque

from raftka.common.ids import Index, NodeId
from raftka.controller.raft.types import Snapshot


class ReplicaState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Progress:
    __slots__ = (
        "incarnation",
        "inflight",
        "match",
        "next",
        "node_id",
        "probe_sent",
        "snapshot",
        "snapshot_idle_ticks",
        "snapshot_offset",
        "stalled_heartbeats",
        "state",
        "ticks_since_contact",
    )

    def __init__(self, node_id: NodeId, next_index: Index) -> None:
        self.node_id = node_id
        self.match = Index(0)
        """Highest index known to be durably replicated on the follower."""
        self.next = next_index
        """Index of the next entry to send."""
        self.state = ReplicaState.PROBE
        self.probe_sent = False
        """PROBE: an AppendEntries is unanswered (cleared by an answer or the next heartbeat)."""
        self.inflight: deque[Index] = deque()
        """REPLICATE: last index of each unacknowledged AppendEntries, in send order."""
        self.stalled_heartbeats = 0
        """REPLICATE: heartbeats sent while entries were in flight and match did not move."""
        self.ticks_since_contact = 0
        self.snapshot: Snapshot | None = None
        """SNAPSHOT: the snapshot being sent (kept even if the leader compacts again)."""
        self.snapshot_offset = 0
        """SNAPSHOT: byte offset of the chunk in flight."""
        self.snapshot_idle_ticks = 0
        """SNAPSHOT: ticks since a chunk was last sent."""
        self.incarnation = 0
        """The follower's run the leader last heard from (0: none yet)."""

    def become_probe(self, next_index: Index) -> None:
        self.state = ReplicaState.PROBE
        self.next = max(next_index, Index(self.match + 1))
        self.probe_sent = False
        self.inflight.clear()
        self.stalled_heartbeats = 0
        self.snapshot = None

    def forget(self, next_index: Index) -> None:
        """The follower restarted and may hold less than it acknowledged (a wiped log, a cut
        tail): nothing it said before counts any more. Probe again from ``next_index``."""
        self.match = Index(0)
        self.become_probe(next_index)

    def become_replicate(self) -> None:
        self.state = ReplicaState.REPLICATE
        self.next = Index(self.match + 1)
        self.probe_sent = False
        self.inflight.clear()
        self.stalled_heartbeats = 0
        self.snapshot = None

    def become_snapshot(self, snapshot: Snapshot) -> None:
        self.state = ReplicaState.SNAPSHOT
        self.snapshot = snapshot
        self.snapshot_offset = 0
        self.snapshot_idle_ticks = 0
        self.probe_sent = False
        self.inflight.clear()

    def update_match(self, index: Index) -> bool:
        """Record that the follower holds everything up to ``index``; True if match grew."""
        if index > self.next - 1:
            self.next = Index(index + 1)
        if index <= self.match:
            return False
        self.match = index
        self.stalled_heartbeats = 0
        while self.inflight and self.inflight[0] <= index:
            self.inflight.popleft()
        return True

    def sent_append(self, last: Index) -> None:
        """An AppendEntries whose last entry is ``last`` went out (``can_send`` was True)."""
        if self.state is ReplicaState.REPLICATE:
            self.next = Index(last + 1)
            self.inflight.append(last)
        else:
            self.probe_sent = True

    def can_send(self, max_inflight: int) -> bool:
        """May an AppendEntries carrying entries go out now?"""
        if self.state is ReplicaState.PROBE:
            return not self.probe_sent
        if self.state is ReplicaState.REPLICATE:
            return len(self.inflight) < max_inflight
        return False
