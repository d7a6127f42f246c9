"""The leader walks every record of every produced batch (with the C codec and with its
pure-Python twin): poison batches are refused with CORRUPT_MESSAGE naming the partition and
the byte, compressed ones are decompressed only up to max.message.bytes, and nothing of a
request holding one is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.broker.log.validator import TimestampBounds, validate_produced_batches
from raftka.common.records import (
    Compression,
    CorruptRecordError,
    InvalidTimestampError,
    RecordBatchBuilder,
    accel,
    build_batch,
    iter_records,
)
from raftka.common.records.batch import write_crc
from raftka.common.records.varint import encode_varint
from tests.unit.broker.support import T0, batch, open_partition
from tests.unit.common.records.codecs import (
    IMPLEMENTATIONS,
    codec_named,
    raw_batch,
    record,
    records,
)

LIMIT = 64 * 1024
COMPRESSED = [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD]


@pytest.fixture(params=IMPLEMENTATIONS, autouse=True)
def implementation(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Runs each test with the validator on one codec."""
    monkeypatch.setattr(accel, "validate_records", codec_named(request.param).validate_records)
    yield request.param


def refuse(buf: bytes | bytearray, *, limit: int = LIMIT) -> str:
    """The message of the CorruptRecordError the validator raises for ``buf``."""
    with pytest.raises(CorruptRecordError) as raised:
        validate_produced_batches(
            buf, max_message_bytes=limit, log_append_time_ms=None, where="events-0"
        )
    assert raised.value.code_name == "CORRUPT_MESSAGE"
    assert raised.value.message.startswith("events-0, batch at byte ")
    return raised.value.message


def test_good_batches_of_every_codec_pass() -> None:
    good = b"".join(bytes(batch(3, tag=i, compression=c)) for i, c in enumerate(COMPRESSED))
    result = validate_produced_batches(good, max_message_bytes=LIMIT, log_append_time_ms=None)
    assert result.record_count == 12


def test_a_batch_claiming_two_billion_records_is_refused() -> None:
    # The poison: a small batch whose count and last offset delta agree, and lie.
    poison = raw_batch(records(1), (1 << 31) - 1)
    assert len(poison) == 70
    message = refuse(poison)
    assert "record 1: the records end at byte 70 but the batch claims 2147483647 records" in message


POISON = [
    ("bad varint", b"\xff" * 6 + b"\x00" * 10, 1, "varint at byte 61 is longer than 5 bytes"),
    ("truncated record", records(2)[:-3], 2, "length 8 at byte 70 does not fit the records"),
    (
        "offset deltas out of order",
        record(offset_delta=1) + record(offset_delta=0),
        2,
        "record 0: offset delta 1 at byte 64, expected 0",
    ),
    ("count too low", records(3), 2, "9 bytes at byte 79 follow the last"),
    (
        "null header key",
        record(headers=encode_varint(1) + b"\x01\x01"),
        1,
        "header 0 key length -1 at byte 70",
    ),
]


@pytest.mark.parametrize(("name", "stream", "count", "detail"), POISON, ids=[p[0] for p in POISON])
def test_poison_is_refused_naming_the_batch_and_byte(
    name: str, stream: bytes, count: int, detail: str
) -> None:
    first = batch(2)
    message = refuse(bytes(first) + raw_batch(stream, count))
    assert message.startswith(f"events-0, batch at byte {len(first)} ")
    assert detail in message


@pytest.mark.parametrize("codec", COMPRESSED)
def test_poison_inside_a_compressed_batch_is_refused(codec: Compression) -> None:
    message = refuse(
        raw_batch(record(offset_delta=0) + record(offset_delta=7), 2, compression=codec)
    )
    assert f"its {codec.name.lower()} records, decompressed to 18 bytes" in message
    assert "offset delta 7 at byte 12, expected 1" in message


@pytest.mark.parametrize("codec", COMPRESSED)
def test_garbage_compressed_payloads_are_refused(codec: Compression) -> None:
    good = raw_batch(records(3), 3, compression=codec)
    garbage = raw_batch(b"", 3, compression=Compression.NONE)
    garbage[21 + 1] = int(codec)  # attributes' low byte: the codec
    garbage += bytes(range(7, 250, 3))
    garbage[8:12] = (len(garbage) - 12).to_bytes(4, "big")
    write_crc(garbage)
    assert validate_produced_batches(good, max_message_bytes=LIMIT, log_append_time_ms=None)
    message = refuse(garbage)
    assert "events-0, batch at byte 0: " in message


@pytest.mark.parametrize("codec", COMPRESSED)
def test_decompression_bombs_are_refused_at_the_topics_limit(codec: Compression) -> None:
    bomb = build_batch([(T0, None, bytes(LIMIT * 4), ())], compression=codec)
    assert len(bomb) < LIMIT  # small on the wire
    message = refuse(bomb)
    assert (
        f"records decompress to more than {LIMIT} bytes, the topic's max.message.bytes" in message
    )
    # the same batch is fine where the topic allows it
    validate_produced_batches(bomb, max_message_bytes=LIMIT * 5, log_append_time_ms=None)


def test_every_record_timestamp_is_bounded_not_only_the_headers() -> None:
    hour = 3_600_000
    builder = RecordBatchBuilder()
    builder.append(T0, None, b"a")
    builder.append(T0 - 10 * hour, None, b"b")  # below the header's first and max timestamps
    old = builder.build()
    bounds = TimestampBounds(T0, hour, hour)
    with pytest.raises(InvalidTimestampError, match=f"timestamp {T0 - 10 * hour} is"):
        validate_produced_batches(
            old, max_message_bytes=LIMIT, log_append_time_ms=None, timestamps=bounds
        )
    negative = raw_batch(record(timestamp_delta=-T0 - 5), 1, base_timestamp=T0)
    with pytest.raises(InvalidTimestampError, match="timestamp -5 is negative"):
        validate_produced_batches(
            negative, max_message_bytes=LIMIT, log_append_time_ms=None, timestamps=bounds
        )


def test_nothing_of_a_request_with_a_poison_batch_is_written(tmp_path: Path) -> None:
    plog = open_partition(tmp_path)
    poison = raw_batch(records(1), (1 << 31) - 1)
    with pytest.raises(CorruptRecordError, match="events-0, batch at byte"):
        plog.append_as_leader(bytes(batch(2)) + poison, leader_epoch=1, now_ms=T0)
    assert plog.log_end_offset == 0
    plog.append_as_leader(batch(2), leader_epoch=1, now_ms=T0)
    assert plog.log_end_offset == 2
    assert [r.offset for r in iter_records(plog.read(0, 1 << 20).records)] == [0, 1]
    plog.close()
