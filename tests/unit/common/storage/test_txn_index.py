"""The per-segment transaction index: layout, checks on load, truncation, and its file going
with its segment (retention, truncation, compaction swap, recovery)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from raftka.common.storage.cleaner import clean_log
from raftka.common.storage.files import txn_index_path
from raftka.common.storage.txn_index import ENTRY_SIZE, AbortedTxn, TxnIndex
from tests.unit.common.storage.compaction_support import keyed, rules, small_log
from tests.unit.common.storage.support import batch, open_log


def test_entries_use_the_34_byte_big_endian_layout(tmp_path: Path) -> None:
    index = TxnIndex(tmp_path / "x.txnindex", 100)
    index.create()
    assert index.path.read_bytes() == b""
    index.append(AbortedTxn(7, 90, 105, 103))
    index.append(AbortedTxn(2**40, 104, 110, 111))
    data = index.path.read_bytes()
    assert len(data) == 2 * ENTRY_SIZE == 68
    assert data[:ENTRY_SIZE] == struct.pack(">hqqqq", 0, 7, 90, 105, 103)
    loaded = TxnIndex(index.path, 100)
    assert loaded.load(end_offset=200) is None
    assert loaded.entries == index.entries
    assert not loaded.needs_rebuild


def test_appends_must_follow_marker_order(tmp_path: Path) -> None:
    index = TxnIndex(tmp_path / "x.txnindex", 0)
    index.append(AbortedTxn(1, 0, 5, 6))
    with pytest.raises(ValueError, match="not after"):
        index.append(AbortedTxn(2, 1, 5, 6))


def test_truncation_drops_entries_whose_marker_goes(tmp_path: Path) -> None:
    index = TxnIndex(tmp_path / "x.txnindex", 0)
    for last in (5, 9, 14):
        index.append(AbortedTxn(last, 0, last, last + 1))
    index.truncate_to(9)
    assert [e.last_offset for e in index.entries] == [5]
    assert len(index.path.read_bytes()) == ENTRY_SIZE


def test_collect_returns_transactions_with_data_in_the_range(tmp_path: Path) -> None:
    index = TxnIndex(tmp_path / "x.txnindex", 0)
    index.append(AbortedTxn(1, 0, 4, 5))  # data 0..3
    index.append(AbortedTxn(2, 6, 10, 11))  # data 6..9
    index.append(AbortedTxn(3, 2, 20, 21))  # data 2..19
    assert [e.producer_id for e in index.collect(5, 6)] == [3]  # 1 ended, 2 not begun
    assert [e.producer_id for e in index.collect(0, 3)] == [1, 3]
    assert [e.producer_id for e in index.collect(4, 7)] == [1, 2, 3]  # marker 4 is in range
    assert index.collect(21, 30) == []


def _good(tmp_path: Path) -> bytes:
    return AbortedTxn(1, 10, 12, 13).encode() + AbortedTxn(2, 11, 15, 16).encode()


@pytest.mark.parametrize(
    ("name", "mangle"),
    [
        ("torn", lambda d: d[:-3]),
        ("unknown version", lambda d: b"\x00\x05" + d[2:]),
        ("out of order", lambda d: d[ENTRY_SIZE:] + d[:ENTRY_SIZE]),
        ("past the segment", lambda d: d + AbortedTxn(3, 20, 30, 31).encode()),
        ("first after marker", lambda d: d + AbortedTxn(3, 19, 18, 19).encode()),
    ],
)
def test_a_damaged_file_is_emptied_and_marked_for_rebuild(
    tmp_path: Path, name: str, mangle: object
) -> None:
    path = tmp_path / "x.txnindex"
    path.write_bytes(mangle(_good(tmp_path)))  # type: ignore[operator]
    index = TxnIndex(path, 10)
    assert index.load(end_offset=20) is not None
    assert index.needs_rebuild and index.entries == ()
    assert path.read_bytes() == b""


def stale(index: TxnIndex) -> bool:
    return index.needs_rebuild


def test_a_missing_file_is_marked_for_rebuild(tmp_path: Path) -> None:
    index = TxnIndex(tmp_path / "x.txnindex", 0)
    assert "missing" in (index.load(end_offset=None) or "")
    assert index.needs_rebuild
    index.rebuilt([AbortedTxn(1, 0, 3, 4)])
    assert not stale(index)
    assert len(index.path.read_bytes()) == ENTRY_SIZE


# ====================================================================== with its segment


def txn_files(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if ".txnindex" in n)


def test_each_segment_has_a_txnindex_that_goes_with_it(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=300)
    for _ in range(6):
        log.append(batch(2))
    bases = log.segment_base_offsets
    assert len(bases) > 2
    assert txn_files(tmp_path) == [txn_index_path(tmp_path, b).name for b in bases]
    # retention
    log.delete_before(bases[1])
    assert txn_index_path(tmp_path, bases[1]).exists()
    assert not txn_index_path(tmp_path, bases[0]).exists()
    # truncation
    log.truncate_to(bases[-1] - 1)
    assert not txn_index_path(tmp_path, bases[-1]).exists()
    log.close()


def test_truncation_inside_a_segment_cuts_its_txnindex(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    for _ in range(5):
        log.append(batch(2))  # offsets 0..9
    ((_base, index),) = log.txn_indexes()
    index.append(AbortedTxn(1, 0, 3, 4))
    index.append(AbortedTxn(2, 2, 7, 8))
    log.truncate_to(6)
    assert [e.last_offset for e in index.entries] == [3]
    log.close()
    again = open_log(tmp_path)
    assert [e.last_offset for e in again.txn_indexes()[0][1].entries] == [3]
    again.close()


def test_a_delayed_deletion_renames_the_txnindex(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=300, file_delete_delay_ms=1000)
    for _ in range(6):
        log.append(batch(2))
    first = log.segment_base_offsets[0]
    log.delete_before(log.segment_base_offsets[1])
    assert (tmp_path / (txn_index_path(tmp_path, first).name + ".deleted")).exists()
    assert log.remove_deleted_segments(10**12) == 1
    assert txn_files(tmp_path) == [
        txn_index_path(tmp_path, b).name for b in log.segment_base_offsets
    ]
    log.close()


def test_a_cleaned_segment_keeps_the_aborted_transactions_of_the_ones_it_replaces(
    tmp_path: Path,
) -> None:
    log = small_log(tmp_path)
    for r in range(40):
        log.append(keyed([(b"k", f"v{r}".encode())]))
    indexes = log.txn_indexes()
    assert len(indexes) > 3
    indexes[0][1].append(AbortedTxn(1, 0, indexes[0][0] + 1, 2))
    indexes[1][1].append(AbortedTxn(2, 0, indexes[1][0], 3))
    end = log.segment_base_offsets[-1]
    result = clean_log(log, first_dirty=0, end_offset=end, rules=rules())
    assert result is not None and result.completed
    entries = [e for _base, index in log.txn_indexes() for e in index.entries]
    assert [e.producer_id for e in entries] == [1, 2]
    assert txn_files(tmp_path) == [
        txn_index_path(tmp_path, b).name for b in log.segment_base_offsets
    ]
    log.close()
    again = small_log(tmp_path)
    assert [e.producer_id for _b, i in again.txn_indexes() for e in i.entries] == [1, 2]
    again.close()


def test_recovery_marks_a_txnindex_for_rebuild_only_when_its_segment_holds_control_batches(
    tmp_path: Path,
) -> None:
    from raftka.common.records import build_end_txn_marker

    log = open_log(tmp_path, segment_bytes=300)
    log.append(batch(2))
    log.append(batch(2))
    log.append(build_end_txn_marker(5, 1, False, 0, timestamp=1_000_000))
    (_base, index), *_ = log.txn_indexes()
    index.append(AbortedTxn(5, 0, 4, 5))
    log.flush()
    # a crash: no clean-shutdown marker, no recovery point: every segment is recovered
    (tmp_path / "recovery-point").unlink()
    again = open_log(tmp_path, segment_bytes=300)
    flags = [i.needs_rebuild for _b, i in again.txn_indexes()]
    assert flags[-1] is True  # the segment with the marker
    assert all(i.entries == () for _b, i in again.txn_indexes())
    again.close()
    log.close()
