from __future__ import annotations

from pathlib import Path

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.quorum.raft_storage import RaftStorage
from raftka.controller.raft.types import Entry, EntryKind, HardState, Snapshot, SnapshotMeta


def entries(first: int, last: int, term: int) -> list[Entry]:
    return [
        Entry(Index(i), Term(term), EntryKind.NORMAL, f"e{i}t{term}".encode())
        for i in range(first, last + 1)
    ]


def reopen(directory: Path) -> tuple[RaftStorage, tuple[Entry, ...], HardState, Snapshot | None]:
    storage = RaftStorage(directory)
    state = storage.load()
    return storage, state.entries, state.hard_state, state.snapshot


def test_round_trip_with_noop_truncation_and_hard_state(tmp_path: Path) -> None:
    s = RaftStorage(tmp_path)
    s.load()
    noop = Entry(Index(1), Term(1), EntryKind.NOOP)
    s.persist(HardState(Term(1), NodeId(2)), None, None, [noop, *entries(2, 5, 1)])
    # a new leader's entries overwrite the tail from index 4
    s.persist(HardState(Term(2), None), None, Index(4), entries(4, 6, 2))
    s.close()
    s, got, hard, snap = reopen(tmp_path)
    assert hard == HardState(Term(2), None) and snap is None
    assert got == (noop, *entries(2, 3, 1), *entries(4, 6, 2))
    s.close()


def test_overlapping_append_without_explicit_truncation(tmp_path: Path) -> None:
    s = RaftStorage(tmp_path)
    s.load()
    s.persist(None, None, None, entries(1, 5, 1))
    s.persist(None, None, None, entries(3, 4, 2))
    s.close()
    s, got, _, _ = reopen(tmp_path)
    assert got == (*entries(1, 2, 1), *entries(3, 4, 2))
    s.close()


def test_compaction_and_received_snapshot(tmp_path: Path) -> None:
    s = RaftStorage(tmp_path, segment_bytes=300)  # small segments so compaction deletes some
    s.load()
    s.persist(None, None, None, entries(1, 30, 1))
    s.compact(Snapshot(SnapshotMeta(Index(20), Term(1)), b"image@20"))
    assert s.log.log_start_offset > 1
    s.close()
    s, got, _, snap = reopen(tmp_path)
    assert snap is not None and snap.meta.index == 20 and snap.data == b"image@20"
    assert got == tuple(entries(21, 30, 1))
    # a leader's snapshot beyond our log replaces everything
    s.persist(
        HardState(Term(3), None), Snapshot(SnapshotMeta(Index(50), Term(3)), b"image@50"), None, []
    )
    s.persist(None, None, None, entries(51, 52, 3))
    s.close()
    s, got, hard, snap = reopen(tmp_path)
    assert snap is not None and snap.meta.index == 50 and got == tuple(entries(51, 52, 3))
    assert hard.term == 3
    s.close()


def test_torn_tail_of_last_entry_is_dropped(tmp_path: Path) -> None:
    s = RaftStorage(tmp_path)
    s.load()
    s.persist(None, None, None, entries(1, 4, 1))
    s.close()
    segment = sorted(tmp_path.glob("*.log"))[-1]
    data = segment.read_bytes()
    segment.write_bytes(data[:-7])  # the crash tore the last entry's batch
    s, got, _, _ = reopen(tmp_path)
    assert got == tuple(entries(1, 3, 1))
    s.persist(None, None, None, entries(4, 5, 2))  # the node appends where the log really ends
    s.close()
    s, got, _, _ = reopen(tmp_path)
    assert got == (*entries(1, 3, 1), *entries(4, 5, 2))
    s.close()
