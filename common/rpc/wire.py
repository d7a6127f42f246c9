"""Protobuf wire-format primitives for the hand-written codecs of the hot RPCs.

The generated classes copy every ``bytes`` field on the way in and out (setting a 1 MiB
field costs ~0.4 ms, serializing it ~0.1 ms more); the codecs built on these primitives
(fetch_wire.py) write and read the same bytes the ``.proto`` defines, with record batches
passed through as slices. Reading follows protobuf's rules: fields in any order, the last
value of a scalar wins, a repeated submessage appends, a singular one merges, unknown fields
(and known fields with an unexpected wire type) are skipped; anything malformed raises
:class:`WireFormatError`.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT = 0
FIXED64 = 1
LEN = 2
START_GROUP = 3
END_GROUP = 4
FIXED32 = 5

_U64 = (1 << 64) - 1
_MAX_VARINT_BYTES = 10
_MAX_FIELD_NUMBER = (1 << 29) - 1
_MAX_GROUP_DEPTH = 100
"""protobuf's own nesting limit."""


class WireFormatError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


def encode_varint(value: int) -> bytes:
    """A varint; negative values as their 64-bit two's complement (10 bytes), as protobuf
    writes negative int32 and int64 fields."""
    value &= _U64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return encode_varint(field << 3 | wire_type)


def varint_field(field: int, value: int) -> bytes:
    """A varint field, or nothing for 0 (proto3 leaves default scalars out)."""
    return tag(field, VARINT) + encode_varint(value) if value else b""


def len_prefix(field: int, length: int) -> bytes:
    """The tag and length that come before ``length`` bytes of a length-delimited field."""
    return tag(field, LEN) + encode_varint(length)


def read_varint(data: memoryview, pos: int, end: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it."""
    result = shift = 0
    for i in range(pos, min(end, pos + _MAX_VARINT_BYTES)):
        byte = data[i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _U64, i + 1
        shift += 7
    if end - pos >= _MAX_VARINT_BYTES:
        raise WireFormatError(f"varint at byte {pos} is longer than {_MAX_VARINT_BYTES} bytes")
    raise WireFormatError(f"varint at byte {pos} is cut off at byte {end}")


def as_int32(value: int) -> int:
    """A varint read for an int32 field (protobuf keeps the low 32 bits, signed)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def as_int64(value: int) -> int:
    return value - (1 << 64) if value & (1 << 63) else value


def fields(data: memoryview, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """The fields of the message in ``data[pos:end]``: ``(number, wire type, value, end)``
    where, for LEN fields, ``value`` is where the bytes start and ``end`` where they end
    (for the others ``end`` is the position after the field). Groups (proto3 messages define
    none) are skipped as protobuf skips an unknown field, or refused if malformed."""
    while pos < end:
        number, wire_type, value, pos = _field(data, pos, end)
        if wire_type != START_GROUP:
            yield number, wire_type, value, pos


def _field(data: memoryview, pos: int, end: int, depth: int = 0) -> tuple[int, int, int, int]:
    """One field at ``pos``: (number, wire type, value, position after it); a group is read
    to its end (its value is where its fields start)."""
    key, pos = read_varint(data, pos, end)
    number, wire_type = key >> 3, key & 7
    if not 0 < number <= _MAX_FIELD_NUMBER:
        raise WireFormatError(f"field number {number} at byte {pos} is out of range")
    if wire_type == VARINT:
        value, pos = read_varint(data, pos, end)
        return number, wire_type, value, pos
    if wire_type == LEN:
        length, start = read_varint(data, pos, end)
        pos = start + length
        if pos > end:
            raise WireFormatError(
                f"field {number} claims {length} bytes at byte {start}; only {end - start} remain"
            )
        return number, wire_type, start, pos
    if wire_type in (FIXED64, FIXED32):
        size = 8 if wire_type == FIXED64 else 4
        if pos + size > end:
            raise WireFormatError(f"fixed-size field {number} is cut off at byte {end}")
        return number, wire_type, int.from_bytes(data[pos : pos + size], "little"), pos + size
    if wire_type == START_GROUP:
        return number, wire_type, pos, _group_end(data, pos, end, number, depth + 1)
    raise WireFormatError(f"field {number} at byte {pos} has wire type {wire_type}")


def _group_end(data: memoryview, pos: int, end: int, number: int, depth: int) -> int:
    """The position after the END_GROUP that closes group ``number`` opened before ``pos``."""
    if depth > _MAX_GROUP_DEPTH:
        raise WireFormatError(f"groups nested more than {_MAX_GROUP_DEPTH} deep at byte {pos}")
    while pos < end:
        key, after = read_varint(data, pos, end)
        if key & 7 == END_GROUP:
            if key >> 3 != number:
                raise WireFormatError(f"group {number} is closed as group {key >> 3} at {pos}")
            return after
        pos = _field(data, pos, end, depth)[3]
    raise WireFormatError(f"group {number} is not closed before byte {end}")


def read_string(data: memoryview, start: int, end: int) -> str:
    try:
        return str(data[start:end], "utf-8")
    except UnicodeDecodeError as e:
        raise WireFormatError(f"string field at byte {start} is not UTF-8: {e}") from None
