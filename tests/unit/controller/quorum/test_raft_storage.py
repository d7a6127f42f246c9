from __future__ import annotations

from pathlib import Path

import pytest

from raftka.common.errors import DataDirectoryError
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
    s.persist(HardState(Term(2), None), None, None, entries(1, 5, 1))
    s.persist(None, None, None, entries(3, 4, 2))
    s.close()
    s, got, _, _ = reopen(tmp_path)
    assert got == (*entries(1, 2, 1), *entries(3, 4, 2))
    s.close()


def test_compaction_and_received_snapshot(tmp_path: Path) -> None:
    s = RaftStorage(tmp_path, segment_bytes=300)  # small segments so compaction deletes some
    s.load()
    s.persist(HardState(Term(1), None), None, None, entries(1, 30, 1))
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
    s.persist(HardState(Term(2), None), None, None, entries(1, 4, 1))
    s.close()
    (tmp_path / "clean-shutdown").unlink(missing_ok=True)  # the crash left no clean shutdown
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


def _written(tmp_path: Path, last: int, *, segment_bytes: int = 64 * 1024 * 1024) -> None:
    s = RaftStorage(tmp_path, segment_bytes=segment_bytes)
    s.load()
    s.persist(HardState(Term(1), NodeId(1)), None, None, [])
    for e in entries(1, last, 1):  # one append each, so that small segments roll
        s.persist(None, None, None, [e])
    s.close()


def _flip(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))


def _batch_starts(segment: Path) -> list[int]:
    data, pos, starts = segment.read_bytes(), 0, []
    while pos < len(data):
        starts.append(pos)
        pos += int.from_bytes(data[pos + 8 : pos + 12], "big") + 12
    return starts


def test_damaged_newest_snapshot_refuses_to_start_naming_the_file(tmp_path: Path) -> None:
    s = RaftStorage(tmp_path, segment_bytes=300)
    s.load()
    s.persist(HardState(Term(1), None), None, None, entries(1, 30, 1))
    s.compact(Snapshot(SnapshotMeta(Index(10), Term(1)), b"image@10"))
    s.compact(Snapshot(SnapshotMeta(Index(20), Term(1)), b"image@20"))
    s.close()
    newest = sorted(tmp_path.glob("*.checkpoint"))[-1]
    _flip(newest, len(newest.read_bytes()) - 1)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DataDirectoryError) as caught:
        RaftStorage(tmp_path)
    message = caught.value.message
    assert str(newest) in message and "CRC-32C mismatch" in message
    assert "except quorum-state" in message and "operations.md" in message
    # nothing was reset or deleted: the older snapshot was not taken in its place
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_damage_inside_the_last_segment_is_refused_not_cut(tmp_path: Path) -> None:
    _written(tmp_path, 6)
    (tmp_path / "clean-shutdown").unlink()  # unclean: the log would rescan and cut here
    segment = sorted(tmp_path.glob("*.log"))[-1]
    _flip(segment, _batch_starts(segment)[2] + 70)  # a byte of entry 3's record
    size = segment.stat().st_size
    with pytest.raises(DataDirectoryError) as caught:
        RaftStorage(tmp_path)
    assert str(segment) in caught.value.message and "intact entries follow it" in (
        caught.value.message
    )
    assert segment.stat().st_size == size  # entries 3-6 are still on disk


def test_damage_in_an_earlier_segment_is_refused(tmp_path: Path) -> None:
    _written(tmp_path, 30, segment_bytes=300)
    first = sorted(tmp_path.glob("*.log"))[0]
    assert len(list(tmp_path.glob("*.log"))) > 2
    _flip(first, _batch_starts(first)[-1] + 70)  # the last entry of a closed segment
    with pytest.raises(DataDirectoryError, match="later segments follow it") as caught:
        RaftStorage(tmp_path)
    assert str(first) in caught.value.message


def test_damage_of_the_last_entry_after_a_clean_shutdown_is_refused(tmp_path: Path) -> None:
    _written(tmp_path, 4)
    segment = sorted(tmp_path.glob("*.log"))[-1]
    _flip(segment, _batch_starts(segment)[-1] + 70)
    with pytest.raises(DataDirectoryError, match="after a clean shutdown"):
        RaftStorage(tmp_path)


def test_damage_below_the_snapshot_is_refused_too(tmp_path: Path) -> None:
    # The entry is never replayed, but a log that rescans its segment would cut every entry
    # after it, and those are above the snapshot.
    s = RaftStorage(tmp_path)
    s.load()
    s.persist(HardState(Term(1), None), None, None, entries(1, 8, 1))
    s.compact(Snapshot(SnapshotMeta(Index(5), Term(1)), b"image@5"))  # one segment: kept
    s.close()
    segment = sorted(tmp_path.glob("*.log"))[-1]
    (tmp_path / "clean-shutdown").unlink()
    _flip(segment, _batch_starts(segment)[1] + 70)  # entry 2, covered by the snapshot
    with pytest.raises(DataDirectoryError, match="intact entries follow it"):
        RaftStorage(tmp_path)


def test_missing_quorum_state_beside_entries_is_refused(tmp_path: Path) -> None:
    _written(tmp_path, 3)
    (tmp_path / "quorum-state").unlink()
    s = RaftStorage(tmp_path)
    with pytest.raises(DataDirectoryError) as caught:
        s.load()
    s.close()
    message = caught.value.message
    assert str(tmp_path / "quorum-state") in message and "up to index 3" in message
    assert "vote twice" in message and "transfer-leadership" in message


def test_missing_quorum_state_with_an_empty_log_starts_as_a_new_node(tmp_path: Path) -> None:
    s = RaftStorage(tmp_path)
    state = s.load()
    assert state.hard_state == HardState(Term(0), None) and state.entries == ()
    s.close()
    s, got, hard, snap = reopen(tmp_path)  # ran before, still never voted nor logged
    assert got == () and snap is None and hard == HardState(Term(0), None)
    s.close()
