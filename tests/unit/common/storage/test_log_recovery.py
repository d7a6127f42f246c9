from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from raftka.common.records import split_batches
from raftka.common.storage import SegmentedLog
from raftka.common.storage.checkpoint import CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE
from raftka.common.storage.files import segment_paths
from tests.unit.common.storage.support import FakeClock, batch, open_log

N = 5


def build_log(directory: Path, **config: Any) -> list[bytes]:
    """Writes N batches (the last one bigger), closes cleanly, returns the stored batches."""
    log = open_log(directory, **config)
    for tag in range(N - 1):
        log.append(batch(2, tag=tag))
    log.append(batch(3, tag=N, value_size=30))
    log.close()
    stored: list[bytes] = []
    for base in log.segment_base_offsets:
        data = segment_paths(directory, base)[0].read_bytes()
        stored.extend(bytes(data[s.position : s.position + s.size]) for s in split_batches(data))
    return stored


def simulate_crash(directory: Path) -> None:
    (directory / CLEAN_SHUTDOWN_FILE).unlink(missing_ok=True)


def assert_first_batches_remain(directory: Path, stored: list[bytes], count: int) -> None:
    with capture_logs() as events:
        log = SegmentedLog.open(directory)
    end = 2 * (count)  # each of the first N-1 batches holds 2 records
    assert log.log_end_offset == end
    result = log.read(0, 1 << 20) if end else None
    if result is not None:
        got = bytes(result.records)
        for base in log.segment_base_offsets[1:]:
            got += bytes(log.read(base, 1 << 20).records)
        assert got == b"".join(stored[:count])
    info = log.append(batch(1, tag=77))
    assert info.base_offset == end
    assert log.read(end, 100).base_offset == end
    log.close()
    assert any(e["event"] == "log_opened" for e in events)


def test_recovery_from_every_torn_tail_length(tmp_path: Path) -> None:
    original = tmp_path / "original"
    stored = build_log(original)
    last = stored[-1]
    full = b"".join(stored)
    work = tmp_path / "work"
    for k in range(1, len(last) + 1):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(original, work)
        simulate_crash(work)
        log_path = segment_paths(work, 0)[0]
        log_path.write_bytes(full[: len(full) - k])
        assert_first_batches_remain(work, stored, N - 1)


def test_recovery_from_every_corrupted_byte_of_the_last_batch(tmp_path: Path) -> None:
    original = tmp_path / "original"
    stored = build_log(original)
    last_start = sum(len(b) for b in stored[:-1])
    full = b"".join(stored)
    work = tmp_path / "work"
    for i in range(len(stored[-1])):
        if 12 <= i < 16:
            continue  # the partition leader epoch is deliberately outside the CRC
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(original, work)
        simulate_crash(work)
        corrupted = bytearray(full)
        corrupted[last_start + i] ^= 0x01
        segment_paths(work, 0)[0].write_bytes(corrupted)
        assert_first_batches_remain(work, stored, N - 1)


def test_torn_tail_is_found_even_after_a_clean_shutdown_marker(tmp_path: Path) -> None:
    stored = build_log(tmp_path)
    full = b"".join(stored)
    segment_paths(tmp_path, 0)[0].write_bytes(full[:-7])
    assert (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
    assert_first_batches_remain(tmp_path, stored, N - 1)


def test_torn_tail_in_the_last_of_several_segments(tmp_path: Path) -> None:
    stored = build_log(tmp_path, segment_bytes=200)
    log = SegmentedLog.open(tmp_path)
    bases = log.segment_base_offsets
    log.close()
    assert len(bases) > 2
    simulate_crash(tmp_path)
    last_path = segment_paths(tmp_path, bases[-1])[0]
    data = last_path.read_bytes()
    last_path.write_bytes(data[:-1])
    with capture_logs() as events:
        log = SegmentedLog.open(tmp_path)
    torn = [e for e in events if e["event"] == "truncated_torn_tail"]
    assert len(torn) == 1
    assert torn[0]["log_level"] == "warning"
    assert torn[0]["dropped_bytes"] == len(data) - 1 - torn[0]["valid_bytes"]
    assert torn[0]["path"] == str(last_path)
    assert log.log_end_offset == 2 * (N - 1)
    log.close()
    del stored


def test_corruption_in_an_early_segment_drops_everything_after_it(tmp_path: Path) -> None:
    clock = FakeClock()
    log = open_log(tmp_path, clock=clock, segment_bytes=200)
    for tag in range(8):
        log.append(batch(2, tag=tag))
    bases = log.segment_base_offsets
    # No flush and no close: nothing is known to be durable, every segment is rescanned.
    first = segment_paths(tmp_path, bases[0])[0]
    data = bytearray(first.read_bytes())
    data[-3] ^= 0xFF
    first.write_bytes(data)
    (tmp_path / CHECKPOINT_FILE).unlink(missing_ok=True)  # a new log writes none until a flush
    with capture_logs() as events:
        reopened = SegmentedLog.open(tmp_path)
    assert list(reopened.segment_base_offsets) == [bases[0]]
    assert reopened.log_end_offset < bases[1]
    assert not segment_paths(tmp_path, bases[1])[0].exists()
    names = [e["event"] for e in events]
    assert "truncated_torn_tail" in names and "dropped_segments_after_corruption" in names
    assert reopened.append(batch(1)).base_offset == reopened.log_end_offset - 1
    reopened.close()
    log.close()


def test_unflushed_appends_are_recovered_from_the_files(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=200)
    for tag in range(8):
        log.append(batch(2, tag=tag))
    reopened = SegmentedLog.open(tmp_path)  # as after a crash (the OS kept the page cache)
    assert reopened.log_end_offset == 16
    assert reopened.segment_base_offsets == log.segment_base_offsets
    reopened.close()


@pytest.mark.parametrize("which", [1, 2])
def test_recovery_with_a_missing_index(tmp_path: Path, which: int) -> None:
    log = open_log(tmp_path, segment_bytes=600, index_interval_bytes=100)
    for tag in range(20):
        log.append(batch(1, tag=tag))
    bases = log.segment_base_offsets
    log.close()
    assert len(bases) > 2
    index_path = segment_paths(tmp_path, bases[0])[which]
    before = index_path.read_bytes()
    assert before
    index_path.unlink()
    with capture_logs() as events:
        reopened = open_log(tmp_path, segment_bytes=600, index_interval_bytes=100)
    assert any(e["event"] == "index_rebuild_needed" for e in events)
    assert index_path.read_bytes() == before
    assert reopened.log_end_offset == 20
    for offset in range(20):
        assert reopened.read(offset, 1).base_offset == offset
    reopened.close()


def test_a_garbled_index_is_rebuilt(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=600, index_interval_bytes=100)
    for tag in range(20):
        log.append(batch(1, tag=tag))
    log.close()
    index_path = segment_paths(tmp_path, 0)[1]
    before = index_path.read_bytes()
    index_path.write_bytes(before[:-3])
    reopened = open_log(tmp_path, segment_bytes=600, index_interval_bytes=100)
    assert index_path.read_bytes() == before
    assert [reopened.read(o, 1).base_offset for o in range(20)] == list(range(20))
    reopened.close()


def test_clean_reopen_skips_recovery_and_removes_the_marker(tmp_path: Path) -> None:
    build_log(tmp_path, segment_bytes=200)
    with capture_logs() as events:
        log = SegmentedLog.open(tmp_path)
    opened = next(e for e in events if e["event"] == "log_opened")
    assert opened["clean_shutdown"] is True
    assert opened["recovered_segments"] == 0
    assert not (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
    log.close()
    simulate_crash(tmp_path)
    with capture_logs() as events:
        SegmentedLog.open(tmp_path).close()
    opened = next(e for e in events if e["event"] == "log_opened")
    assert opened["clean_shutdown"] is False
    assert opened["recovered_segments"] == 1  # only the last: the rest is below the checkpoint


def test_leftover_files_are_cleaned_and_log_start_is_enforced(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=200, initial_start_offset=1)
    for tag in range(6):
        log.append(batch(2, tag=tag))
    bases = log.segment_base_offsets
    log.close()
    orphan = segment_paths(tmp_path, 10**6)[1]
    orphan.write_bytes(b"")
    (tmp_path / "recovery-point.tmp").write_text("junk")
    (tmp_path / f"{bases[0]:020d}.log.deleted").write_bytes(b"x")
    # As if delete_before(bases[2] + 1) wrote its checkpoint and crashed before deleting.
    (tmp_path / CHECKPOINT_FILE).write_text(f"0\n13\n{bases[2] + 1}\n")
    reopened = SegmentedLog.open(tmp_path)
    assert reopened.log_start_offset == bases[2] + 1
    assert reopened.segment_base_offsets == bases[2:]
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith((".tmp", ".deleted"))]
    assert leftovers == []
    assert not orphan.exists()
    reopened.close()


def test_an_unreadable_checkpoint_means_full_recovery(tmp_path: Path) -> None:
    build_log(tmp_path, segment_bytes=200)
    simulate_crash(tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_text("garbage")
    with capture_logs() as events:
        log = SegmentedLog.open(tmp_path)
    assert any(e["event"] == "checkpoint_unreadable" for e in events)
    opened = next(e for e in events if e["event"] == "log_opened")
    assert opened["recovered_segments"] == len(log.segment_base_offsets)
    assert log.log_end_offset == 2 * (N - 1) + 3
    log.close()
