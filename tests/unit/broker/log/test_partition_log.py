from __future__ import annotations

import os
from pathlib import Path

import pytest

from raftka.broker.log.dirs import PARTITION_METADATA_FILE, InconsistentTopicIdError
from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.log.types import NO_TIMESTAMP
from raftka.common.errors import InvalidTopicError
from raftka.common.records import (
    CorruptRecordError,
    InvalidRecordError,
    RecordError,
    RecordTooLargeError,
    TimestampType,
    UnsupportedCompressionError,
    iter_records,
    set_base_offset,
    set_partition_leader_epoch,
    split_batches,
)
from raftka.common.storage import LogClosedError, LogOffsetOutOfRangeError, SegmentedLog
from tests.unit.broker.log.test_validator import BAD_INPUTS
from tests.unit.broker.support import (
    OTHER_TOPIC_ID,
    T0,
    TOPIC_ID,
    FakeClock,
    batch,
    open_partition,
)

NOW = T0 + 5_000


def stored_form(buf: bytes | bytearray, base_offset: int, leader_epoch: int) -> bytes:
    """What the log should store for one batch: the producer's bytes with the base offset
    and partition leader epoch rewritten (neither is covered by the CRC)."""
    out = bytearray(buf)
    set_base_offset(out, base_offset)
    set_partition_leader_epoch(out, leader_epoch)
    return bytes(out)


def headers(records: bytes) -> list[tuple[int, int, int]]:
    """(base offset, last offset, partition leader epoch) of each batch."""
    return [
        (s.header.base_offset, s.header.last_offset, s.header.partition_leader_epoch)
        for s in split_batches(records)
    ]


# ====================================================================== append and read


def test_append_read_round_trip_is_byte_identical(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    first, second = batch(3, tag=1), batch(2, tag=2)
    result = plog.append_as_leader(bytes(first + second), leader_epoch=4, now_ms=NOW)
    assert (result.base_offset, result.last_offset) == (0, 4)
    assert (result.log_append_time_ms, result.log_start_offset) == (NO_TIMESTAMP, 0)
    fetched = plog.read(0, 1 << 20)
    assert fetched.records == stored_form(first, 0, 4) + stored_form(second, 3, 4)
    assert (fetched.high_watermark, fetched.log_start_offset, fetched.log_end_offset) == (5, 0, 5)
    assert plog.read(0, 1 << 20).records == fetched.records
    assert [r.value for r in iter_records(fetched.records)] == [b"\x01" * 20] * 3 + [
        b"\x02" * 20
    ] * 2
    plog.close()


def test_offsets_are_consecutive_within_and_across_requests(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    r1 = plog.append_as_leader(bytes(batch(3) + batch(2)), leader_epoch=1, now_ms=NOW)
    r2 = plog.append_as_leader(bytes(batch(1) + batch(4)), leader_epoch=1, now_ms=NOW)
    r3 = plog.append_as_leader(batch(1), leader_epoch=1, now_ms=NOW)
    assert [(r.base_offset, r.last_offset) for r in (r1, r2, r3)] == [(0, 4), (5, 9), (10, 10)]
    assert [h[:2] for h in headers(plog.read(0, 1 << 20).records)] == [
        (0, 2),
        (3, 4),
        (5, 5),
        (6, 9),
        (10, 10),
    ]
    assert [r.offset for r in iter_records(plog.read(0, 1 << 20).records)] == list(range(11))
    plog.close()


def test_leader_epoch_is_stamped(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    plog.append_as_leader(batch(2), leader_epoch=3, now_ms=NOW)
    plog.append_as_leader(batch(1), leader_epoch=7, now_ms=NOW)
    assert headers(plog.read(0, 1 << 20).records) == [(0, 1, 3), (2, 2, 7)]
    plog.close()


def test_the_callers_buffer_is_not_modified(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={"message.timestamp.type": "LogAppendTime"})
    data = batch(2)
    before = bytes(data)
    plog.append_as_leader(batch(1), leader_epoch=1, now_ms=NOW)
    plog.append_as_leader(data, leader_epoch=1, now_ms=NOW)
    assert bytes(data) == before
    plog.close()


def log_size(plog: PartitionLog) -> int:
    return sum(p.stat().st_size for p in plog.directory.glob("*.log"))


@pytest.mark.parametrize(("name", "buf", "error"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_writes_nothing(
    tmp_path: Path, name: str, buf: bytes | bytearray, error: type[RecordError]
) -> None:
    plog = open_partition(tmp_path)
    plog.append_as_leader(batch(2), leader_epoch=1, now_ms=NOW)
    before = plog.read(0, 1 << 20)
    size = log_size(plog)
    with pytest.raises(error):
        plog.append_as_leader(buf, leader_epoch=1, now_ms=NOW)
    if buf:  # a good batch in front of the bad one is not written either
        with pytest.raises(error):
            plog.append_as_leader(bytes(batch(1)) + bytes(buf), leader_epoch=1, now_ms=NOW)
    assert (plog.log_end_offset, plog.high_watermark, log_size(plog)) == (2, 2, size)
    assert plog.read(0, 1 << 20) == before
    plog.append_as_leader(batch(1), leader_epoch=1, now_ms=NOW)  # still serving
    assert plog.log_end_offset == 3
    plog.close()


def test_batches_above_max_message_bytes_are_rejected(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={"max.message.bytes": "500"})
    small, big = batch(1, value_size=100), batch(1, value_size=600)
    plog.append_as_leader(small, leader_epoch=1, now_ms=NOW)
    with pytest.raises(RecordTooLargeError, match=r"max\.message\.bytes is 500"):
        plog.append_as_leader(bytes(small) + bytes(big), leader_epoch=1, now_ms=NOW)
    assert plog.log_end_offset == 1
    plog.update_configs({"max.message.bytes": str(len(big))})
    assert plog.append_as_leader(big, leader_epoch=1, now_ms=NOW).base_offset == 1
    plog.close()


def test_error_classes_map_to_kafka_codes(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    codes = {}
    for name, buf, _error in BAD_INPUTS:
        try:
            plog.append_as_leader(buf, leader_epoch=1, now_ms=NOW)
        except RecordError as exc:
            codes[name] = exc.code_name
    assert codes["wrong crc"] == "CORRUPT_MESSAGE"
    assert codes["wrong magic"] == "INVALID_RECORD"
    assert codes["unknown codec"] == "UNSUPPORTED_COMPRESSION_TYPE"
    assert issubclass(UnsupportedCompressionError, RecordError)
    assert issubclass(CorruptRecordError, RecordError)
    assert issubclass(InvalidRecordError, RecordError)
    plog.close()


# ====================================================================== read bounds


def test_reads_stop_at_the_high_watermark(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, hw_follows_log_end=False)
    plog.append_as_leader(bytes(batch(3) + batch(2) + batch(1)), leader_epoch=1, now_ms=NOW)
    assert (plog.high_watermark, plog.log_end_offset) == (0, 6)
    empty = plog.read(0, 1 << 20)
    assert (empty.records, empty.high_watermark, empty.log_end_offset) == (b"", 0, 6)

    assert plog.set_high_watermark(3) == 3
    assert [h[:2] for h in headers(plog.read(0, 1 << 20).records)] == [(0, 2)]
    assert plog.read(3, 1 << 20).records == b""  # fetch offset == high watermark
    assert plog.read(5, 1 << 20).records == b""  # between the HW and the log end

    assert plog.set_high_watermark(4) == 4  # inside the second batch: it straddles, it is sent
    assert [h[:2] for h in headers(plog.read(0, 1 << 20).records)] == [(0, 2), (3, 4)]
    assert plog.set_high_watermark(1) == 4  # never backwards
    assert plog.set_high_watermark(100) == 6  # capped at the log end
    assert plog.latest_offset == 6
    plog.close()


def test_max_offset_bounds_a_read(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    plog.append_as_leader(bytes(batch(3) + batch(2) + batch(1)), leader_epoch=1, now_ms=NOW)
    assert [h[:2] for h in headers(plog.read(0, 1 << 20, max_offset=5).records)] == [
        (0, 2),
        (3, 4),
    ]
    assert plog.read(3, 1 << 20, max_offset=3).records == b""
    assert len(headers(plog.read(0, 1 << 20, max_offset=100).records)) == 3
    plog.close()


def test_a_read_returns_at_least_one_whole_batch(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    big = batch(5, value_size=500)
    plog.append_as_leader(bytes(big + batch(1)), leader_epoch=1, now_ms=NOW)
    one = plog.read(0, 10)
    assert [h[:2] for h in headers(one.records)] == [(0, 4)]
    assert len(one.records) == len(big)
    assert plog.read(0, 10, min_one_batch=False).records == b""
    # A fetch offset inside a batch returns the whole batch, from its base offset.
    assert [h[:2] for h in headers(plog.read(2, 10).records)] == [(0, 4)]
    assert [h[:2] for h in headers(plog.read(0, len(big) + 1).records)] == [(0, 4)]
    plog.close()


def test_out_of_range_fetch_offsets(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    plog.append_as_leader(batch(3), leader_epoch=1, now_ms=NOW)
    assert plog.read(3, 1 << 20).records == b""  # at the log end: nothing yet
    for offset in (4, 100, -1):
        with pytest.raises(LogOffsetOutOfRangeError) as info:
            plog.read(offset, 1 << 20)
        assert (info.value.offset, info.value.log_start_offset, info.value.log_end_offset) == (
            offset,
            0,
            3,
        )
        assert info.value.code_name == "OFFSET_OUT_OF_RANGE"
    plog.close()


def test_empty_log(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    assert (plog.earliest_offset, plog.latest_offset, plog.log_end_offset) == (0, 0, 0)
    fetched = plog.read(0, 100)
    assert (fetched.records, fetched.high_watermark, fetched.log_end_offset) == (b"", 0, 0)
    with pytest.raises(LogOffsetOutOfRangeError):
        plog.read(1, 100)
    assert plog.offset_for_timestamp(0) is None
    plog.close()


# ====================================================================== timestamps


def test_log_append_time_stamps_batches(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={"message.timestamp.type": "LogAppendTime"})
    result = plog.append_as_leader(bytes(batch(2) + batch(1)), leader_epoch=1, now_ms=NOW)
    assert result.log_append_time_ms == NOW
    spans = split_batches(plog.read(0, 1 << 20).records)  # CRCs check out
    assert [s.header.timestamp_type for s in spans] == [TimestampType.LOG_APPEND_TIME] * 2
    assert [s.header.max_timestamp for s in spans] == [NOW, NOW]
    assert plog.offset_for_timestamp(NOW) is not None
    plog.close()


def test_create_time_keeps_the_producers_timestamps(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    data = batch(2, timestamp=T0 - 10)
    result = plog.append_as_leader(data, leader_epoch=1, now_ms=NOW)
    assert result.log_append_time_ms == NO_TIMESTAMP
    header = split_batches(plog.read(0, 100).records)[0].header
    assert (header.timestamp_type, header.max_timestamp) == (TimestampType.CREATE_TIME, T0 - 9)
    plog.close()


def test_offset_for_timestamp_is_bounded_by_the_high_watermark(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, hw_follows_log_end=False)
    plog.append_as_leader(batch(3, timestamp=T0), leader_epoch=2, now_ms=NOW)
    plog.append_as_leader(batch(3, timestamp=T0 + 100), leader_epoch=2, now_ms=NOW)
    assert plog.offset_for_timestamp(T0 + 1) is None  # nothing committed yet
    plog.set_high_watermark(6)
    found = plog.offset_for_timestamp(T0 + 1)
    assert found is not None
    assert (found.offset, found.timestamp, found.leader_epoch) == (1, T0 + 1, 2)
    found = plog.offset_for_timestamp(T0 + 50)
    assert found is not None and found.offset == 3
    assert plog.offset_for_timestamp(T0 + 1000) is None
    plog.close()


# ====================================================================== flush policy


def test_by_default_appends_are_not_fsynced(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    assert not plog.sync_appends
    plog.append_as_leader(batch(3), leader_epoch=1, now_ms=NOW)
    assert (plog.durable_offset, plog.high_watermark) == (0, 3)
    plog.flush()
    assert plog.durable_offset == 3
    plog.close()


@pytest.mark.parametrize("how", ["broker", "topic", "neither"])
def test_fsync_every_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Each append fsyncs its segment data before it returns when the broker says
    fsync_every_batch or the topic flush.messages=1; otherwise an append fsyncs nothing."""
    synced: list[str] = []

    def record_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", record_fsync)
    monkeypatch.setattr(os, "fdatasync", record_fsync)
    if how == "broker":
        plog = open_partition(tmp_path, fsync_every_batch=True)
    elif how == "topic":
        plog = open_partition(tmp_path, overrides={"flush.messages": "1"})
    else:
        plog = open_partition(tmp_path)
    assert plog.sync_appends == (how != "neither")
    for appended in (3, 6):
        synced.clear()
        plog.append_as_leader(batch(3), leader_epoch=1, now_ms=NOW)
        data_syncs = [path for path in synced if path.endswith(".log")]
        if how == "neither":
            assert data_syncs == [] and plog.durable_offset == 0
        else:
            assert data_syncs, "the append returned before its data was fsynced"
            assert (plog.durable_offset, plog.high_watermark) == (appended, appended)
    plog.close()


def test_flush_messages_counts_records(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={"flush.messages": "5"})
    plog.append_as_leader(batch(3), leader_epoch=1, now_ms=NOW)
    assert plog.durable_offset == 0
    plog.append_as_leader(batch(2), leader_epoch=1, now_ms=NOW)
    assert plog.durable_offset == 5
    plog.close()


def test_deferred_flush_holds_the_high_watermark_until_flushed(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, fsync_every_batch=True)
    r1 = plog.append_as_leader(batch(2), leader_epoch=1, now_ms=NOW, defer_flush=True)
    r2 = plog.append_as_leader(batch(3), leader_epoch=1, now_ms=NOW, defer_flush=True)
    assert (plog.durable_offset, plog.high_watermark) == (0, 0)
    assert plog.read(0, 1 << 20).records == b""  # not durable, not visible
    plog.flush(up_to=r2.last_offset + 1)  # one fsync for both appends
    assert (plog.durable_offset, plog.high_watermark) == (5, 5)
    plog.flush(up_to=r1.last_offset + 1)  # already durable: returns at once
    plog.close()


# ====================================================================== reopening


def test_reopen_after_close_recovers_everything(tmp_path: Path) -> None:
    clock = FakeClock()
    overrides = {"segment.bytes": "400"}
    plog = open_partition(tmp_path, clock=clock, overrides=overrides)
    for i in range(6):
        plog.append_as_leader(batch(2, value_size=100, tag=i), leader_epoch=i, now_ms=NOW)
    records = plog.read(0, 1 << 20).records
    all_records = [r.offset for r in iter_records(records)]
    segments = plog.segment_count
    assert segments > 1
    plog.close()
    with pytest.raises(LogClosedError):
        plog.read(0, 100)

    again = open_partition(tmp_path, clock=clock, overrides=overrides, topic_id=TOPIC_ID)
    assert (again.log_start_offset, again.log_end_offset, again.high_watermark) == (0, 12, 12)
    assert again.segment_count == segments
    assert again.topic_id == TOPIC_ID
    assert again.read(0, 1 << 20).records == records
    assert [r.offset for r in iter_records(records)] == all_records
    assert again.append_as_leader(batch(1), leader_epoch=9, now_ms=NOW).base_offset == 12
    again.close()


def test_reopen_after_a_torn_write_keeps_the_whole_batches(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    plog.append_as_leader(batch(2), leader_epoch=1, now_ms=NOW)
    plog.append_as_leader(batch(3), leader_epoch=1, now_ms=NOW)
    plog.flush(checkpoint=True)
    segment_file = next(plog.directory.glob("*.log"))
    os.truncate(segment_file, segment_file.stat().st_size - 7)  # crash mid-write, no close
    again = open_partition(tmp_path)
    assert (again.log_end_offset, again.high_watermark) == (2, 2)
    assert [h[:2] for h in headers(again.read(0, 1 << 20).records)] == [(0, 1)]
    again.close()
    plog.close()


def test_a_directory_of_another_topic_id_is_refused(tmp_path: Path) -> None:
    open_partition(tmp_path).close()
    with pytest.raises(InconsistentTopicIdError):
        open_partition(tmp_path, topic_id=OTHER_TOPIC_ID)
    found = open_partition(tmp_path, topic_id=None)  # opened as found on disk
    assert found.topic_id == TOPIC_ID
    found.close()


def test_a_directory_without_partition_metadata_adopts_the_topic_id(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    plog.append_as_leader(batch(1), leader_epoch=1, now_ms=NOW)
    plog.close()
    (plog.directory / PARTITION_METADATA_FILE).unlink()
    found = open_partition(tmp_path, topic_id=None)
    assert found.topic_id is None
    found.assign_topic_id(OTHER_TOPIC_ID)
    with pytest.raises(InconsistentTopicIdError):
        found.assign_topic_id(TOPIC_ID)
    found.close()
    again = open_partition(tmp_path, topic_id=None)
    assert (again.topic_id, again.log_end_offset) == (OTHER_TOPIC_ID, 1)
    again.close()


def test_creating_needs_a_topic_id_and_a_valid_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="topic id"):
        open_partition(tmp_path, topic_id=None)
    with pytest.raises(InvalidTopicError):
        open_partition(tmp_path, topic="../escape")
    with pytest.raises(ValueError):
        open_partition(tmp_path, partition=-1)
    assert list(tmp_path.iterdir()) == []


# ====================================================================== configs, deletion


def test_update_configs_applies_segment_settings(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    for i in range(3):
        plog.append_as_leader(batch(1, value_size=100, tag=i), leader_epoch=1, now_ms=NOW)
    assert plog.segment_count == 1
    before = plog.read(0, 1 << 20).records
    plog.update_configs({"segment.bytes": "200", "retention.ms": "1000"})
    assert plog.config.segment_bytes == 200
    assert plog.config_overrides == {"segment.bytes": "200", "retention.ms": "1000"}
    assert plog.read(0, 1 << 20).records == before
    for i in range(3):
        plog.append_as_leader(batch(1, value_size=100, tag=i), leader_epoch=1, now_ms=NOW)
    assert plog.segment_count == 4
    assert plog.log_end_offset == 6
    plog.close()


def test_a_config_change_swaps_the_config_without_reopening_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plog = open_partition(tmp_path)
    plog.append_as_leader(batch(2), leader_epoch=1, now_ms=NOW)
    expected = plog.read(0, 1 << 20).records
    real_read = SegmentedLog.read
    seen: list[SegmentedLog] = []

    def racing_read(self: SegmentedLog, offset: int, max_bytes: int) -> object:
        seen.append(self)
        plog.update_configs({"segment.bytes": "1000"})  # changes while this read is on its way
        return real_read(self, offset, max_bytes)

    def no_reopen(*args: object, **kwargs: object) -> SegmentedLog:
        raise AssertionError("a config change must not reopen the segmented log")

    monkeypatch.setattr(SegmentedLog, "read", racing_read)
    monkeypatch.setattr(SegmentedLog, "open", no_reopen)
    assert plog.read(0, 1 << 20).records == expected
    assert len(seen) == 1 and seen[0].config.segment_bytes == 1000
    assert plog.config.segment_bytes == 1000
    plog.close()
    with pytest.raises(LogClosedError):
        plog.read(0, 1 << 20)


def test_delete_removes_the_directory(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    plog.append_as_leader(batch(2), leader_epoch=1, now_ms=NOW)
    directory = plog.directory
    plog.delete()
    assert not directory.exists()
    assert list(tmp_path.iterdir()) == []
    assert plog.closed
    plog.delete()  # idempotent
