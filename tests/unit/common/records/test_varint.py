from __future__ import annotations

import pytest

from raftka.common.records import InvalidRecordError
from raftka.common.records.varint import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    encode_varint,
    encode_varlong,
    read_varint,
    read_varlong,
    varint_size,
    zigzag32,
    zigzag64,
)

KNOWN_VARINTS = [
    (0, "00"),
    (-1, "01"),
    (1, "02"),
    (-2, "03"),
    (63, "7e"),
    (-64, "7f"),
    (64, "8001"),
    (300, "d804"),
    (INT32_MAX, "feffffff0f"),
    (INT32_MIN, "ffffffff0f"),
]


@pytest.mark.parametrize(("value", "hex_bytes"), KNOWN_VARINTS)
def test_varint_known_encodings(value: int, hex_bytes: str) -> None:
    encoded = encode_varint(value)
    assert encoded.hex() == hex_bytes
    assert read_varint(encoded) == (value, len(encoded))
    assert varint_size(value) == len(encoded)


@pytest.mark.parametrize(
    ("value", "hex_bytes"),
    [
        *KNOWN_VARINTS[:-2],
        (INT64_MAX, "feffffffffffffffff01"),
        (INT64_MIN, "ffffffffffffffffff01"),
        (INT32_MAX + 1, "8080808010"),
    ],
)
def test_varlong_known_encodings(value: int, hex_bytes: str) -> None:
    encoded = encode_varlong(value)
    assert encoded.hex() == hex_bytes
    assert read_varlong(encoded) == (value, len(encoded))
    assert varint_size(value) == len(encoded)


def test_zigzag_mapping() -> None:
    assert [zigzag32(v) for v in (0, -1, 1, -2, 2)] == [0, 1, 2, 3, 4]
    assert zigzag32(INT32_MIN) == 0xFFFFFFFF
    assert zigzag64(INT64_MIN) == 0xFFFFFFFFFFFFFFFF


def test_round_trip_many_values_at_an_offset() -> None:
    values = [0, 1, -1, 127, 128, -129, 1 << 20, -(1 << 27), INT32_MAX, INT32_MIN]
    buf = b"\xaa" + b"".join(encode_varint(v) for v in values)
    pos = 1
    for value in values:
        decoded, pos = read_varint(buf, pos)
        assert decoded == value
    assert pos == len(buf)


@pytest.mark.parametrize("value", [INT32_MAX + 1, INT32_MIN - 1])
def test_encode_varint_rejects_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="int32"):
        encode_varint(value)


@pytest.mark.parametrize("value", [INT64_MAX + 1, INT64_MIN - 1])
def test_encode_varlong_rejects_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="int64"):
        encode_varlong(value)


def test_decode_truncated_varint() -> None:
    with pytest.raises(InvalidRecordError, match="truncated varint"):
        read_varint(b"\x80\x80")
    with pytest.raises(InvalidRecordError, match="truncated varint"):
        read_varint(b"")


def test_decode_overlong_varint() -> None:
    with pytest.raises(InvalidRecordError, match="longer than 5"):
        read_varint(b"\x80\x80\x80\x80\x80\x01")
    with pytest.raises(InvalidRecordError, match="32 bits"):
        read_varint(b"\xff\xff\xff\xff\x1f")
    with pytest.raises(InvalidRecordError, match="longer than 10"):
        read_varlong(b"\x80" * 10 + b"\x01")
