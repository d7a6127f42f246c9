"""A topic's compression.type: the leader stores every batch in the topic's codec,
recompressing the ones the producer sent in another, and keeps everything else as sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftka.broker.log.validator import validate_produced_batches
from raftka.common.records import (
    BatchHeader,
    Compression,
    CorruptRecordError,
    RecordTooLargeError,
    TimestampType,
    build_batch,
    decode_batch,
    iter_records,
)
from raftka.common.records.batch import write_crc
from tests.unit.broker.support import T0, batch, open_partition

NOW = T0 + 5000


def stored(plog_read: bytes) -> list[BatchHeader]:
    headers, position = [], 0
    while position < len(plog_read):
        header = BatchHeader.parse(plog_read, position)
        headers.append(header)
        position += header.size
    return headers


def comparable(header: BatchHeader) -> tuple[int, ...]:
    """Every header field the recompression must keep."""
    return (
        header.last_offset_delta,
        header.base_timestamp,
        header.max_timestamp,
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        header.records_count,
        header.attributes & ~0x07,
    )


@pytest.mark.parametrize(
    ("topic_codec", "codec"),
    [
        ("zstd", Compression.ZSTD),
        ("uncompressed", Compression.NONE),
        ("gzip", Compression.GZIP),
        ("snappy", Compression.SNAPPY),
        ("lz4", Compression.LZ4),
    ],
)
def test_batches_are_stored_in_the_topics_codec(
    tmp_path: Path, topic_codec: str, codec: Compression
) -> None:
    plog = open_partition(tmp_path, overrides={"compression.type": topic_codec})
    sent = [
        batch(3, tag=1, compression=Compression.LZ4, producer_id=7, base_sequence=0),
        batch(2, tag=2, compression=Compression.SNAPPY, producer_id=7, base_sequence=3),
        batch(1, tag=3),
    ]
    for data in sent:
        plog.append_as_leader(data, leader_epoch=1, now_ms=NOW)
    records = plog.read(0, 1 << 20).records
    headers = stored(records)
    assert [h.compression for h in headers] == [codec] * 3
    assert [comparable(h) for h in headers] == [
        comparable(BatchHeader.parse(data)) for data in sent
    ]
    assert [h.base_offset for h in headers] == [0, 3, 5]
    expected = [r for data in sent for r in iter_records(data)]
    got = list(iter_records(records))  # CRCs checked as they are read
    assert [(r.timestamp, r.key, r.value) for r in got] == [
        (r.timestamp, r.key, r.value) for r in expected
    ]
    assert [r.offset for r in got] == list(range(6))
    plog.close()


def test_producer_keeps_the_producers_codec_and_matching_batches_are_not_rebuilt(
    tmp_path: Path,
) -> None:
    sent = batch(3, compression=Compression.GZIP)
    for topic_codec in ("producer", "gzip"):
        validated = validate_produced_batches(
            sent,
            max_message_bytes=1 << 20,
            log_append_time_ms=None,
            compression=None if topic_codec == "producer" else Compression.GZIP,
        )
        assert validated.data is sent  # the producer's bytes, untouched


def test_idempotent_retries_are_recognised_after_recompression(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={"compression.type": "zstd"})
    data = batch(4, compression=Compression.LZ4, producer_id=9, base_sequence=0)
    first = plog.append_as_leader(data, leader_epoch=1, now_ms=NOW)
    retry = plog.append_as_leader(data, leader_epoch=1, now_ms=NOW)
    assert (retry.base_offset, retry.last_offset) == (first.base_offset, first.last_offset)
    assert plog.log_end_offset == 4
    plog.close()


def test_a_config_change_applies_to_the_next_append_with_log_append_time(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    plog.append_as_leader(batch(1, compression=Compression.LZ4), leader_epoch=1, now_ms=NOW)
    plog.update_configs({"compression.type": "gzip", "message.timestamp.type": "LogAppendTime"})
    plog.append_as_leader(batch(2, compression=Compression.LZ4), leader_epoch=1, now_ms=NOW)
    first, second = stored(plog.read(0, 1 << 20).records)
    assert first.compression is Compression.LZ4
    assert second.compression is Compression.GZIP
    assert second.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert second.max_timestamp == NOW
    decoded = decode_batch(plog.read(1, 1 << 20).records)  # CRC checked
    assert [r.timestamp for r in decoded.records] == [NOW, NOW]
    plog.close()


def test_recompression_bounds(tmp_path: Path) -> None:
    # Compresses 100 KiB of zeros to a few hundred bytes: uncompressed, over the limit.
    plog = open_partition(
        tmp_path, overrides={"compression.type": "uncompressed", "max.message.bytes": "10000"}
    )
    zeros = build_batch([(T0, None, bytes(100_000), ())], compression=Compression.ZSTD)
    with pytest.raises(RecordTooLargeError, match=r"recompressed with none .* max\.message\.bytes"):
        plog.append_as_leader(zeros, leader_epoch=1, now_ms=NOW)
    damaged = bytearray(batch(2, compression=Compression.GZIP))
    damaged[-6:] = b"\x00" * 6  # a damaged stream under a CRC that matches it
    write_crc(damaged)
    with pytest.raises(CorruptRecordError, match="batch at byte 0: cannot decompress gzip"):
        plog.append_as_leader(damaged, leader_epoch=1, now_ms=NOW)
    assert plog.log_end_offset == 0
    plog.close()
