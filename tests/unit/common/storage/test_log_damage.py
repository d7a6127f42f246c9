"""Disk damage in a cleanly closed log is found, never served: reads verify every batch they
return, a segment missing from the middle is found on open, a scrub pass finds damaged
batches, and a log can be cut back to just before the damage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raftka.common.records import iter_records
from raftka.common.storage import SegmentedLog
from raftka.common.storage.errors import DamagedBatchError
from raftka.common.storage.files import segment_paths
from tests.unit.common.storage.support import batch, open_log

SEGMENT_BYTES = 1200  # about ten 100-byte batches per segment


def filled_log(directory: Path, batches: int = 30) -> SegmentedLog:
    log = open_log(directory, segment_bytes=SEGMENT_BYTES)
    for i in range(batches):
        log.append(batch(1, tag=i, value_size=40))
    return log


def flip_bytes(path: Path, position: int, count: int = 4) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        data = bytearray(f.read(count))
        f.seek(position)
        f.write(bytes(b ^ 0xFF for b in data))


def batch_position(log: SegmentedLog, offset: int) -> tuple[Path, int, int]:
    """(segment file, byte position, segment base) of the batch holding ``offset``."""
    segment, position, _ = log._state.locate(offset)
    return segment.log_path, position, segment.base_offset


def damaged_closed_log(tmp_path: Path, offset: int) -> tuple[Path, int]:
    """A cleanly closed log of 30 one-record batches whose batch ``offset`` has 4 bytes
    flipped in its record payload; returns the segment file and the batch's position."""
    log = filled_log(tmp_path)
    path, position, _ = batch_position(log, offset)
    log.close()
    flip_bytes(path, position + 70)  # inside the record (key/value), past the header
    return path, position


def test_a_read_never_returns_a_damaged_batch(tmp_path: Path) -> None:
    _path, position = damaged_closed_log(tmp_path, 14)
    log = open_log(tmp_path, segment_bytes=SEGMENT_BYTES)
    assert log.damage_found_on_open is None  # the clean open reads no payload
    with pytest.raises(DamagedBatchError, match="CRC-32C mismatch") as caught:
        log.read(14, 1 << 20)
    report = caught.value.report
    assert (report.offset, report.position) == (14, position)
    assert "offset 14" in caught.value.message
    # A read from before the damage stops at the last intact batch.
    result = log.read(log.segment_base_offsets[1], 1 << 20)
    assert result.last_offset == 13
    assert [r.offset for r in iter_records(result.records)][-1] == 13
    # The batch after it is served.
    assert log.read(15, 1).base_offset == 15
    log.close()


def test_an_unverified_read_returns_the_stored_bytes(tmp_path: Path) -> None:
    damaged_closed_log(tmp_path, 14)
    log = open_log(tmp_path, segment_bytes=SEGMENT_BYTES)
    assert log.read(14, 1, verify=False).base_offset == 14
    log.close()


def test_damaged_base_offset_is_found_by_the_read(tmp_path: Path) -> None:
    log = filled_log(tmp_path)
    path, position, _ = batch_position(log, 14)
    log.close()
    flip_bytes(path, position + 4, 2)  # low bytes of the base offset: not covered by the CRC
    log = open_log(tmp_path, segment_bytes=SEGMENT_BYTES)
    # Opening walks the headers after the segment's last index entry: here all of them.
    assert log.damage_found_on_open is not None
    assert log.damage_found_on_open.offset == 14
    with pytest.raises(DamagedBatchError, match="base offset"):
        log.read(14, 1 << 20)
    assert log.read(13, 1 << 20).last_offset == 13
    log.close()


def test_a_segment_deleted_from_the_middle_is_found_on_open(tmp_path: Path) -> None:
    log = filled_log(tmp_path)
    bases = log.segment_base_offsets
    assert len(bases) >= 3
    log.close()
    for path in segment_paths(tmp_path, bases[1]):
        path.unlink()
    log = open_log(tmp_path, segment_bytes=SEGMENT_BYTES)
    damage = log.damage_found_on_open
    assert damage is not None
    assert (damage.offset, damage.segment_base_offset) == (bases[1], bases[0])
    assert "missing" in damage.reason
    with pytest.raises(DamagedBatchError, match=f"offsets {bases[1]}..{bases[2] - 1} are missing"):
        log.read(bases[1] + 1, 1 << 20)
    assert log.read(0, 1 << 20).last_offset == bases[1] - 1
    # The repair: cut the log where the hole begins.
    assert log.truncate_at_damage(damage) == bases[1]
    assert log.segment_base_offsets == (bases[0],)
    assert log.damage_found_on_open is None
    log.close()
    assert open_log(tmp_path, segment_bytes=SEGMENT_BYTES).damage_found_on_open is None


def scrub_all(log: SegmentedLog, max_bytes: int = 300) -> list[tuple[int, int, str]]:
    found = []
    for base in log.segment_base_offsets:
        position, offset = 0, base
        while True:
            progress = log.scrub(base, position, offset, max_bytes, log.generation)
            position, offset = progress.next_position, progress.next_offset
            if progress.damage is not None:
                found.append(
                    (progress.damage.offset, progress.damage.position, progress.damage.reason)
                )
            if progress.done:
                break
    return found


def test_scrub_finds_damaged_batches_and_holes(tmp_path: Path) -> None:
    _path, position = damaged_closed_log(tmp_path, 14)
    log = open_log(tmp_path, segment_bytes=SEGMENT_BYTES)
    found = scrub_all(log)
    assert [(o, p) for o, p, _ in found] == [(14, position)]
    assert "CRC-32C mismatch" in found[0][2]
    log.close()


def test_scrub_of_an_intact_log_finds_nothing(tmp_path: Path) -> None:
    log = filled_log(tmp_path)
    assert scrub_all(log, max_bytes=1) == []
    assert scrub_all(log, max_bytes=1 << 20) == []
    log.close()


def test_scrub_of_a_changed_log_stops_without_reading(tmp_path: Path) -> None:
    log = filled_log(tmp_path)
    generation = log.generation
    log.truncate_to(20)
    progress = log.scrub(log.segment_base_offsets[0], 0, 0, 1 << 20, generation)
    assert progress.done and progress.bytes_read == 0 and progress.damage is None
    log.close()


def test_truncate_at_damage_keeps_the_intact_batches(tmp_path: Path) -> None:
    damaged_closed_log(tmp_path, 14)
    log = open_log(tmp_path, segment_bytes=SEGMENT_BYTES)
    with pytest.raises(DamagedBatchError) as caught:
        log.read(14, 1)
    assert log.truncate_at_damage(caught.value.report) == 14
    assert log.log_end_offset == 14
    assert log.read(13, 1 << 20).last_offset == 13
    log.append(batch(1, tag=99), assign_offsets=True)
    assert log.read(14, 1).base_offset == 14
    log.close()
    log = open_log(tmp_path, segment_bytes=SEGMENT_BYTES)
    assert scrub_all(log) == []
    log.close()


def test_a_flipped_length_field_is_damage_not_a_crash(tmp_path: Path) -> None:
    log = filled_log(tmp_path)
    path, position, _ = batch_position(log, 14)
    log.close()
    flip_bytes(path, position + 8, 4)  # the batch length
    log = open_log(tmp_path, segment_bytes=SEGMENT_BYTES)
    with pytest.raises(DamagedBatchError):
        log.read(14, 1 << 20)
    assert log.read(12, 1 << 20).last_offset == 13
    found = scrub_all(log)
    assert [(o, p) for o, p, _ in found][:1] == [(14, position)]
    assert os.path.getsize(path) > position
    log.close()
