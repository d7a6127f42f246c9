"""RaftServicer.Deliver: an envelope is checked whole before any of its messages reaches the
core."""

from __future__ import annotations

import asyncio
from typing import NoReturn

import grpc
import pytest

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.quorum.codec import message_to_pb
from raftka.controller.quorum.transport import MAX_MESSAGES_PER_ENVELOPE, RaftServicer
from raftka.controller.raft import messages as m
from raftka.controller.raft.types import Entry, EntryKind, SnapshotMeta
from raftka.v1 import raft_pb2 as pb

CLUSTER = "c1"
A, B = NodeId(1), NodeId(2)


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class FakeContext:
    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


def heartbeat(term: int = 3) -> pb.RaftMessage:
    return message_to_pb(m.AppendEntries(A, B, Term(term), Index(0), Term(0), (), Index(0)))


def deliver(messages: list[pb.RaftMessage]) -> tuple[list[m.Message], Aborted | None]:
    got: list[m.Message] = []
    servicer = RaftServicer(CLUSTER, B, got.append)
    envelope = pb.RaftEnvelope(cluster_id=CLUSTER, from_node=A, to_node=B, messages=messages)

    async def main() -> Aborted | None:
        try:
            await servicer.Deliver(envelope, FakeContext())
        except Aborted as e:
            return e
        return None

    return got, asyncio.run(main())


def test_a_well_formed_envelope_is_delivered_in_order() -> None:
    got, error = deliver([heartbeat(3), heartbeat(4)])
    assert error is None and [msg.term for msg in got] == [3, 4]


def _bad_kind() -> pb.RaftMessage:
    bad = heartbeat()
    bad.append_entries.entries.add(index=1, term=3, kind=7)
    return bad


def _gap() -> pb.RaftMessage:
    entries = (Entry(Index(1), Term(3), EntryKind.NORMAL, b"x"),)
    bad = message_to_pb(m.AppendEntries(A, B, Term(3), Index(0), Term(0), entries, Index(0)))
    bad.append_entries.entries[0].index = 5
    return bad


def _future_entry_term() -> pb.RaftMessage:
    entries = (Entry(Index(1), Term(9), EntryKind.NORMAL, b"x"),)
    return message_to_pb(m.AppendEntries(A, B, Term(3), Index(0), Term(0), entries, Index(0)))


def _chunk_outside() -> pb.RaftMessage:
    meta = SnapshotMeta(Index(10), Term(2))
    return message_to_pb(m.InstallSnapshot(A, B, Term(3), meta, 8, b"0123456789", 12, False))


def _negative_index() -> pb.RaftMessage:
    bad = heartbeat()
    bad.append_entries.prev_index = -1
    return bad


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (_bad_kind, "unknown kind 7"),
        (_gap, "entry 5 where 1 must follow"),
        (_future_entry_term, "entry 1 has term 9"),
        (_chunk_outside, "outside the snapshot's 12 bytes"),
        (_negative_index, "prev_index is -1"),
    ],
)
def test_one_malformed_message_refuses_the_whole_envelope(bad: object, reason: str) -> None:
    assert callable(bad)
    got, error = deliver([heartbeat(), heartbeat(), bad(), heartbeat()])
    assert got == []  # not even the two messages before the bad one
    assert error is not None and error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "message 2 of the envelope from node 1" in error.details
    assert reason in error.details and "none of its 4 messages was delivered" in error.details


def test_an_oversized_envelope_is_refused() -> None:
    got, error = deliver([heartbeat()] * (MAX_MESSAGES_PER_ENVELOPE + 1))
    assert got == [] and error is not None
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT and "none was delivered" in error.details
