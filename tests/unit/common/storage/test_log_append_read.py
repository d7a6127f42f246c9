from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from raftka.common.records import (
    CorruptRecordError,
    InvalidRecordError,
    Record,
    RecordTooLargeError,
    build_batch,
    iter_records,
    set_base_offset,
    split_batches,
    validate,
)
from raftka.common.records.batch import write_crc
from raftka.common.storage import (
    LogClosedError,
    LogOffsetOutOfRangeError,
    SegmentedLog,
    UnexpectedAppendOffsetError,
)
from raftka.common.storage.files import segment_paths
from tests.unit.common.storage.support import FakeClock, batch, open_log


def log_file_size(directory: Path, base_offset: int = 0) -> int:
    return segment_paths(directory, base_offset)[0].stat().st_size


def test_append_read_round_trip(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    assert (log.log_start_offset, log.log_end_offset) == (0, 0)
    first = batch(3, tag=1)
    info = log.append(first)
    assert (info.base_offset, info.last_offset, info.position) == (0, 2, 0)
    assert (info.batch_count, info.size, info.max_timestamp) == (1, len(first), 1_000_002)
    info2 = log.append(batch(2, tag=2, timestamp=2_000_000))
    assert (info2.base_offset, info2.last_offset, info2.position) == (3, 4, len(first))
    assert log.log_end_offset == 5

    result = log.read(0, 1 << 20)
    assert (result.base_offset, result.last_offset) == (0, 4)
    assert len(split_batches(result.records)) == 2
    assert result.next_offset == 5
    assert (result.log_start_offset, result.log_end_offset) == (0, 5)
    records = list(iter_records(result.records))
    assert [r.offset for r in records] == [0, 1, 2, 3, 4]
    assert records[3].key == b"key-2-0"
    assert records[3].timestamp == 2_000_000
    log.close()


def test_the_input_buffer_is_not_modified(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(2))
    data = batch(1, base_offset=0)
    before = bytes(data)
    log.append(data, leader_epoch=7)
    assert bytes(data) == before
    stored = log.read(2, 1000).records
    assert validate(stored).base_offset == 2
    assert validate(stored).partition_leader_epoch == 7


def test_read_from_mid_batch_returns_the_whole_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    for tag in range(4):
        log.append(batch(5, tag=tag))
    result = log.read(7, 1)
    assert (result.base_offset, result.last_offset) == (5, 9)
    assert len(split_batches(result.records)) == 1
    assert [r.offset for r in iter_records(result.records)] == [5, 6, 7, 8, 9]


def test_read_returns_whole_batches_up_to_max_bytes_but_at_least_one(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    sizes = [log.append(batch(1, value_size=100, tag=i)).size for i in range(5)]
    one = log.read(0, 10)
    assert one.last_offset == 0 and len(one.records) == sizes[0]
    two = log.read(1, sizes[1] + sizes[2] + sizes[3] - 1)
    assert (two.base_offset, two.last_offset) == (1, 2)
    assert len(two.records) == sizes[1] + sizes[2]
    everything = log.read(0, 1 << 20)
    assert everything.last_offset == 4 and len(split_batches(everything.records)) == 5
    big = log.append(batch(1, value_size=5000))
    assert len(log.read(big.base_offset, 100).records) == big.size


def test_read_outside_the_log_raises(tmp_path: Path) -> None:
    log = open_log(tmp_path, initial_start_offset=1)
    with pytest.raises(LogOffsetOutOfRangeError) as info:
        log.read(1, 100)
    assert (info.value.log_start_offset, info.value.log_end_offset) == (1, 1)
    log.append(batch(2))
    with pytest.raises(
        LogOffsetOutOfRangeError, match=r"offset 0 is outside the log range \[1, 3\)"
    ):
        log.read(0, 100)
    with pytest.raises(LogOffsetOutOfRangeError):
        log.read(3, 100)
    assert log.read(2, 100).base_offset == 1


def test_several_batches_in_one_append_get_consecutive_offsets(tmp_path: Path) -> None:
    log = open_log(tmp_path, initial_start_offset=1)
    log.append(batch(1))
    data = batch(2, tag=1) + batch(3, tag=2) + batch(1, tag=3)
    info = log.append(data)
    assert (info.base_offset, info.last_offset, info.batch_count) == (2, 7, 3)
    bases = [(b, last) for b, last, _ in log.iter_batches(1)]
    assert bases == [(1, 1), (2, 3), (4, 6), (7, 7)]


def test_append_with_own_offsets(tmp_path: Path) -> None:
    log = open_log(tmp_path, initial_start_offset=1)
    log.append(batch(2, base_offset=1), assign_offsets=False)
    log.append(batch(1, base_offset=3) + batch(4, base_offset=4), assign_offsets=False)
    assert log.log_end_offset == 8


def test_append_with_a_wrong_base_offset_raises_and_writes_nothing(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(2, base_offset=0), assign_offsets=False)
    size = log_file_size(tmp_path)
    with pytest.raises(UnexpectedAppendOffsetError) as info:
        log.append(batch(1, base_offset=5), assign_offsets=False)
    assert (info.value.expected, info.value.actual, info.value.batch_index) == (2, 5, 0)
    with pytest.raises(UnexpectedAppendOffsetError, match="batch 1 has base offset 4"):
        log.append(batch(1, base_offset=2) + batch(1, base_offset=4), assign_offsets=False)
    assert log.log_end_offset == 2
    assert log_file_size(tmp_path) == size
    assert log.read(0, 1 << 20).last_offset == 1


def test_a_bad_batch_inside_a_multi_batch_append_writes_nothing(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(1))
    size = log_file_size(tmp_path)
    bad = batch(2, tag=9)
    bad[-1] ^= 0x01
    with pytest.raises(CorruptRecordError, match="CRC-32C mismatch"):
        log.append(batch(1) + bad + batch(1))
    with pytest.raises(CorruptRecordError, match="truncated"):
        log.append(batch(1) + batch(1)[:-3])
    assert log.log_end_offset == 1
    assert log_file_size(tmp_path) == size


def test_append_rejects_empty_oversized_and_non_dense_batches(tmp_path: Path) -> None:
    log = open_log(tmp_path, max_batch_bytes=500)
    with pytest.raises(InvalidRecordError, match="at least one record batch"):
        log.append(b"")
    with pytest.raises(RecordTooLargeError):
        log.append(batch(1, value_size=600))
    gappy = build_batch([(1, None, b"x", ())])
    gappy[23:27] = (4).to_bytes(4, "big")  # last offset delta 4 with one record
    write_crc(gappy)
    with pytest.raises(InvalidRecordError, match="does not match last offset delta"):
        log.append(gappy)
    log.append(gappy, assign_offsets=False)  # a follower copies what the leader wrote
    assert log.log_end_offset == 5


def test_base_offsets_are_rewritten_in_place_of_what_the_producer_sent(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    data = batch(1)
    set_base_offset(data, 999)
    log.append(data)
    assert validate(log.read(0, 100).records).base_offset == 0


def test_iter_batches_and_header_at(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=400)
    for tag in range(10):
        log.append(batch(2, tag=tag))
    assert len(log.segment_base_offsets) > 2
    seen = [(base, last) for base, last, _ in log.iter_batches(5)]
    assert seen == [(b, b + 1) for b in range(4, 20, 2)]
    for base, _, view in log.iter_batches(0):
        assert validate(view).base_offset == base
    assert list(log.iter_batches(20)) == []
    with pytest.raises(LogOffsetOutOfRangeError):
        log.iter_batches(21)
    assert log.batch_header_at(13).base_offset == 12


@pytest.mark.real_fsync
def test_flush_writes_the_recovery_point_atomically(tmp_path: Path) -> None:
    log = open_log(tmp_path, initial_start_offset=1)
    log.append(batch(3))
    assert log.recovery_point == 1
    log.flush()
    assert log.recovery_point == 4
    assert (tmp_path / "recovery-point").read_text() == "0\n4\n1\n"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    log.append(batch(1))
    log.flush(checkpoint=False)
    assert log.recovery_point == 5
    assert (tmp_path / "recovery-point").read_text() == "0\n4\n1\n"


@pytest.mark.parametrize("every_batch", [True, False])
def test_flush_every_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every_batch: bool
) -> None:
    """With flush_every_batch, each append fsyncs the segment data it wrote before it returns;
    without it, appends fsync no segment data at all (a flush does)."""
    synced: list[str] = []

    def record_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", record_fsync)
    monkeypatch.setattr(os, "fdatasync", record_fsync)
    log = open_log(tmp_path, flush_every_batch=every_batch, segment_bytes=300)
    synced.clear()
    for i in range(5):
        before = len([p for p in synced if p.endswith(".log")])
        log.append(batch(2))
        data_syncs = len([p for p in synced if p.endswith(".log")]) - before
        if every_batch:
            assert data_syncs >= 1, f"append {i} returned before its data was fsynced"
        else:
            assert data_syncs == 0
    log.close()
    assert SegmentedLog.open(tmp_path).log_end_offset == 10


def test_closed_log_refuses_calls(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.close()
    log.close()
    with pytest.raises(LogClosedError):
        log.append(batch(1))
    with pytest.raises(LogClosedError):
        log.read(0, 10)


@pytest.mark.real_fsync
def test_context_manager_and_reopen(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_log(tmp_path, clock=clock) as log:
        log.append(batch(3))
    with open_log(tmp_path, clock=clock) as log:
        assert log.log_end_offset == 3
        assert log.append(batch(1)).base_offset == 3


@pytest.mark.parametrize("interval", [0, 150, 4096])
def test_read_cuts_at_whole_batches_for_every_offset_and_size(
    tmp_path: Path, interval: int
) -> None:
    rng = random.Random(interval)
    log = open_log(tmp_path, index_interval_bytes=interval, segment_bytes=3000)
    stored: list[tuple[int, int, int]] = []  # (base, last, size)
    for tag in range(40):
        info = log.append(batch(rng.randint(1, 4), value_size=rng.randint(1, 120), tag=tag))
        stored.append((info.base_offset, info.last_offset, info.size))
    bases = log.segment_base_offsets
    segment_of = {base: max(b for b in bases if b <= base) for base, _, _ in stored}
    for offset in range(log.log_end_offset):
        first = next(i for i, (b, last, _) in enumerate(stored) if b <= offset <= last)
        for max_bytes in (0, *(rng.randint(1, 1500) for _ in range(6)), 10**6):
            expected_end = first + 1
            total = stored[first][2]
            while (
                expected_end < len(stored)
                and segment_of[stored[expected_end][0]] == segment_of[stored[first][0]]
                and total + stored[expected_end][2] <= max_bytes
            ):
                total += stored[expected_end][2]
                expected_end += 1
            result = log.read(offset, max_bytes)
            assert result.base_offset == stored[first][0]
            assert result.last_offset == stored[expected_end - 1][1]
            assert len(result.records) == total
            assert len(split_batches(result.records)) == expected_end - first


def test_appends_and_reads_while_another_thread_flushes(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=2000)
    stop = threading.Event()
    errors: list[BaseException] = []

    def flusher() -> None:
        try:
            while not stop.is_set():
                log.flush()
                assert log.recovery_point <= log.log_end_offset
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def appender(tag: int) -> None:
        try:
            for _ in range(100):
                info = log.append(batch(2, tag=tag))
                assert log.read(info.base_offset, 1).base_offset == info.base_offset
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flusher)]
    threads += [threading.Thread(target=appender, args=(tag,)) for tag in range(4)]
    for thread in threads[1:]:
        thread.start()
    threads[0].start()
    for thread in threads[1:]:
        thread.join()
    stop.set()
    threads[0].join()
    assert errors == []
    assert log.log_end_offset == 800
    log.flush()
    assert log.recovery_point == 800
    offsets = [r.offset for base in log.segment_base_offsets for r in _records(log, base)]
    assert offsets == list(range(800))
    log.close()
    reopened = SegmentedLog.open(tmp_path)
    assert reopened.log_end_offset == 800
    reopened.close()


def _records(log: SegmentedLog, base: int) -> list[Record]:
    result = log.read(base, 1 << 20)
    return list(iter_records(result.records))
