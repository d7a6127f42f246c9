from __future__ import annotations

import struct

import cramjam
import lz4.frame
import pytest
import zstandard

from raftka.common.records import (
    SUPPORTED_COMPRESSION,
    Compression,
    CorruptRecordError,
    InvalidRecordError,
    Record,
    RecordBatchBuilder,
    RecordTooLargeError,
    TimestampType,
    UnsupportedCompressionError,
    build_batch,
    compress,
    decode_batch,
    decompress,
    iter_records,
    validate,
)
from raftka.common.records.batch import write_crc

CODECS = [Compression.NONE, Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD]

RECORDS: list[tuple[int, bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]] = [
    (1_700_000_000_000, b"key-0", b"value-0" * 50, ()),
    (1_699_999_999_000, None, b"earlier timestamp", (("trace", b"abc"), ("empty", None))),
    (1_700_000_000_500, b"", None, (("\u00e9t\u00e9", b""),)),
    (1_700_000_000_100, b"k" * 1000, b"v" * 70000, ()),
]


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_with_each_codec(codec: Compression) -> None:
    batch = build_batch(RECORDS, compression=codec, base_offset=100, partition_leader_epoch=4)
    header = validate(batch)
    assert header.compression is codec
    assert header.records_count == len(RECORDS)
    assert header.max_timestamp == 1_700_000_000_500
    assert header.base_timestamp == RECORDS[0][0]
    decoded = decode_batch(batch)
    assert decoded.header == header
    assert decoded.records == tuple(
        Record(100 + i, ts, key, value, headers)
        for i, (ts, key, value, headers) in enumerate(RECORDS)
    )
    if codec is not Compression.NONE:
        assert len(batch) < len(build_batch(RECORDS))


def test_snappy_is_xerial_framed_and_raw_blocks_are_read_too() -> None:
    data = b"record stream " * 10_000  # several 32 KiB xerial blocks
    framed = compress(Compression.SNAPPY, data)
    assert framed.startswith(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01")
    assert decompress(Compression.SNAPPY, framed) == data
    raw = bytes(cramjam.snappy.compress_raw(data))  # librdkafka's way: one raw block
    assert decompress(Compression.SNAPPY, raw) == data
    batch = build_batch(RECORDS, compression=Compression.SNAPPY)
    assert validate(batch).compression is Compression.SNAPPY
    assert [r.value for r in decode_batch(batch).records] == [r[2] for r in RECORDS]
    with pytest.raises(CorruptRecordError, match="snappy"):
        decompress(Compression.SNAPPY, framed[:-3])
    with pytest.raises(UnsupportedCompressionError, match="codec id 6"):
        batch[22] |= 6
        write_crc(batch)
        validate(batch)


@pytest.mark.parametrize(
    "codec", [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD]
)
def test_decompress_stops_at_its_output_limit(codec: Compression) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    packed = compress(codec, data)
    assert decompress(codec, packed, max_output=len(data)) == data
    with pytest.raises(RecordTooLargeError, match=f"more than {len(data) - 1} bytes"):
        decompress(codec, packed, max_output=len(data) - 1)
    with pytest.raises(CorruptRecordError):
        decompress(codec, packed[: len(packed) // 2], max_output=len(data))


def test_explicit_offset_deltas_and_builder_properties() -> None:
    builder = RecordBatchBuilder(base_offset=10)
    assert builder.append(5, None, b"a", offset_delta=2) == 2
    assert builder.append(6, None, b"b") == 3
    with pytest.raises(ValueError, match="not above"):
        builder.append(7, None, b"c", offset_delta=3)
    assert builder.record_count == 2
    assert builder.uncompressed_size > 61
    batch = builder.build()
    assert validate(batch).last_offset_delta == 3
    assert [r.offset for r in decode_batch(batch).records] == [12, 13]


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.LZ4])
def test_columns_encode_as_records_do(codec: Compression) -> None:
    columns = RecordBatchBuilder(compression=codec, base_offset=7)
    timestamps, keys, values, headers = (list(c) for c in zip(*RECORDS, strict=True))
    assert columns.extend_columns(timestamps, keys, values, headers) == 0
    assert columns.build() == build_batch(RECORDS, compression=codec, base_offset=7)
    plain = RecordBatchBuilder(compression=codec)
    plain.extend_columns(timestamps, keys, values)  # no headers column: none has any
    assert [r.headers for r in decode_batch(plain.build()).records] == [()] * len(RECORDS)
    with pytest.raises(ValueError, match="3 keys, 4 values"):
        RecordBatchBuilder().extend_columns(timestamps, keys[:3], values)
    with pytest.raises(TypeError, match="record 0: timestamp must be int"):
        RecordBatchBuilder().extend_columns(["1"], [None], [b"v"])  # type: ignore[list-item]


def test_a_built_batch_is_not_changed_by_later_appends() -> None:
    builder = RecordBatchBuilder()
    builder.append(1, None, b"first")
    first = builder.build()
    kept = bytes(first)
    builder.append(2, None, b"second")
    second = builder.build()
    assert first == kept, "the batch built before stays as it was returned"
    assert [r.value for r in decode_batch(second).records] == [b"first", b"second"]
    assert validate(second).records_count == 2


def test_empty_builder_cannot_build() -> None:
    with pytest.raises(InvalidRecordError, match="no records"):
        RecordBatchBuilder().build()


def test_log_append_time_uses_max_timestamp() -> None:
    batch = build_batch(
        [(1, None, b"a", ()), (2, None, b"b", ())], timestamp_type=TimestampType.LOG_APPEND_TIME
    )
    struct.pack_into(">q", batch, 35, 999)
    write_crc(batch)
    assert [r.timestamp for r in decode_batch(batch).records] == [999, 999]


def test_iter_records_over_concatenated_batches() -> None:
    first = build_batch(RECORDS[:2], base_offset=0)
    second = build_batch(RECORDS[2:], base_offset=2, compression=Compression.ZSTD)
    assert [r.offset for r in iter_records(first + second)] == [0, 1, 2, 3]
    assert [r.offset for r in iter_records(memoryview(first + second), verify=False)] == [
        0,
        1,
        2,
        3,
    ]


@pytest.mark.parametrize(
    "codec", [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD]
)
def test_damaged_compressed_stream_is_corrupt(codec: Compression) -> None:
    batch = build_batch(RECORDS, compression=codec)
    damaged = batch[:61] + bytes(b ^ 0x5A for b in batch[61:])
    write_crc(damaged)
    with pytest.raises(CorruptRecordError, match="decompress"):
        decode_batch(damaged)


def test_record_count_mismatch_is_invalid() -> None:
    batch = build_batch(RECORDS[:2])
    struct.pack_into(">i", batch, 57, 3)
    write_crc(batch)
    with pytest.raises(InvalidRecordError):
        decode_batch(batch)
    struct.pack_into(">i", batch, 57, 1)
    write_crc(batch)
    with pytest.raises(InvalidRecordError, match="follow the last"):
        decode_batch(batch)


def test_decoder_reads_frames_other_producers_write() -> None:
    data = b"record stream " * 5000
    # zstd with the content size in the frame, lz4 with linked blocks and a content checksum.
    assert decompress(Compression.ZSTD, zstandard.ZstdCompressor().compress(data)) == data
    linked = lz4.frame.compress(data, block_linked=True, content_checksum=True, store_size=True)
    assert decompress(Compression.LZ4, linked) == data
    for codec in SUPPORTED_COMPRESSION:
        assert decompress(codec, compress(codec, data)) == data


@pytest.mark.parametrize(
    "codec", [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD]
)
def test_decoding_a_stored_batch_bounds_its_decompressed_size(codec: Compression) -> None:
    # A stored batch (one no leader validated) that inflates past the reader's bound is
    # refused before that much memory is used; within the bound it decodes as before.
    batch = build_batch(RECORDS, compression=codec)
    with pytest.raises(RecordTooLargeError, match="batch at base offset 0"):
        decode_batch(batch, max_output=1_000)
    assert [r.value for r in decode_batch(batch, max_output=1 << 20).records] == [
        value for _, _, value, _ in RECORDS
    ]
