from __future__ import annotations

from pathlib import Path

import pytest

from raftka.broker.log.partition_log import PartitionLog
from raftka.common.storage import OffsetOutOfRangeError
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
    assert plog.apply_retention(T0 + 10_000) == 3
    assert (plog.log_start_offset, plog.earliest_offset, plog.log_end_offset) == (3, 3, 5)
    with pytest.raises(OffsetOutOfRangeError) as info:
        plog.read(0, 1 << 20)
    assert (info.value.log_start_offset, info.value.log_end_offset) == (3, 5)
    assert plog.read(3, 1 << 20).records != b""
    assert plog.apply_retention(T0 + 10_000) == 0
    # The active segment is never deleted, however old.
    assert plog.apply_retention(T0 + 10**9) == 1
    assert (plog.log_start_offset, plog.segment_count) == (4, 1)
    result = plog.append_as_leader(batch(1), leader_epoch=1, now_ms=T0)
    assert (result.base_offset, result.log_start_offset) == (5, 4)
    plog.close()


def test_retention_by_size_keeps_the_newest_segments(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={**SEGMENTED, "retention.ms": "-1"})
    size = fill(plog)
    plog.update_configs({**SEGMENTED, "retention.ms": "-1", "retention.bytes": str(2 * size)})
    assert plog.apply_retention(T0 + 10**12) == 3
    assert (plog.log_start_offset, plog.size_bytes) == (3, 2 * size)
    plog.close()


def test_no_retention_when_disabled(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={**SEGMENTED, "retention.ms": "-1"})
    fill(plog)
    assert plog.apply_retention(T0 + 10**12) == 0
    assert plog.log_start_offset == 0
    plog.close()


def test_compact_only_topics_keep_their_segments(tmp_path: Path) -> None:
    overrides = {**SEGMENTED, "retention.ms": "1", "cleanup.policy": "compact"}
    plog = open_partition(tmp_path, overrides=overrides)
    fill(plog)
    assert plog.apply_retention(T0 + 10**12) == 0
    plog.update_configs({**overrides, "cleanup.policy": "compact,delete"})
    assert plog.apply_retention(T0 + 10**12) == 4
    plog.close()


def test_retention_never_deletes_at_or_above_the_high_watermark(tmp_path: Path) -> None:
    plog = open_partition(
        tmp_path, overrides={**SEGMENTED, "retention.ms": "1000"}, hw_follows_log_end=False
    )
    fill(plog)
    plog.set_high_watermark(2)
    assert plog.apply_retention(T0 + 10**9) == 0
    plog.set_high_watermark(4)  # the active segment's base: every older segment is committed
    assert plog.apply_retention(T0 + 10**9) == 4
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
    assert plog.apply_retention(T0 + 10_000) == 3
    plog.close()
    again = open_partition(tmp_path, overrides=overrides)
    assert (again.log_start_offset, again.log_end_offset, again.segment_count) == (3, 5, 2)
    again.close()
