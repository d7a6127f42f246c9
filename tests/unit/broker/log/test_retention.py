from __future__ import annotations

from pathlib import Path

import pytest

from raftka.broker.log.config import PartitionLogConfig
from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.log.retention import (
    apply_retention,
    remove_deleted_segments,
    retention_start_offset,
)
from raftka.common.storage import LogOffsetOutOfRangeError, SegmentInfo
from tests.unit.broker.support import T0, FakeClock, batch, open_partition

# Each batch is about 180 bytes, so with segment.bytes=200 every batch gets its own segment.
SEGMENTED = {"segment.bytes": "200"}


def fill(plog: PartitionLog, count: int = 5, *, step_ms: int = 1000) -> int:
    """Appends ``count`` one-record batches with timestamps T0, T0 + step, ...; returns the
    size of one batch."""
    size = 0
    for i in range(count):
        data = batch(1, value_size=100, timestamp=T0 + i * step_ms, tag=i)
        size = len(data)
        plog.append_as_leader(data, leader_epoch=1, now_ms=T0 + i * step_ms)
    assert plog.segment_count == count
    return size


def test_retention_by_time_deletes_old_segments(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={**SEGMENTED, "retention.ms": "7500"})
    fill(plog)
    # Segments whose largest timestamp is more than 7.5 s older than now: T0, T0+1s, T0+2s.
    assert apply_retention([plog], T0 + 10_000) == 3
    assert (plog.log_start_offset, plog.earliest_offset, plog.log_end_offset) == (3, 3, 5)
    with pytest.raises(LogOffsetOutOfRangeError) as info:
        plog.read(0, 1 << 20)
    assert (info.value.log_start_offset, info.value.log_end_offset) == (3, 5)
    assert plog.read(3, 1 << 20).records != b""
    assert apply_retention([plog], T0 + 10_000) == 0
    # The active segment is never deleted, however old.
    assert apply_retention([plog], T0 + 10**9) == 1
    assert (plog.log_start_offset, plog.segment_count) == (4, 1)
    result = plog.append_as_leader(batch(1), leader_epoch=1, now_ms=T0)
    assert (result.base_offset, result.log_start_offset) == (5, 4)
    plog.close()


def test_retention_by_size_keeps_the_newest_segments(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={**SEGMENTED, "retention.ms": "-1"})
    size = fill(plog)
    plog.update_configs({**SEGMENTED, "retention.ms": "-1", "retention.bytes": str(2 * size)})
    assert apply_retention([plog], T0 + 10**12) == 3
    assert (plog.log_start_offset, plog.size_bytes) == (3, 2 * size)
    plog.close()


def test_no_retention_when_disabled(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={**SEGMENTED, "retention.ms": "-1"})
    fill(plog)
    assert apply_retention([plog], T0 + 10**12) == 0
    assert plog.log_start_offset == 0
    plog.close()


def test_compact_only_topics_keep_their_segments(tmp_path: Path) -> None:
    overrides = {**SEGMENTED, "retention.ms": "1", "cleanup.policy": "compact"}
    plog = open_partition(tmp_path, overrides=overrides)
    fill(plog)
    assert apply_retention([plog], T0 + 10**12) == 0
    plog.update_configs({**overrides, "cleanup.policy": "compact,delete"})
    assert apply_retention([plog], T0 + 10**12) == 4
    plog.close()


def test_retention_never_deletes_at_or_above_the_high_watermark(tmp_path: Path) -> None:
    plog = open_partition(
        tmp_path, overrides={**SEGMENTED, "retention.ms": "1000"}, hw_follows_log_end=False
    )
    fill(plog)
    plog.set_high_watermark(2)
    assert apply_retention([plog], T0 + 10**9) == 0
    plog.set_high_watermark(4)  # the active segment's base: every older segment is committed
    assert apply_retention([plog], T0 + 10**9) == 4
    assert plog.log_start_offset == 4
    plog.close()


def test_segments_roll_by_age(tmp_path: Path) -> None:
    clock = FakeClock()
    plog = open_partition(tmp_path, overrides={"segment.ms": "60000"}, clock=clock)
    plog.append_as_leader(batch(1), leader_epoch=1, now_ms=clock.now_ms)
    clock.advance(30_000)
    plog.append_as_leader(batch(1), leader_epoch=1, now_ms=clock.now_ms)
    assert plog.segment_count == 1
    clock.advance(40_000)
    plog.append_as_leader(batch(1), leader_epoch=1, now_ms=clock.now_ms)
    assert plog.segment_count == 2
    plog.close()


def test_retention_survives_a_reopen(tmp_path: Path) -> None:
    overrides = {**SEGMENTED, "retention.ms": "7500"}
    plog = open_partition(tmp_path, overrides=overrides)
    fill(plog)
    assert apply_retention([plog], T0 + 10_000) == 3
    plog.close()
    again = open_partition(tmp_path, overrides=overrides)
    assert (again.log_start_offset, again.log_end_offset, again.segment_count) == (3, 5, 2)
    again.close()


# ====================================================================== the decision alone


def segments(*largest_timestamps: int, size: int = 100) -> list[SegmentInfo]:
    """Segments of three offsets each with these largest timestamps (the last one active)."""
    return [SegmentInfo(3 * i, size, ts) for i, ts in enumerate(largest_timestamps)]


def test_retention_start_offset_by_time() -> None:
    config = PartitionLogConfig(retention_ms=10_000)
    log = segments(10_002, 20_002, 30_002, 40_002, 50_002)
    decide = retention_start_offset
    assert decide(log, config, high_watermark=100, now_ms=30_003) == (6, "retention_ms")
    # The active segment is never deleted, however old.
    assert decide(log, PartitionLogConfig(retention_ms=0), high_watermark=100, now_ms=10**9) == (
        12,
        "retention_ms",
    )
    assert decide(log, config, high_watermark=100, now_ms=20_000) is None
    assert decide(log[-1:], config, high_watermark=100, now_ms=10**9) is None


def test_retention_start_offset_by_size() -> None:
    log = segments(0, 0, 0, 0, 0, size=100)

    def by_size(limit: int) -> tuple[int, str] | None:
        config = PartitionLogConfig(retention_ms=-1, retention_bytes=limit)
        return retention_start_offset(log, config, high_watermark=100, now_ms=0)

    # Whole segments go while what remains is still at least retention.bytes.
    assert by_size(301) == (3, "retention_bytes")
    assert by_size(300) == (6, "retention_bytes")
    assert by_size(0) == (12, "retention_bytes")
    assert by_size(500) is None


def test_retention_start_offset_waits_for_the_high_watermark_and_the_delete_policy() -> None:
    log = segments(0, 0, 0)
    config = PartitionLogConfig(retention_ms=1)
    assert retention_start_offset(log, config, high_watermark=5, now_ms=10**9) is None
    assert retention_start_offset(log, config, high_watermark=6, now_ms=10**9) == (
        6,
        "retention_ms",
    )
    compact = PartitionLogConfig(retention_ms=1, delete_enabled=False, compact_enabled=True)
    assert retention_start_offset(log, compact, high_watermark=6, now_ms=10**9) is None


def test_advance_log_start_never_passes_the_high_watermark(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides=SEGMENTED, hw_follows_log_end=False)
    fill(plog)
    plog.set_high_watermark(2)
    assert plog.advance_log_start(3, reason="test") == 0  # chosen before a truncation, say
    assert plog.advance_log_start(0, reason="test") == 0
    assert plog.advance_log_start(2, reason="test") == 2
    assert (plog.log_start_offset, plog.segment_count) == (2, 3)
    plog.close()


def test_retention_keeps_deleted_files_for_file_delete_delay_ms(tmp_path: Path) -> None:
    clock = FakeClock()
    overrides = {**SEGMENTED, "retention.ms": "7500", "file.delete.delay.ms": "30000"}
    plog = open_partition(tmp_path, overrides=overrides, clock=clock)
    fill(plog)
    reader = plog._log.iter_batches(0)  # a read already holding the oldest segment
    assert apply_retention([plog], T0 + 10_000) == 3
    assert plog.log_start_offset == 3
    waiting = sorted(p.name for p in plog.directory.glob("*.log.deleted"))
    assert waiting == [f"{base:020d}.log.deleted" for base in (0, 1, 2)]
    assert [base for base, _last, _view in reader] == [0, 1, 2, 3, 4]
    clock.advance(29_999)
    assert remove_deleted_segments([plog], clock()) == 0
    clock.advance(1)
    assert remove_deleted_segments([plog], clock()) == 3
    assert not list(plog.directory.glob("*.deleted"))
    plog.close()


def test_file_delete_delay_ms_change_applies_without_a_reopen(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={**SEGMENTED, "retention.ms": "7500"})
    fill(plog)
    plog.update_configs({**SEGMENTED, "retention.ms": "7500", "file.delete.delay.ms": "0"})
    assert apply_retention([plog], T0 + 10_000) == 3
    assert not list(plog.directory.glob("*.deleted"))
    plog.close()
