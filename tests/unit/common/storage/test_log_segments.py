from __future__ import annotations

import os
from pathlib import Path

import pytest

from raftka.common.records import BatchHeader, RecordTooLargeError, build_batch, iter_records
from raftka.common.storage import LogClosedError, LogConfig, LogOffsetOutOfRangeError, SegmentedLog
from raftka.common.storage.files import segment_paths
from tests.unit.common.storage.support import FakeClock, batch, open_log


def log_files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".log"))


def test_segments_are_named_by_base_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path, initial_start_offset=1, segment_bytes=300)
    for _ in range(4):
        log.append(batch(3))
    assert list(log.segment_base_offsets) == [1, 4, 7, 10]
    assert log_files(tmp_path) == [f"{b:020d}.log" for b in (1, 4, 7, 10)]
    for base in log.segment_base_offsets:
        for path in segment_paths(tmp_path, base):
            assert path.exists()


def test_roll_by_size(tmp_path: Path) -> None:
    size = len(batch(1))
    log = open_log(tmp_path, segment_bytes=size * 3)
    for _ in range(3):
        log.append(batch(1))
    assert list(log.segment_base_offsets) == [0]
    log.append(batch(1))
    assert list(log.segment_base_offsets) == [0, 3]
    # A batch larger than a segment still goes into one (fresh) segment.
    log.append(batch(1, value_size=size * 4))
    log.append(batch(1))
    assert list(log.segment_base_offsets) == [0, 3, 4, 5]
    assert log.read(4, 10).last_offset == 4


def test_roll_by_age(tmp_path: Path) -> None:
    clock = FakeClock()
    log = open_log(tmp_path, clock=clock, segment_ms=60_000)
    clock.advance(120_000)
    log.append(batch(1))  # an empty segment never rolls; its age starts with its first batch
    clock.advance(60_000)
    log.append(batch(1))
    assert list(log.segment_base_offsets) == [0]
    clock.advance(1)
    log.append(batch(1))
    assert list(log.segment_base_offsets) == [0, 2]
    clock.advance(59_999)
    log.append(batch(1))
    assert list(log.segment_base_offsets) == [0, 2]


def test_offset_index_is_sparse_and_points_at_batch_starts(tmp_path: Path) -> None:
    log = open_log(tmp_path, index_interval_bytes=500)
    one = len(batch(1, value_size=100))
    for tag in range(40):
        log.append(batch(1, value_size=100, tag=tag))
    log.flush()
    index_path = segment_paths(tmp_path, 0)[1]
    raw = index_path.read_bytes()
    entries = [
        (int.from_bytes(raw[i : i + 4], "big"), int.from_bytes(raw[i + 4 : i + 8], "big"))
        for i in range(0, len(raw), 8)
    ]
    # An entry each time more than 500 bytes were written since the previous one.
    per_entry = 500 // one + 1
    assert len(entries) == (40 - 1) // per_entry
    assert [offset for offset, _ in entries] == [per_entry * (i + 1) for i in range(len(entries))]
    log_path = segment_paths(tmp_path, 0)[0]
    with open(log_path, "rb") as f:
        data = f.read()
    for offset, position in entries:
        assert BatchHeader.parse(data, position).base_offset == offset
    for target in range(40):
        assert log.read(target, 1).base_offset == target


def test_truncate_to_across_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=300)
    for tag in range(10):
        log.append(batch(3, tag=tag))
    assert len(log.segment_base_offsets) == 10
    log.flush()
    assert log.truncate_to(13) == 12  # 12..14 is one batch: it goes whole
    assert log.log_end_offset == 12
    assert list(log.segment_base_offsets) == [0, 3, 6, 9, 12]
    assert log_files(tmp_path) == [f"{b:020d}.log" for b in (0, 3, 6, 9, 12)]
    assert log.recovery_point == 12
    with pytest.raises(LogOffsetOutOfRangeError):
        log.read(12, 100)
    info = log.append(batch(2, tag=99))
    assert (info.base_offset, info.last_offset) == (12, 13)
    assert [r.value for r in iter_records(log.read(12, 100).records)] == [b"c" * 20] * 2
    assert log.truncate_to(100) == 14
    assert log.truncate_to(4) == 3
    assert list(log.segment_base_offsets) == [0, 3]
    log.close()
    reopened = SegmentedLog.open(tmp_path)
    assert reopened.log_end_offset == 3
    assert reopened.append(batch(1)).base_offset == 3


def test_truncate_within_the_active_segment(tmp_path: Path) -> None:
    log = open_log(tmp_path, index_interval_bytes=0)
    for tag in range(10):
        log.append(batch(1, tag=tag, timestamp=1000 + tag))
    assert log.truncate_to(6) == 6
    assert log.offset_for_timestamp(1005) is not None
    assert log.offset_for_timestamp(1006) is None
    assert log.append(batch(1, timestamp=5000)).base_offset == 6
    found = log.offset_for_timestamp(1006)
    assert found is not None and found.offset == 6


def test_truncate_to_the_log_start_empties_the_log(tmp_path: Path) -> None:
    log = open_log(tmp_path, initial_start_offset=1)
    log.append(batch(5))
    assert log.truncate_to(1) == 1
    assert (log.log_start_offset, log.log_end_offset) == (1, 1)
    log.append(batch(2))
    log.delete_before(2)
    assert log.truncate_to(0) == 0
    assert (log.log_start_offset, log.log_end_offset) == (0, 0)


def test_delete_before(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=300)
    for tag in range(6):
        log.append(batch(3, tag=tag))
    assert list(log.segment_base_offsets) == [0, 3, 6, 9, 12, 15]
    assert log.delete_before(7) == 2
    assert log.log_start_offset == 7
    assert list(log.segment_base_offsets) == [6, 9, 12, 15]
    with pytest.raises(LogOffsetOutOfRangeError):
        log.read(6, 100)
    result = log.read(7, 1)
    assert result.base_offset == 6  # the stored batch that holds offset 7
    assert log.delete_before(5) == 0
    with pytest.raises(LogOffsetOutOfRangeError):
        log.delete_before(19)
    log.close()
    reopened = SegmentedLog.open(tmp_path)
    assert reopened.log_start_offset == 7
    assert list(reopened.segment_base_offsets) == [6, 9, 12, 15]
    # Up to the end: the active segment is rolled so that it can go too.
    assert reopened.delete_before(18) == 4
    assert list(reopened.segment_base_offsets) == [18]
    assert (reopened.log_start_offset, reopened.log_end_offset) == (18, 18)
    assert reopened.append(batch(1)).base_offset == 18


def test_reset(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=300, initial_start_offset=1)
    for _ in range(5):
        log.append(batch(3))
    log.reset(1000)
    assert (log.log_start_offset, log.log_end_offset) == (1000, 1000)
    assert list(log.segment_base_offsets) == [1000]
    assert log_files(tmp_path) == [f"{1000:020d}.log"]
    assert log.append(batch(2)).base_offset == 1000
    log.reset(10)
    log.close()
    reopened = SegmentedLog.open(tmp_path)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (10, 10)


def test_segments_describe_what_retention_decides_on(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=300)
    for tag in range(3):
        log.append(batch(3, tag=tag, timestamp=10_000 * (tag + 1)))
    infos = log.segments()
    assert [(s.base_offset, s.largest_timestamp) for s in infos] == [
        (0, 10_002),
        (3, 20_002),
        (6, 30_002),
    ]
    assert sum(s.size for s in infos) == log.size_bytes


def test_delete_before_logs_its_reason_and_survives_a_reopen(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=300)
    for tag in range(5):
        log.append(batch(3, tag=tag))
    assert log.delete_before(6, reason="retention_ms") == 2
    assert list(log.segment_base_offsets) == [6, 9, 12]
    log.close()
    assert SegmentedLog.open(tmp_path).log_start_offset == 6


def test_update_config_takes_effect_without_a_reopen(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=10_000)
    for _ in range(4):
        log.append(batch(3))
    assert list(log.segment_base_offsets) == [0]
    log.update_config(LogConfig(segment_bytes=300))
    assert log.config.segment_bytes == 300
    log.append(batch(3))
    assert list(log.segment_base_offsets) == [0, 12]  # the next append rolls by the new size
    log.update_config(LogConfig(segment_bytes=300, max_batch_bytes=100))
    with pytest.raises(RecordTooLargeError):
        log.append(batch(3))
    log.close()
    with pytest.raises(LogClosedError):
        log.update_config(LogConfig())


def test_offset_for_timestamp(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=200, index_interval_bytes=100)
    # Batch i holds offsets 3i..3i+2 with timestamps 1000*i + (0, 5, 2); batch 4 goes back in time.
    for i in range(8):
        ts = 1000 * i if i != 4 else 100
        records = [(ts, None, b"x", ()), (ts + 5, None, b"y", ()), (ts + 2, None, b"z", ())]
        log.append(build_batch(records))
    assert len(log.segment_base_offsets) > 2

    def lookup(ts: int) -> tuple[int, int] | None:
        found = log.offset_for_timestamp(ts)
        return None if found is None else (found.offset, found.timestamp)

    assert lookup(0) == (0, 0)
    assert lookup(3) == (1, 5)
    assert lookup(6) == (3, 1000)
    assert lookup(3004) == (10, 3005)
    assert lookup(4000) == (15, 5000)  # batch 4 (offsets 12..14) only has timestamps near 100
    assert lookup(7005) == (22, 7005)
    assert lookup(7006) is None
    log.delete_before(16)
    assert lookup(0) == (16, 5005)
    log.close()
    log = SegmentedLog.open(tmp_path)
    assert lookup(6003) == (19, 6005)


def test_retention_and_deletes_survive_a_crash_style_reopen(tmp_path: Path) -> None:
    clock = FakeClock()
    log = open_log(tmp_path, clock=clock, segment_bytes=300)
    for _ in range(4):
        log.append(batch(3))
    log.delete_before(4)
    # No close(): reopen as after a crash.
    reopened = SegmentedLog.open(tmp_path)
    assert reopened.log_start_offset == 4
    assert reopened.log_end_offset == 12


def _names(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.startswith("000"))


def test_deleted_segments_wait_for_file_delete_delay_and_readers_finish(tmp_path: Path) -> None:
    clock = FakeClock()
    log = open_log(tmp_path, clock=clock, segment_bytes=300, file_delete_delay_ms=60_000)
    for tag in range(4):
        log.append(batch(3, tag=tag))
    assert list(log.segment_base_offsets) == [0, 3, 6, 9]
    reader = log.iter_batches(0)  # a reader holding segments 0 and 3
    assert next(reader)[0] == 0
    assert log.delete_before(6) == 2
    assert list(log.segment_base_offsets) == [6, 9]
    names = _names(tmp_path)
    for base in (0, 3):
        stem = f"{base:020d}"
        assert f"{stem}.log" not in names
        assert {f"{stem}.log.deleted", f"{stem}.index.deleted"} <= set(names)
    # The reader goes on through the deleted segments, then the live ones.
    assert [base for base, _last, _view in reader] == [3, 6, 9]
    clock.advance(59_999)
    assert log.remove_deleted_segments() == 0
    assert f"{0:020d}.log.deleted" in _names(tmp_path)
    clock.advance(1)
    assert log.remove_deleted_segments() == 2
    assert not [name for name in _names(tmp_path) if name.endswith(".deleted")]
    assert log.pending_deletions == 0
    log.close()


def test_truncated_segments_wait_too_and_a_close_removes_what_waits(tmp_path: Path) -> None:
    clock = FakeClock()
    log = open_log(tmp_path, clock=clock, segment_bytes=300, file_delete_delay_ms=1000)
    for tag in range(4):
        log.append(batch(3, tag=tag))
    assert log.truncate_to(6) == 6
    assert f"{9:020d}.log.deleted" in _names(tmp_path)
    assert list(log.segment_base_offsets) == [0, 3, 6]
    # A new segment of a deleted one's base offset does not disturb the waiting files.
    log.append(batch(3, tag=7))
    log.append(batch(3, tag=8))
    assert list(log.segment_base_offsets) == [0, 3, 6, 9]
    assert {f"{9:020d}.log", f"{9:020d}.log.deleted"} <= set(_names(tmp_path))
    assert log.pending_deletions == 1
    log.close()
    assert not [name for name in _names(tmp_path) if name.endswith(".deleted")]
    reopened = SegmentedLog.open(tmp_path)
    assert reopened.log_end_offset == 12
    reopened.close()


def test_without_a_delay_segments_go_at_once(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=300)
    for tag in range(3):
        log.append(batch(3, tag=tag))
    assert log.delete_before(6) == 2
    assert _names(tmp_path)[0].startswith(f"{6:020d}")
    assert log.pending_deletions == 0
    log.close()
