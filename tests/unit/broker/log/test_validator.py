from __future__ import annotations

import struct

import pytest

from raftka.broker.log.validator import TimestampBounds, validate_produced_batches
from raftka.common.records import (
    Compression,
    CorruptRecordError,
    InvalidRecordError,
    InvalidTimestampError,
    RecordError,
    RecordTooLargeError,
    TimestampType,
    UnsupportedCompressionError,
    build_batch,
    iter_records,
    split_batches,
)
from raftka.common.records.batch import ATTRIBUTES_POS, write_crc
from raftka.common.records.control import build_end_txn_marker
from tests.unit.broker.support import T0, batch

LIMIT = 1048588


def check(buf: bytes | bytearray, *, limit: int = LIMIT, append_time: int | None = None) -> None:
    validate_produced_batches(buf, max_message_bytes=limit, log_append_time_ms=append_time)


def with_attributes(buf: bytearray, attributes: int) -> bytearray:
    out = bytearray(buf)
    struct.pack_into(">h", out, ATTRIBUTES_POS, attributes)
    write_crc(out)
    return out


def test_valid_batches_pass_through_unchanged() -> None:
    data = bytes(batch(3) + batch(2, tag=1, compression=Compression.GZIP))
    result = validate_produced_batches(data, max_message_bytes=LIMIT, log_append_time_ms=None)
    assert result.data is data
    assert (result.batch_count, result.record_count) == (2, 5)


@pytest.mark.parametrize("codec", [Compression.GZIP, Compression.LZ4, Compression.ZSTD])
def test_supported_codecs_are_accepted(codec: Compression) -> None:
    check(batch(4, compression=codec))


def corrupt_crc(buf: bytearray) -> bytearray:
    out = bytearray(buf)
    out[-1] ^= 0xFF
    return out


def wrong_magic(buf: bytearray) -> bytearray:
    out = bytearray(buf)
    out[16] = 1
    return out


BAD_INPUTS: list[tuple[str, bytes | bytearray, type[RecordError]]] = [
    ("empty", b"", InvalidRecordError),
    ("garbage", b"\x17" * 100, InvalidRecordError),  # byte 16 (magic) is not 2
    ("short garbage", b"\x00" * 10, CorruptRecordError),
    ("wrong crc", corrupt_crc(batch(2)), CorruptRecordError),
    ("wrong magic", wrong_magic(batch(2)), InvalidRecordError),
    ("truncated", batch(2)[:-5], CorruptRecordError),
    ("truncated header", batch(2)[:40], CorruptRecordError),
    ("trailing bytes", batch(2) + b"\x00" * 10, CorruptRecordError),
    ("good then bad crc", batch(1) + corrupt_crc(batch(1)), CorruptRecordError),
    ("unknown codec", with_attributes(batch(1), 6), UnsupportedCompressionError),
    ("control", batch(1, control=True), InvalidRecordError),
    ("transactional without producer id", batch(1, transactional=True), InvalidRecordError),
    (
        "an end-transaction marker from a client",
        build_end_txn_marker(7, 0, True, 0, timestamp=T0),
        InvalidRecordError,
    ),
    ("producer id without sequence", batch(1, producer_id=7, base_sequence=-1), InvalidRecordError),
    (
        "producer id without epoch",
        build_batch([(T0, None, b"v", ())], producer_id=7, producer_epoch=-1, base_sequence=0),
        InvalidRecordError,
    ),
    (
        "negative producer id",
        build_batch([(T0, None, b"v", ())], producer_id=-2, producer_epoch=0, base_sequence=0),
        InvalidRecordError,
    ),
]


@pytest.mark.parametrize(("name", "buf", "error"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_the_right_error(
    name: str, buf: bytes | bytearray, error: type[RecordError]
) -> None:
    with pytest.raises(error):
        check(buf)


def test_transactional_batches_with_a_producer_id_are_accepted() -> None:
    buf = build_batch(
        [(T0, None, b"v", ())], producer_id=7, producer_epoch=0, base_sequence=0, transactional=True
    )
    validated = validate_produced_batches(buf, max_message_bytes=LIMIT, log_append_time_ms=None)
    assert validated.has_producer_ids and validated.headers[0].is_transactional


def test_records_count_must_match_offset_delta() -> None:
    buf = batch(3)
    struct.pack_into(">i", buf, 57, 2)  # records count 2, last offset delta 2
    write_crc(buf)
    with pytest.raises(InvalidRecordError, match="records count 2"):
        check(buf)
    struct.pack_into(">i", buf, 57, 0)
    struct.pack_into(">i", buf, 23, -1)
    write_crc(buf)
    with pytest.raises(InvalidRecordError):
        check(buf)


def test_oversize_batch_names_the_limit() -> None:
    big = batch(1, value_size=2000)
    with pytest.raises(RecordTooLargeError, match=r"max\.message\.bytes is 1000"):
        check(big, limit=1000)
    check(big, limit=len(big))  # the limit counts the whole batch, log overhead included
    with pytest.raises(RecordTooLargeError):
        check(big, limit=len(big) - 1)


def test_idempotent_batch_with_sequence_is_accepted() -> None:
    check(batch(2, producer_id=7, base_sequence=0))


def test_headers_are_returned_and_producer_ids_flagged() -> None:
    plain, idempotent = batch(2), batch(3, tag=1, producer_id=7, base_sequence=4)
    result = validate_produced_batches(
        bytes(plain + idempotent), max_message_bytes=LIMIT, log_append_time_ms=T0 + 500
    )
    assert [(h.producer_id, h.base_sequence, h.last_offset_delta) for h in result.headers] == [
        (-1, -1, 1),
        (7, 4, 2),
    ]
    assert result.headers[0].max_timestamp == T0 + 1  # as sent, not as rewritten (T0 + 500)
    assert result.has_producer_ids
    only_plain = validate_produced_batches(plain, max_message_bytes=LIMIT, log_append_time_ms=None)
    assert not only_plain.has_producer_ids


def test_log_append_time_rewrites_max_timestamp_and_keeps_crc_valid() -> None:
    original = bytes(batch(3, timestamp=T0) + batch(2, tag=1, compression=Compression.LZ4))
    now = T0 + 99_000
    result = validate_produced_batches(original, max_message_bytes=LIMIT, log_append_time_ms=now)
    after = bytes(result.data)
    spans = split_batches(after)  # checks every CRC
    assert [(s.position, s.size) for s in spans] == [
        (s.position, s.size) for s in split_batches(original)
    ]
    for position, size, header in spans:
        assert header.timestamp_type is TimestampType.LOG_APPEND_TIME
        assert header.max_timestamp == now
        # Only the CRC (17-20), attributes (21-22) and max timestamp (35-42) changed.
        for lo, hi in ((0, 17), (23, 35), (43, size)):
            assert after[position + lo : position + hi] == original[position + lo : position + hi]
    assert spans[1].header.compression is Compression.LZ4
    assert [r.timestamp for r in iter_records(after)] == [now] * 5


HOUR = 3_600_000


def check_times(buf: bytes | bytearray, *, before: int = 2**63 - 1, after: int = HOUR) -> None:
    validate_produced_batches(
        buf,
        max_message_bytes=LIMIT,
        log_append_time_ms=None,
        timestamps=TimestampBounds(T0, before, after),
        where="events-0",
    )


def test_create_time_timestamps_are_bounded() -> None:
    """KIP-937: message.timestamp.after.max.ms (default one hour) and .before.max.ms bound a
    CreateTime batch's max and first timestamps; negative ones other than -1 are refused."""
    check_times(batch(3, timestamp=T0 + HOUR - 2))  # last record exactly at the bound
    check_times(batch(2, timestamp=0))  # 1970 is fine while before.max.ms is unlimited
    check_times(build_batch([(-1, None, b"v", ())]))  # -1: no timestamp
    with pytest.raises(InvalidTimestampError) as future:
        check_times(batch(3, timestamp=T0 + HOUR - 1))
    assert future.value.code_name == "INVALID_TIMESTAMP"
    assert "events-0" in future.value.message
    assert f"message.timestamp.after.max.ms={HOUR}" in future.value.message
    with pytest.raises(InvalidTimestampError, match=r"before\.max\.ms=1000"):
        check_times(batch(1, timestamp=T0 - 1001), before=1000)
    check_times(batch(1, timestamp=T0 - 1000), before=1000)
    with pytest.raises(InvalidTimestampError, match="negative"):
        check_times(batch(1, timestamp=-5))
    # LogAppendTime topics stamp their own time: the producer's is not checked
    validate_produced_batches(
        batch(1, timestamp=T0 + 10 * HOUR),
        max_message_bytes=LIMIT,
        log_append_time_ms=T0,
        timestamps=TimestampBounds(T0, 0, 0),
    )
