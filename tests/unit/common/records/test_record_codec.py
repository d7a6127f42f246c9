"""The record-stream codec, held to one behaviour in both implementations (the C accelerator
and its pure-Python twin): every kind of damage is found, with the same message and byte."""

from __future__ import annotations

import os
import subprocess
import sys
from types import ModuleType

import pytest

from raftka.common.records import CorruptRecordError, accel, pycodec
from raftka.common.records.varint import encode_varint, encode_varlong
from tests.unit.common.records.codecs import IMPLEMENTATIONS, codec_named, field, record, records

BASE = 1_700_000_000_000
INT64_MAX = (1 << 63) - 1


@pytest.fixture(params=IMPLEMENTATIONS)
def codec(request: pytest.FixtureRequest) -> ModuleType:
    return codec_named(request.param)


def test_a_good_stream_returns_its_timestamp_range(codec: ModuleType) -> None:
    stream = records(3)  # timestamp deltas 0, 1, 2
    assert codec.validate_records(stream, 3, BASE, 61) == (BASE, BASE + 2)
    assert codec.validate_records(memoryview(stream), 3, -1, 61) == (0, 1)  # -1 is "none"
    no_time = record(timestamp_delta=0)
    assert codec.validate_records(no_time, 1, -1, 61) == (-1, -1)


# (name, stream, records count, the exact message). Positions count from 61, as in a batch.
POISON: list[tuple[str, bytes, int, str]] = [
    (
        "count lies high",
        records(2),
        3,
        "record 2: the records end at byte 79 but the batch claims 3 records",
    ),
    (
        "count lies hugely",
        records(1),
        (1 << 31) - 1,
        "record 1: the records end at byte 70 but the batch claims 2147483647 records",
    ),
    (
        "count lies low",
        records(2),
        1,
        "9 bytes at byte 70 follow the last of the batch's 1 records",
    ),
    ("empty stream", b"", 1, "record 0: the records end at byte 61 but the batch claims 1 records"),
    (
        "varint longer than 5 bytes",
        b"\xff" * 6 + b"\x00" * 10,
        1,
        "record 0: varint at byte 61 is longer than 5 bytes",
    ),
    (
        "varint beyond 32 bits",
        b"\xff\xff\xff\xff\x1f" + b"\x00" * 10,
        1,
        "record 0: varint at byte 61 does not fit in 32 bits",
    ),
    (
        "varint cut by the end",
        b"\x80",
        1,
        "record 0: truncated varint at byte 61: the record ends inside it",
    ),
    (
        "varlong longer than 10 bytes",
        record(b"\xff" * 11 + b"\x00" * 5),
        1,
        "record 0: varlong at byte 63 is longer than 10 bytes",
    ),
    (
        "varlong beyond 64 bits",
        record(b"\xff" * 9 + b"\x7f" + b"\x00" * 5),
        1,
        "record 0: varlong at byte 63 does not fit in 64 bits",
    ),
    (
        "truncated record",
        records(2)[:-3],
        2,
        "record 1: length 8 at byte 70 does not fit the records, which end at byte 76",
    ),
    (
        "zero length",
        b"\x00",
        1,
        "record 0: length 0 at byte 61 does not fit the records, which end at byte 62",
    ),
    (
        "negative length",
        b"\x01" + b"\x00" * 8,
        1,
        "record 0: length -1 at byte 61 does not fit the records, which end at byte 70",
    ),
    (
        "offset deltas out of order",
        record(offset_delta=0) + record(offset_delta=2),
        2,
        "record 1: offset delta 2 at byte 73, expected 1 (a produced batch numbers its records "
        "0, 1, 2, ...)",
    ),
    (
        "offset deltas not from 0",
        record(offset_delta=1),
        1,
        "record 0: offset delta 1 at byte 64, expected 0 (a produced batch numbers its records "
        "0, 1, 2, ...)",
    ),
    (
        "timestamp past int64",
        record(timestamp_delta=INT64_MAX),
        1,
        f"record 0: timestamp delta {INT64_MAX} at byte 63 puts the timestamp outside int64 "
        f"(base timestamp {BASE})",
    ),
    (
        "key length below -1",
        record(encode_varlong(0) + encode_varint(0) + encode_varint(-2) + field(b"v") + b"\x00"),
        1,
        "record 0: key length -2 at byte 65 is below -1",
    ),
    (
        "key overruns its record",
        record(encode_varlong(0) + encode_varint(0) + encode_varint(50) + b"kk" + b"\x00"),
        1,
        "record 0: key of 50 bytes at byte 65 overruns the record, which ends at byte 69",
    ),
    (
        "value overruns into the next record",
        record(encode_varlong(0) + encode_varint(0) + field(None) + encode_varint(9)) + records(1),
        2,
        "record 0: value of 9 bytes at byte 66 overruns the record, which ends at byte 67",
    ),
    (
        "negative header count",
        record(headers=encode_varint(-3)),
        1,
        "record 0: header count -3 at byte 69 is negative",
    ),
    (
        "null header key",
        record(headers=encode_varint(1) + field(None) + field(b"x")),
        1,
        "record 0: header 0 key length -1 at byte 70 is negative (a header key may not be null)",
    ),
    (
        "header key not UTF-8",
        record(
            headers=encode_varint(2) + field(b"ok") + field(None) + field(b"\xc3\x28") + field(None)
        ),
        1,
        "record 0: header 1 key at byte 75 is not valid UTF-8",
    ),
    (
        "header value below -1",
        record(headers=encode_varint(1) + field(b"h") + encode_varint(-5)),
        1,
        "record 0: header 0 value length -5 at byte 72 is below -1",
    ),
    (
        "more headers than bytes",
        record(headers=encode_varint(1000) + field(b"h") + field(None)),
        1,
        "record 0: truncated varint at byte 74: the record ends inside it",
    ),
    (
        "length longer than the fields",
        record(headers=b"\x00\x00\x00", length=10),
        1,
        "record 0: length says the record ends at byte 72 but its fields end at byte 70",
    ),
]


@pytest.mark.parametrize(("name", "stream", "count", "message"), POISON, ids=[p[0] for p in POISON])
def test_poison_streams_are_named_exactly(
    codec: ModuleType, name: str, stream: bytes, count: int, message: str
) -> None:
    with pytest.raises(CorruptRecordError) as raised:
        codec.validate_records(stream, count, BASE, 61)
    assert raised.value.message == message
    assert raised.value.code_name == "CORRUPT_MESSAGE"


def test_decoding_allows_gaps_in_offset_deltas_but_not_damage(codec: ModuleType) -> None:
    stream = record(offset_delta=0, key=None, value=b"a") + record(
        offset_delta=5,
        timestamp_delta=-7,
        key=b"",
        value=None,
        headers=encode_varint(1) + field("\u00e9".encode()) + field(None),
    )
    assert codec.decode_records(stream, 2, 61) == [
        (0, 0, None, b"a", ()),
        (5, -7, b"", None, (("\u00e9", None),)),
    ]
    with pytest.raises(CorruptRecordError, match="follow the last"):
        codec.decode_records(stream, 1, 61)


def test_encoder_output_and_errors(codec: ModuleType) -> None:
    out = bytearray(b"prefix")
    rows = [
        (BASE, b"k", b"v", ()),
        (BASE - 5, None, memoryview(b"mv"), [("h", b"x"), ("n", None)]),
    ]
    assert codec.encode_records(out, rows, BASE, 0, -1) == BASE
    stream = bytes(out[6:])
    assert codec.decode_records(stream, 2, 0) == [
        (0, 0, b"k", b"v", ()),
        (1, -5, None, b"mv", (("h", b"x"), ("n", None))),
    ]
    codec.encode_record(out, 2, 3, b"key", None, ())
    assert codec.decode_records(bytes(out[6:]), 3, 0)[2] == (2, 3, b"key", None, ())
    before = bytes(out)
    bad: list[tuple[object, type[Exception], str]] = [
        ([(BASE, "text", None, ())], TypeError, "record 0: key must be bytes or None, not str"),
        ([(BASE, None, 5, ())], TypeError, "record 0: value must be bytes or None, not int"),
        (
            [(BASE, None, None, ()), (1.5, None, None, ())],
            TypeError,
            "record 1: timestamp must be int, not float",
        ),
        (
            [(1 << 63, None, None, ())],
            ValueError,
            f"record 0: timestamp {1 << 63} is outside int64",
        ),
        (
            [(-(1 << 63), None, None, ())],
            ValueError,
            f"record 0: timestamp delta {-(1 << 63) - BASE} is outside int64",
        ),
        (
            [(BASE, None, None, [("h", "str")])],
            TypeError,
            "record 0: header value must be bytes or None, not str",
        ),
        (
            [(BASE, None, None, [(b"h", None)])],
            TypeError,
            "record 0: header key must be str, not bytes",
        ),
        (
            [(BASE, None, None, [("h",)])],
            TypeError,
            "record 0: headers must be (str, bytes | None) pairs, not tuple",
        ),
        (
            [(BASE, None, None, 7)],
            TypeError,
            "record 0: headers must be (str, bytes | None) pairs, not int",
        ),
        (
            [(BASE, None)],
            TypeError,
            "record 0: records must be (timestamp, key, value, headers) tuples, not tuple",
        ),
    ]
    for rows_, error, message in bad:
        with pytest.raises(error) as raised:
            codec.encode_records(out, rows_, BASE, 0, -1)
        assert str(raised.value) == message
        assert bytes(out) == before  # nothing appended
    with pytest.raises(ValueError, match=r"record 0: offset delta 2147483648 is outside"):
        codec.encode_records(out, [(BASE, None, None, ())], BASE, 1 << 31, -1)
    with pytest.raises(ValueError, match=rf"record 0: offset delta {(1 << 63) - 1} is outside"):
        codec.encode_records(out, [(BASE, None, None, ())] * 2, BASE, (1 << 63) - 1, -1)
    with pytest.raises(TypeError, match="deltas must be int"):
        codec.encode_record(out, 0, 1.0, None, None, ())
    assert bytes(out) == before


def test_the_process_uses_the_accelerator_unless_disabled() -> None:
    expected = "python" if os.environ.get(accel.DISABLE_ENV, "") not in ("", "0") else "c"
    assert expected == accel.IMPLEMENTATION
    script = (
        "from raftka.common.records import accel, build_batch, decode_batch\n"
        "b = build_batch([(5, b'k', b'v', [('h', None)])])\n"
        "print(accel.IMPLEMENTATION, decode_batch(b).records[0].headers)\n"
    )
    built = "c" if accel.compiled() is not None else "python"
    for env_value, name in (("1", "python"), ("0", built)):
        env = {**os.environ, accel.DISABLE_ENV: env_value}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout
        assert out.split()[0] == name
        assert "('h', None)" in out
    if accel.IMPLEMENTATION == "python":
        assert accel.validate_records is pycodec.validate_records
