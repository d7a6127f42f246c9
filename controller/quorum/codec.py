"""Converts the Raft core's message values to and from their protobuf form (raft.proto).

Decoding checks what the protobuf types cannot: no negative term, index or offset, a known
entry kind, entries that follow ``prev_index`` one by one with terms no newer than the
message's, a snapshot chunk that lies inside its snapshot. A malformed message raises
``InvalidRaftMessage`` naming what is wrong; the transport then refuses the whole envelope.
"""

from __future__ import annotations

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft import messages as m
from raftka.controller.raft.types import Entry, EntryKind, SnapshotMeta
from raftka.v1 import raft_pb2 as pb


def entry_to_pb(entry: Entry) -> pb.RaftEntry:
    return pb.RaftEntry(index=entry.index, term=entry.term, kind=int(entry.kind), data=entry.data)  # type: ignore[arg-type]


class InvalidRaftMessage(ValueError):
    """A peer's Raft message is malformed (a bug or a forgery on the sender's side)."""


def entry_from_pb(entry: pb.RaftEntry) -> Entry:
    if entry.kind not in _ENTRY_KINDS:
        raise InvalidRaftMessage(f"entry {entry.index} has unknown kind {entry.kind}")
    kind = EntryKind(entry.kind)
    if kind is EntryKind.NOOP and entry.data:
        raise InvalidRaftMessage(f"NOOP entry {entry.index} carries {len(entry.data)} bytes")
    return Entry(Index(entry.index), Term(entry.term), kind, entry.data)


_ENTRY_KINDS = frozenset(int(k) for k in EntryKind)


def _non_negative(what: str, **values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise InvalidRaftMessage(f"{what}: {name} is {value}, it must not be negative")


def _check_entries(term: int, prev_index: int, entries: list[Entry]) -> None:
    expected = prev_index + 1
    for e in entries:
        if e.index != expected:
            raise InvalidRaftMessage(
                f"AppendEntries after index {prev_index}: entry {e.index} where "
                f"{expected} must follow"
            )
        if not 1 <= e.term <= term:
            raise InvalidRaftMessage(
                f"AppendEntries of term {term}: entry {e.index} has term {e.term}, "
                f"which must be between 1 and {term}"
            )
        expected += 1


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
                    incarnation=msg.incarnation,
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
    """Decode and check one message; None when the body is missing (a newer peer's message
    type). Raises InvalidRaftMessage when it is malformed."""
    term = Term(msg.term)
    kind = msg.WhichOneof("body")
    _non_negative(kind or "message", term=term)
    if kind == "append_entries":
        a = msg.append_entries
        _non_negative(
            kind, prev_index=a.prev_index, prev_term=a.prev_term, leader_commit=a.leader_commit
        )
        if a.prev_term > term:
            raise InvalidRaftMessage(
                f"AppendEntries of term {term}: prev_term {a.prev_term} is newer than the message"
            )
        entries = [entry_from_pb(e) for e in a.entries]
        _check_entries(term, a.prev_index, entries)
        return m.AppendEntries(
            src,
            dst,
            term,
            Index(a.prev_index),
            Term(a.prev_term),
            tuple(entries),
            Index(a.leader_commit),
        )
    if kind == "append_entries_response":
        r = msg.append_entries_response
        _non_negative(
            kind,
            prev_index=r.prev_index,
            match_index=r.match_index,
            conflict_term=r.conflict_term,
            conflict_index=r.conflict_index,
            last_index=r.last_index,
        )
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
            r.incarnation,
        )
    if kind == "request_vote":
        v = msg.request_vote
        _non_negative(kind, last_index=v.last_index, last_term=v.last_term)
        return m.RequestVote(
            src, dst, term, Index(v.last_index), Term(v.last_term), v.pre_vote, v.transfer
        )
    if kind == "request_vote_response":
        vr = msg.request_vote_response
        return m.RequestVoteResponse(src, dst, term, vr.granted, vr.pre_vote)
    if kind == "install_snapshot":
        s = msg.install_snapshot
        _non_negative(
            kind,
            snapshot_index=s.snapshot_index,
            snapshot_term=s.snapshot_term,
            offset=s.offset,
            total_size=s.total_size,
        )
        if s.snapshot_index < 1 or not 1 <= s.snapshot_term <= term:
            raise InvalidRaftMessage(
                f"InstallSnapshot of term {term}: snapshot ({s.snapshot_index}, "
                f"{s.snapshot_term}) needs an index from 1 and a term from 1 to {term}"
            )
        if s.offset + len(s.data) > s.total_size:
            raise InvalidRaftMessage(
                f"InstallSnapshot chunk [{s.offset}, {s.offset + len(s.data)}) lies outside "
                f"the snapshot's {s.total_size} bytes"
            )
        if s.done != (s.offset + len(s.data) == s.total_size):
            raise InvalidRaftMessage(
                f"InstallSnapshot chunk [{s.offset}, {s.offset + len(s.data)}) of "
                f"{s.total_size} bytes has done={s.done}, which must be true exactly on the "
                "last chunk"
            )
        meta = SnapshotMeta(Index(s.snapshot_index), Term(s.snapshot_term))
        return m.InstallSnapshot(src, dst, term, meta, s.offset, s.data, s.total_size, s.done)
    if kind == "install_snapshot_response":
        sr = msg.install_snapshot_response
        _non_negative(kind, snapshot_index=sr.snapshot_index, next_offset=sr.next_offset)
        return m.InstallSnapshotResponse(
            src, dst, term, Index(sr.snapshot_index), sr.next_offset, sr.done
        )
    if kind == "timeout_now":
        return m.TimeoutNow(src, dst, term)
    return None
