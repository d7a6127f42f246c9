"""Sans-I/O Raft consensus core: no grpc, no asyncio, no clock, no I/O; time is ticks and
randomness is an injected ``random.Random``.

Modules, one role each:

* ``types``: entries, hard state, snapshots, what a node finds on disk at start.
* ``config``: ``RaftConfig`` (tunables, validated).
* ``messages``: the seven peer messages (plain values, 1:1 with protobuf).
* ``errors``: ``NotLeader``, ``LeadershipTransferInProgress`` (local misuse only).
* ``quorum``: ``VoterSet``, the only place that knows who votes and what a majority is.
* ``log``: ``RaftLog``, the in-memory log and what of it must still be persisted/applied.
* ``progress``: ``Progress``, a leader's view of one follower (probe/replicate/snapshot).
* ``leader``: ``LeaderState``, replication, commit (Figure 8), check-quorum, transfer.
* ``snapshot_receiver``: a follower's in-order assembly of snapshot chunks.
* ``status``: ``Role``, ``SoftState``, ``Status`` (read-only reports).
* ``ready``: ``Ready``, the batch the runtime persists, sends and applies, in that order.
* ``node``: ``RaftNode``, the state machine tying it together (roles, elections, follower).

The runtime loop (see ``ready.Ready`` for the order within one Ready)::

    node.tick() / node.step(msg) / node.propose(data)     # inputs, any time
    while node.has_ready():
        rd = node.ready()
        persist(rd.hard_state, rd.snapshot, rd.truncate_from, rd.entries); fsync()
        send(rd.messages)
        if rd.snapshot: state_machine.restore(rd.snapshot)
        apply(rd.committed)
        node.advance(rd)
"""

from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.errors import LeadershipTransferInProgress, NotLeader, RaftError
from raftka.controller.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from raftka.controller.raft.node import RaftNode
from raftka.controller.raft.progress import ReplicaState
from raftka.controller.raft.ready import Ready
from raftka.controller.raft.status import ProgressStatus, Role, SoftState, Status
from raftka.controller.raft.types import (
    Entry,
    EntryKind,
    HardState,
    PersistedState,
    Snapshot,
    SnapshotMeta,
)

__all__ = [
    "AppendEntries",
    "AppendEntriesResponse",
    "Entry",
    "EntryKind",
    "HardState",
    "InstallSnapshot",
    "InstallSnapshotResponse",
    "LeadershipTransferInProgress",
    "Message",
    "NotLeader",
    "PersistedState",
    "ProgressStatus",
    "RaftConfig",
    "RaftError",
    "RaftNode",
    "Ready",
    "ReplicaState",
    "RequestVote",
    "RequestVoteResponse",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "SoftState",
    "Status",
    "TimeoutNow",
]
