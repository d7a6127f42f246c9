from __future__ import annotations

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.quorum.codec import message_from_pb, message_to_pb
from raftka.controller.raft import messages as m
from raftka.controller.raft.types import Entry, EntryKind, SnapshotMeta
from raftka.v1.raft_pb2 import RaftMessage

A, B = NodeId(1), NodeId(2)

SAMPLES: list[m.Message] = [
    m.AppendEntries(
        A,
        B,
        Term(3),
        Index(5),
        Term(2),
        (
            Entry(Index(6), Term(3), EntryKind.NOOP),
            Entry(Index(7), Term(3), EntryKind.NORMAL, b"x"),
        ),
        Index(4),
    ),
    m.AppendEntriesResponse(A, B, Term(3), False, Index(5), Index(0), Term(2), Index(3), Index(9)),
    m.RequestVote(A, B, Term(4), Index(9), Term(3), True, False),
    m.RequestVoteResponse(A, B, Term(4), True, True),
    m.InstallSnapshot(
        A, B, Term(4), SnapshotMeta(Index(100), Term(3)), 65536, b"chunk", 200000, False
    ),
    m.InstallSnapshotResponse(A, B, Term(4), Index(100), 65541, False),
    m.TimeoutNow(A, B, Term(4)),
]


def test_every_message_round_trips_through_protobuf() -> None:
    for msg in SAMPLES:
        wire = message_to_pb(msg).SerializeToString()
        assert message_from_pb(msg.src, msg.dst, RaftMessage.FromString(wire)) == msg
