from __future__ import annotations

import struct

import crc32c
import pytest

from raftka.common.records import (
    HEADER_SIZE,
    BatchHeader,
    Compression,
    CorruptRecordError,
    InvalidRecordError,
    RecordError,
    RecordTooLargeError,
    TimestampType,
    UnsupportedCompressionError,
    build_batch,
    set_base_offset,
    set_partition_leader_epoch,
    split_batches,
    validate,
)
from raftka.common.records.batch import write_crc


def small_batch(**kwargs: object) -> bytearray:
    return build_batch(
        [(1000, b"k", b"v", ()), (1002, None, b"value-2", (("h", b"x"),))],
        **kwargs,  # type: ignore[arg-type]
    )


def test_crc32c_is_castagnoli() -> None:
    # The CRC-32C check value; zlib's CRC-32 would give 0xcbf43926.
    assert crc32c.crc32c(b"123456789") == 0xE3069283


def test_known_bytes_of_a_one_record_batch() -> None:
    batch = build_batch(
        [(1000, b"k", b"v", ())],
        base_offset=0x0102030405060708,
        partition_leader_epoch=9,
        producer_id=7,
        producer_epoch=3,
        base_sequence=5,
    )
    # One record: length 8, attributes 0, ts delta 0, offset delta 0, key "k", value "v",
    # no headers (varints are zigzag: 1 -> 0x02, 8 -> 0x10).
    record = bytes.fromhex("10 00 00 00 02") + b"k" + bytes.fromhex("02") + b"v" + b"\x00"
    assert len(record) == 9
    after_crc = (
        (0).to_bytes(2, "big")  # 21 attributes
        + (0).to_bytes(4, "big")  # 23 last offset delta
        + (1000).to_bytes(8, "big")  # 27 base timestamp
        + (1000).to_bytes(8, "big")  # 35 max timestamp
        + (7).to_bytes(8, "big")  # 43 producer id
        + (3).to_bytes(2, "big")  # 51 producer epoch
        + (5).to_bytes(4, "big")  # 53 base sequence
        + (1).to_bytes(4, "big")  # 57 records count
        + record  # 61 records
    )
    crc = crc32c.crc32c(after_crc)
    expected = (
        bytes.fromhex("0102030405060708")  # 0 base offset
        + (70 - 12).to_bytes(4, "big")  # 8 batch length
        + (9).to_bytes(4, "big")  # 12 partition leader epoch
        + b"\x02"  # 16 magic
        + crc.to_bytes(4, "big")  # 17 crc
        + after_crc
    )
    assert bytes(batch) == expected
    header = validate(batch)
    assert header.base_offset == 0x0102030405060708
    assert header.size == 70
    assert header.crc == crc


def test_header_fields_and_attributes() -> None:
    batch = small_batch(
        compression=Compression.LZ4,
        base_offset=42,
        partition_leader_epoch=11,
        producer_id=1234,
        producer_epoch=5,
        base_sequence=77,
        transactional=True,
    )
    header = validate(batch)
    assert header == BatchHeader.parse(batch)
    assert header.base_offset == 42
    assert header.batch_length == len(batch) - 12
    assert header.partition_leader_epoch == 11
    assert header.magic == 2
    assert header.compression is Compression.LZ4
    assert header.timestamp_type is TimestampType.CREATE_TIME
    assert header.is_transactional
    assert not header.is_control
    assert header.last_offset_delta == 1
    assert header.last_offset == 43
    assert header.next_offset == 44
    assert header.base_timestamp == 1000
    assert header.max_timestamp == 1002
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (1234, 5, 77)
    assert header.records_count == 2
    control = validate(small_batch(control=True, timestamp_type=TimestampType.LOG_APPEND_TIME))
    assert control.is_control and not control.is_transactional
    assert control.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert control.attributes == 0x20 | 0x08


def test_defaults_mean_no_producer() -> None:
    header = validate(small_batch())
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (-1, -1, -1)
    assert header.partition_leader_epoch == -1
    assert header.compression is Compression.NONE


def test_every_flipped_byte_in_the_crc_range_or_length_or_magic_is_detected() -> None:
    batch = small_batch()
    for i in range(len(batch)):
        corrupted = bytearray(batch)
        corrupted[i] ^= 0xFF
        if i < 8 or 12 <= i < 16:
            # Base offset and leader epoch are outside the CRC so they can be rewritten.
            validate(corrupted)
            continue
        with pytest.raises(RecordError) as info:
            validate(corrupted)
        if i == 16:
            assert isinstance(info.value, InvalidRecordError)
            assert "magic" in str(info.value)
        else:
            assert isinstance(info.value, CorruptRecordError), i


def test_crc_error_message_names_both_values() -> None:
    batch = small_batch()
    batch[-1] ^= 0x01
    with pytest.raises(CorruptRecordError, match=r"CRC-32C mismatch, stored 0x[0-9a-f]{8}"):
        validate(batch)


@pytest.mark.parametrize("magic", [0, 1, 3])
def test_bad_magic(magic: int) -> None:
    batch = small_batch()
    batch[16] = magic
    with pytest.raises(InvalidRecordError, match=f"magic is {magic}"):
        validate(batch)


def test_every_truncation_is_corrupt() -> None:
    batch = small_batch()
    for cut in range(len(batch)):
        with pytest.raises(CorruptRecordError, match="truncated"):
            validate(batch[:cut])


def test_huge_and_tiny_lengths() -> None:
    batch = small_batch()
    struct.pack_into(">i", batch, 8, 2**31 - 1)
    with pytest.raises(RecordTooLargeError, match="exceeds the maximum batch size 1000"):
        validate(batch, max_batch_bytes=1000)
    with pytest.raises(CorruptRecordError, match="truncated"):
        validate(batch)
    struct.pack_into(">i", batch, 8, 10)
    with pytest.raises(CorruptRecordError, match="below the minimum"):
        validate(batch)
    struct.pack_into(">i", batch, 8, -5)
    with pytest.raises(CorruptRecordError, match="below the minimum"):
        validate(batch)


def test_max_batch_bytes_is_inclusive() -> None:
    batch = small_batch()
    validate(batch, max_batch_bytes=len(batch))
    with pytest.raises(RecordTooLargeError):
        validate(batch, max_batch_bytes=len(batch) - 1)


def test_unknown_compression_id_is_rejected() -> None:
    batch = small_batch()
    batch[22] = (batch[22] & ~0x07) | 5
    write_crc(batch)
    with pytest.raises(UnsupportedCompressionError, match="codec id 5"):
        validate(batch)


def test_negative_last_offset_delta_is_invalid() -> None:
    batch = small_batch()
    struct.pack_into(">i", batch, 23, -3)
    write_crc(batch)
    with pytest.raises(InvalidRecordError, match="negative last offset delta"):
        validate(batch)


def test_rewriting_base_offset_and_epoch_keeps_crc_valid() -> None:
    batch = small_batch()
    crc_before = validate(batch).crc
    set_base_offset(batch, 123456789012)
    set_partition_leader_epoch(batch, 17)
    header = validate(batch)
    assert header.base_offset == 123456789012
    assert header.partition_leader_epoch == 17
    assert header.crc == crc_before
    view = memoryview(batch)
    set_base_offset(view, 5)
    assert validate(view).base_offset == 5


def test_split_batches_returns_spans() -> None:
    parts = [small_batch(base_offset=i) for i in range(3)]
    parts[1] = build_batch([(5, None, b"x" * 300, ())], compression=Compression.GZIP)
    buf = b"".join(parts)
    spans = split_batches(buf)
    assert [s.position for s in spans] == [0, len(parts[0]), len(parts[0]) + len(parts[1])]
    assert [s.size for s in spans] == [len(p) for p in parts]
    assert spans[1].header.compression is Compression.GZIP
    assert split_batches(memoryview(buf)) == spans
    assert split_batches(b"") == []


def test_split_batches_rejects_a_bad_batch_anywhere() -> None:
    first, second = small_batch(), small_batch()
    second[-2] ^= 0x40
    with pytest.raises(CorruptRecordError, match=f"batch at byte {len(first)}"):
        split_batches(first + second)
    with pytest.raises(CorruptRecordError, match="truncated"):
        split_batches(first + first[:30])
    with pytest.raises(RecordTooLargeError):
        split_batches(first + first, max_batch_bytes=len(first) - 1)


def test_header_parse_needs_61_bytes() -> None:
    with pytest.raises(CorruptRecordError, match=f"of {HEADER_SIZE} bytes"):
        BatchHeader.parse(bytes(60))
