"""Producer-state snapshot files: round trip, every kind of damage detected, fallback to an
older snapshot, and deletion by offset."""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import pytest
from structlog.testing import capture_logs

from raftka.broker.producers.snapshots import (
    CorruptSnapshotError,
    decode_snapshot,
    delete_snapshots,
    encode_snapshot,
    load_latest_snapshot,
    read_snapshot,
    snapshot_offsets,
    snapshot_path,
    write_snapshot,
)
from raftka.broker.producers.state import NUM_BATCHES_TO_RETAIN, ProducerStateTable

T = 1_700_000_000_000


def sample(batches_per_producer: int = NUM_BATCHES_TO_RETAIN + 2) -> ProducerStateTable:
    """Three producers; the first with more batches than are kept, one in epoch 4."""
    table = ProducerStateTable()
    offset = 0
    for i in range(batches_per_producer):
        table.record(7, 0, 3 * i, 2, offset, T + i)
        offset += 3
    table.record(2**40, 4, 0, 0, offset, T)
    table.record(0, 1, 2**31 - 1, 1, offset + 1, T - 5)  # a wrapped sequence
    return table


def as_tuples(table: ProducerStateTable) -> list[tuple[int, int, list[tuple[int, ...]]]]:
    return [(e.producer_id, e.epoch, [tuple(b) for b in e.batches]) for e in table]


def test_round_trip_keeps_every_remembered_batch() -> None:
    table = sample()
    data = encode_snapshot(100, table)
    decoded = decode_snapshot(data, 100)
    assert as_tuples(decoded) == as_tuples(table)
    first = decoded.entry(7)
    assert first is not None and len(first.batches) == NUM_BATCHES_TO_RETAIN
    assert first.last_seq == 3 * (NUM_BATCHES_TO_RETAIN + 2) - 1


def test_an_empty_table_round_trips() -> None:
    assert len(decode_snapshot(encode_snapshot(0, ProducerStateTable()), 0)) == 0


def test_files_are_named_by_offset(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, 42, sample())
    assert path.name == "00000000000000000042.snapshot" == snapshot_path(tmp_path, 42).name
    (tmp_path / "00000000000000000042.log").write_bytes(b"")
    (tmp_path / "00000000000000000007.snapshot.tmp").write_bytes(b"")
    write_snapshot(tmp_path, 7, ProducerStateTable())
    assert snapshot_offsets(tmp_path) == [7, 42]
    assert as_tuples(read_snapshot(tmp_path, 42)) == as_tuples(sample())


def _flip(data: bytes, position: int) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= 0x40
    return bytes(damaged)


def _recrc(data: bytearray) -> bytes:
    """``data`` with a valid CRC again (to reach the checks behind the CRC)."""
    struct.pack_into(">I", data, 2, crc32c.crc32c(bytes(data[6:])))
    return bytes(data)


GOOD = encode_snapshot(100, sample())


def _bad_entry() -> bytes:
    data = bytearray(GOOD)
    # first entry: 0 batches, and no marker (coordinator epoch -1) either
    struct.pack_into(">b", data, 18 + 8 + 2 + 4 + 8, 0)
    return _recrc(data)


def _offset_past_snapshot() -> bytes:
    table = ProducerStateTable()
    table.record(1, 0, 0, 0, 100, T)  # offset 100 is not below the snapshot offset
    return encode_snapshot(100, table)


def _duplicate_producer() -> bytes:
    data = bytearray(encode_snapshot(100, sample(1)))
    # entries by producer id, one batch each: the second (producer 7) becomes producer 0 too
    struct.pack_into(">q", data, 18 + (8 + 2 + 4 + 8 + 1) + 32, 0)
    return _recrc(data)


def _open_txn_past_snapshot() -> bytes:
    table = ProducerStateTable()
    table.record(1, 0, 0, 0, 99, T, transactional=True)
    data = bytearray(encode_snapshot(100, table))
    struct.pack_into(">q", data, 18 + 8 + 2 + 4, 100)  # the open transaction starts at 100
    return _recrc(data)


DAMAGED = {
    "empty": b"",
    "truncated header": GOOD[:10],
    "truncated entry": GOOD[:-1],
    "trailing bytes": GOOD + b"\x00",
    "flipped body bit": _flip(GOOD, len(GOOD) // 2),
    "flipped crc bit": _flip(GOOD, 3),
    "unknown version": _flip(GOOD, 1),
    "entry with no batch": _bad_entry(),
    "batch not below the snapshot offset": _offset_past_snapshot(),
    "producer listed twice": _duplicate_producer(),
    "open transaction not below the snapshot offset": _open_txn_past_snapshot(),
    "truncated with a valid crc": _recrc(bytearray(GOOD[:-3])),
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_damage_is_detected(damage: str) -> None:
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(DAMAGED[damage], 100)


def test_open_transactions_and_coordinator_epochs_round_trip() -> None:
    table = sample()
    table.record(9, 2, 0, 1, 40, T, transactional=True)  # opens a transaction at 40
    table.record(9, 2, 2, 0, 60, T, transactional=True)  # same transaction
    table.record(11, 0, 0, 0, 50, T, transactional=True)
    completed = table.record_marker(11, 1, True, 6, 55)  # closes 11, new epoch 1, no batch
    assert completed is not None and completed.first_offset == 50
    decoded = decode_snapshot(encode_snapshot(100, table), 100)
    assert as_tuples(decoded) == as_tuples(table)
    assert decoded.open_transactions == {9: 40}
    assert decoded.first_unstable_offset == 40
    entry = decoded.entry(11)
    assert entry is not None
    assert (entry.epoch, entry.coordinator_epoch, entry.txn_first_offset, len(entry.batches)) == (
        1,
        6,
        None,
        0,
    )


def _encode_v1(offset: int, table: ProducerStateTable) -> bytes:
    """A version-1 snapshot (written before transactions existed)."""
    out = bytearray(struct.pack(">hIqi", 1, 0, offset, len(table)))
    for entry in table:
        out += struct.pack(">qhb", entry.producer_id, entry.epoch, len(entry.batches))
        for batch in entry.batches:
            out += struct.pack(">iiqqq", *batch)
    return _recrc(out)


def test_a_version_1_snapshot_is_still_read() -> None:
    table = sample()
    decoded = decode_snapshot(_encode_v1(100, table), 100)
    assert as_tuples(decoded) == as_tuples(table)
    assert decoded.first_unstable_offset is None
    assert all(e.coordinator_epoch == -1 for e in decoded)


def test_every_torn_length_is_detected() -> None:
    for length in range(len(GOOD)):
        with pytest.raises(CorruptSnapshotError):
            decode_snapshot(GOOD[:length], 100)


def test_a_snapshot_of_another_offset_is_refused() -> None:
    with pytest.raises(CorruptSnapshotError, match="offset 100, not 101"):
        decode_snapshot(GOOD, 101)


def test_load_takes_the_newest_at_or_below_the_bound(tmp_path: Path) -> None:
    assert load_latest_snapshot(tmp_path, 1000) is None
    older, newer = ProducerStateTable(), sample()
    write_snapshot(tmp_path, 50, older)
    write_snapshot(tmp_path, 100, newer)
    write_snapshot(tmp_path, 200, ProducerStateTable())
    found = load_latest_snapshot(tmp_path, 199)
    assert found is not None and found[0] == 100 and as_tuples(found[1]) == as_tuples(newer)
    found = load_latest_snapshot(tmp_path, 99)
    assert found is not None and found[0] == 50
    assert load_latest_snapshot(tmp_path, 49) is None
    assert snapshot_offsets(tmp_path) == [50, 100, 200]  # loading deletes nothing healthy


def test_a_corrupt_snapshot_is_reported_deleted_and_an_older_one_used(tmp_path: Path) -> None:
    write_snapshot(tmp_path, 50, sample(2))
    write_snapshot(tmp_path, 100, sample())
    path = snapshot_path(tmp_path, 100)
    path.write_bytes(path.read_bytes()[:-4])  # torn
    with capture_logs() as events:
        found = load_latest_snapshot(tmp_path, 1000)
    assert found is not None and found[0] == 50
    assert as_tuples(found[1]) == as_tuples(sample(2))
    warnings = [e for e in events if e["event"] == "producer_snapshot_unreadable"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert warnings[0]["path"] == str(path) and "CRC-32C mismatch" in warnings[0]["error"]
    assert snapshot_offsets(tmp_path) == [50]


def test_when_every_snapshot_is_corrupt_none_is_loaded(tmp_path: Path) -> None:
    for offset in (10, 20):
        snapshot_path(tmp_path, offset).write_bytes(b"not a snapshot")
    with capture_logs() as events:
        assert load_latest_snapshot(tmp_path, 100) is None
    assert [e["event"] for e in events] == ["producer_snapshot_unreadable"] * 2
    assert snapshot_offsets(tmp_path) == []


def test_delete_by_offset(tmp_path: Path) -> None:
    for offset in (10, 20, 30, 40):
        write_snapshot(tmp_path, offset, ProducerStateTable())
    assert delete_snapshots(tmp_path, lambda offset: offset < 20) == 1
    assert delete_snapshots(tmp_path, lambda offset: offset > 30) == 1
    assert snapshot_offsets(tmp_path) == [20, 30]
    assert delete_snapshots(tmp_path, lambda offset: offset > 30) == 0
