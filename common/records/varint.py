"""Zigzag varint (int32) and varlong (int64) codecs, as used inside v2 records.

A value is zigzag-mapped to an unsigned integer (``(v << 1) ^ (v >> 31)``, 63 for longs) and
written in base-128 groups, least significant first, with the high bit of each byte meaning
"more bytes follow". A varint takes at most 5 bytes, a varlong at most 10.

Encoding an out-of-range value is a programming error (``ValueError``); decoding malformed
bytes is an :class:`InvalidRecordError` (they come from the wire, inside a CRC-checked batch).
"""

from __future__ import annotations

from raftka.common.records.errors import InvalidRecordError

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

_MAX_VARINT_BYTES = 5
_MAX_VARLONG_BYTES = 10
_UINT32_MASK = (1 << 32) - 1
_UINT64_MASK = (1 << 64) - 1


def zigzag32(value: int) -> int:
    """Maps an int32 to the unsigned int32 zigzag value (0, -1, 1, -2 -> 0, 1, 2, 3)."""
    if not INT32_MIN <= value <= INT32_MAX:
        raise ValueError(f"varint value {value} is outside int32")
    return ((value << 1) ^ (value >> 31)) & _UINT32_MASK


def zigzag64(value: int) -> int:
    """Maps an int64 to the unsigned int64 zigzag value."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"varlong value {value} is outside int64")
    return ((value << 1) ^ (value >> 63)) & _UINT64_MASK


def unzigzag(raw: int) -> int:
    """Inverse of :func:`zigzag32` / :func:`zigzag64`."""
    return (raw >> 1) ^ -(raw & 1)


def _write_unsigned(out: bytearray, raw: int) -> None:
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)


def write_varint(out: bytearray, value: int) -> None:
    """Appends the zigzag varint encoding of an int32 to ``out``."""
    _write_unsigned(out, zigzag32(value))


def write_varlong(out: bytearray, value: int) -> None:
    """Appends the zigzag varlong encoding of an int64 to ``out``."""
    _write_unsigned(out, zigzag64(value))


def encode_varint(value: int) -> bytes:
    out = bytearray()
    write_varint(out, value)
    return bytes(out)


def encode_varlong(value: int) -> bytes:
    out = bytearray()
    write_varlong(out, value)
    return bytes(out)


def varint_size(value: int) -> int:
    """Bytes the zigzag varint encoding of ``value`` takes (int32 or int64)."""
    raw = zigzag64(value)
    size = 1
    while raw >= 0x80:
        raw >>= 7
        size += 1
    return size


def _read_unsigned(
    buf: bytes | bytearray | memoryview, pos: int, max_bytes: int, kind: str
) -> tuple[int, int]:
    end = len(buf)
    if pos >= end:
        raise InvalidRecordError(f"truncated {kind} at byte {pos}: no bytes left")
    b = buf[pos]
    if b < 0x80:  # the common one-byte case
        return b, pos + 1
    raw = b & 0x7F
    shift = 7
    i = pos + 1
    while True:
        if i - pos >= max_bytes:
            raise InvalidRecordError(f"{kind} at byte {pos} is longer than {max_bytes} bytes")
        if i >= end:
            raise InvalidRecordError(f"truncated {kind} at byte {pos}: buffer ends inside it")
        b = buf[i]
        raw |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return raw, i
        shift += 7


def read_varint(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decodes a zigzag varint at ``pos``; returns (value, position after it)."""
    raw, nxt = _read_unsigned(buf, pos, _MAX_VARINT_BYTES, "varint")
    if raw > _UINT32_MASK:
        raise InvalidRecordError(f"varint at byte {pos} does not fit in 32 bits")
    return (raw >> 1) ^ -(raw & 1), nxt


def read_varlong(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decodes a zigzag varlong at ``pos``; returns (value, position after it)."""
    raw, nxt = _read_unsigned(buf, pos, _MAX_VARLONG_BYTES, "varlong")
    if raw > _UINT64_MASK:
        raise InvalidRecordError(f"varlong at byte {pos} does not fit in 64 bits")
    return (raw >> 1) ^ -(raw & 1), nxt
