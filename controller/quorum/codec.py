"""Converts the Raft core's message values to and from their protobuf form (raft.proto)."""

from __future__ import annotations

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft import messages as m
from raftka.controller.raft.types import Entry, EntryKind, SnapshotMeta
from raftka.v1 import raft_pb2 as pb


def entry_to_pb(entry: Entry) -> pb.RaftEntry:
    return pb.RaftEntry(index=entry.index, term=entry.term, kind=int(entry.kind), data=entry.data)  # type: ignore[arg-type]


def entry_from_pb(entry: pb.RaftEntry) -> Entry:
    return Entry(Index(entry.index), Term(entry.term), EntryKind(entry.kind), entry.data)


def message_to_pb(msg: m.Message) -> pb.RaftMessage:
    out = pb.RaftMessage(term=msg.term)
    match msg:
        case m.AppendEntries():
            out.append_entries.CopyFrom(
                pb.AppendEntries(
                    prev_index=msg.prev_index,
                    prev_term=msg.prev_term,
                    entries=[entry_to_pb(e) for e in msg.entries],
                    leader_commit=msg.leader_commit,
                )
            )
        case m.AppendEntriesResponse():
            out.append_entries_response.CopyFrom(
                pb.AppendEntriesResponse(
                    success=msg.success,
                    match_index=msg.match_index,
                    conflict_term=msg.conflict_term,
                    conflict_index=msg.conflict_index,
                    last_index=msg.last_index,
                    prev_index=msg.prev_index,
                )
            )
        case m.RequestVote():
            out.request_vote.CopyFrom(
                pb.RequestVote(
                    last_index=msg.last_index,
                    last_term=msg.last_term,
                    pre_vote=msg.pre_vote,
                    transfer=msg.transfer,
                )
            )
        case m.RequestVoteResponse():
            out.request_vote_response.CopyFrom(
                pb.RequestVoteResponse(granted=msg.granted, pre_vote=msg.pre_vote)
            )
        case m.InstallSnapshot():
            out.install_snapshot.CopyFrom(
                pb.InstallSnapshot(
                    snapshot_index=msg.meta.index,
                    snapshot_term=msg.meta.term,
                    offset=msg.offset,
                    data=msg.data,
                    total_size=msg.total_size,
                    done=msg.done,
                )
            )
        case m.InstallSnapshotResponse():
            out.install_snapshot_response.CopyFrom(
                pb.InstallSnapshotResponse(
                    snapshot_index=msg.snapshot_index, next_offset=msg.next_offset, done=msg.done
                )
            )
        case m.TimeoutNow():
            out.timeout_now.SetInParent()
    return out


def message_from_pb(src: NodeId, dst: NodeId, msg: pb.RaftMessage) -> m.Message | None:
    """Decode one message; None when the body is missing (a newer peer's message type)."""
    term = Term(msg.term)
    kind = msg.WhichOneof("body")
    if kind == "append_entries":
        a = msg.append_entries
        return m.AppendEntries(
            src,
            dst,
            term,
            Index(a.prev_index),
            Term(a.prev_term),
            tuple(entry_from_pb(e) for e in a.entries),
            Index(a.leader_commit),
        )
    if kind == "append_entries_response":
        r = msg.append_entries_response
        return m.AppendEntriesResponse(
            src,
            dst,
            term,
            r.success,
            Index(r.prev_index),
            Index(r.match_index),
            Term(r.conflict_term),
            Index(r.conflict_index),
            Index(r.last_index),
        )
    if kind == "request_vote":
        v = msg.request_vote
        return m.RequestVote(
            src, dst, term, Index(v.last_index), Term(v.last_term), v.pre_vote, v.transfer
        )
    if kind == "request_vote_response":
        vr = msg.request_vote_response
        return m.RequestVoteResponse(src, dst, term, vr.granted, vr.pre_vote)
    if kind == "install_snapshot":
        s = msg.install_snapshot
        meta = SnapshotMeta(Index(s.snapshot_index), Term(s.snapshot_term))
        return m.InstallSnapshot(src, dst, term, meta, s.offset, s.data, s.total_size, s.done)
    if kind == "install_snapshot_response":
        sr = msg.install_snapshot_response
        return m.InstallSnapshotResponse(
            src, dst, term, Index(sr.snapshot_index), sr.next_offset, sr.done
        )
    if kind == "timeout_now":
        return m.TimeoutNow(src, dst, term)
    return None
