"""The record-stream codec in pure Python: the fallback for (and the specification of) the
compiled ``_accel`` extension, which must behave identically (same results, same errors with
the same messages and byte positions; tests/unit/common/records/test_accel*.py hold both to it).

A v2 batch's records, after its 61-byte header (decompressed first when the batch is
compressed), are a stream of::

    length varint | attributes int8 | timestamp delta varlong | offset delta varint
    | key length varint | key | value length varint | value
    | header count varint | (key length varint | key UTF-8 | value length varint | value)*

Three functions, each one call per batch:

- :func:`validate_records` walks a stream as Kafka's LogValidator does for a produced batch;
- :func:`decode_records` returns the records as tuples (the consumer path);
- :func:`encode_records` / :func:`encode_record` append records to a stream (the producer).

Every structural problem of a stream raises CorruptRecordError naming the record's index and
the byte position (``position`` plus the offset inside ``data``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from raftka.common.records.errors import CorruptRecordError

Buffer = bytes | bytearray | memoryview
DecodedHeaders = tuple[tuple[str, bytes | None], ...]
DecodedRecord = tuple[int, int, bytes | None, bytes | None, DecodedHeaders]
"""(offset delta, timestamp delta, key, value, headers)."""

INT32_MAX = (1 << 31) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
NO_TIMESTAMP = -1
_UINT32_MAX = (1 << 32) - 1
_UINT64_MAX = (1 << 64) - 1


class _Reader:
    """Reads zigzag varints from ``data``; errors name record ``index`` and absolute bytes."""

    __slots__ = ("data", "index", "position")

    def __init__(self, data: memoryview, position: int) -> None:
        self.data = data
        self.position = position
        self.index = 0

    def fail(self, what: str) -> CorruptRecordError:
        return CorruptRecordError(f"record {self.index}: {what}")

    def unsigned(self, pos: int, limit: int, max_bytes: int, kind: str) -> tuple[int, int]:
        data = self.data
        raw = 0
        shift = 0
        i = pos
        while True:
            if i >= limit:
                raise self.fail(
                    f"truncated {kind} at byte {self.position + pos}: the record ends inside it"
                )
            if i - pos >= max_bytes:
                raise self.fail(
                    f"{kind} at byte {self.position + pos} is longer than {max_bytes} bytes"
                )
            b = data[i]
            raw |= (b & 0x7F) << shift
            i += 1
            if b < 0x80:
                return raw, i
            shift += 7

    def varint(self, pos: int, limit: int) -> tuple[int, int]:
        if pos < limit:
            b = self.data[pos]
            if b < 0x80:
                return (b >> 1) ^ -(b & 1), pos + 1
        raw, nxt = self.unsigned(pos, limit, 5, "varint")
        if raw > _UINT32_MAX:
            raise self.fail(f"varint at byte {self.position + pos} does not fit in 32 bits")
        return (raw >> 1) ^ -(raw & 1), nxt

    def varlong(self, pos: int, limit: int) -> tuple[int, int]:
        if pos < limit:
            b = self.data[pos]
            if b < 0x80:
                return (b >> 1) ^ -(b & 1), pos + 1
        raw, nxt = self.unsigned(pos, limit, 10, "varlong")
        if raw > _UINT64_MAX:
            raise self.fail(f"varlong at byte {self.position + pos} does not fit in 64 bits")
        return (raw >> 1) ^ -(raw & 1), nxt

    def field(self, pos: int, limit: int, name: str, nullable: bool) -> tuple[int, int]:
        """Reads a length-prefixed field's length; returns (start, end), end -1 for null."""
        at = self.position + pos
        length, pos = self.varint(pos, limit)
        if length < 0:
            if length == -1 and nullable:
                return pos, -1
            raise self.fail(
                f"{name} length {length} at byte {at} is "
                + ("below -1" if nullable else "negative (a header key may not be null)")
            )
        end = pos + length
        if end > limit:
            raise self.fail(
                f"{name} of {length} bytes at byte {at} overruns the record, which ends at "
                f"byte {self.position + limit}"
            )
        return pos, end


def _walk(
    data: Buffer, count: int, position: int, *, decode: bool, base_timestamp: int
) -> tuple[list[DecodedRecord], int, int]:
    view = data if isinstance(data, memoryview) else memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    reader = _Reader(view, position)
    end = len(view)
    pos = 0
    out: list[DecodedRecord] = []
    low, high = INT64_MAX, INT64_MIN
    for index in range(count):
        reader.index = index
        if pos >= end:
            raise reader.fail(
                f"the records end at byte {position + end} but the batch claims {count} records"
            )
        at = position + pos
        length, pos = reader.varint(pos, end)
        record_end = pos + length
        if length < 1 or record_end > end:
            raise reader.fail(
                f"length {length} at byte {at} does not fit the records, which end at byte "
                f"{position + end}"
            )
        pos += 1  # attributes: unused by v2 records (Kafka ignores them)
        at = position + pos
        timestamp_delta, pos = reader.varlong(pos, record_end)
        if not decode:
            timestamp = base_timestamp + timestamp_delta
            if not INT64_MIN <= timestamp <= INT64_MAX:
                raise reader.fail(
                    f"timestamp delta {timestamp_delta} at byte {at} puts the timestamp "
                    f"outside int64 (base timestamp {base_timestamp})"
                )
            if timestamp != NO_TIMESTAMP:
                if timestamp < low:
                    low = timestamp
                if timestamp > high:
                    high = timestamp
        at = position + pos
        offset_delta, pos = reader.varint(pos, record_end)
        if offset_delta != index and not decode:
            raise reader.fail(
                f"offset delta {offset_delta} at byte {at}, expected {index} (a produced "
                "batch numbers its records 0, 1, 2, ...)"
            )
        start, stop = reader.field(pos, record_end, "key", True)
        key = None if stop < 0 else bytes(view[start:stop]) if decode else None
        pos = start if stop < 0 else stop
        start, stop = reader.field(pos, record_end, "value", True)
        value = None if stop < 0 else bytes(view[start:stop]) if decode else None
        pos = start if stop < 0 else stop
        at = position + pos
        header_count, pos = reader.varint(pos, record_end)
        if header_count < 0:
            raise reader.fail(f"header count {header_count} at byte {at} is negative")
        headers: list[tuple[str, bytes | None]] = []
        for number in range(header_count):
            start, stop = reader.field(pos, record_end, f"header {number} key", False)
            try:
                header_key = str(view[start:stop], "utf-8")
            except UnicodeDecodeError:
                raise reader.fail(
                    f"header {number} key at byte {position + start} is not valid UTF-8"
                ) from None
            start, stop = reader.field(stop, record_end, f"header {number} value", True)
            pos = start if stop < 0 else stop
            if decode:
                headers.append((header_key, None if stop < 0 else bytes(view[start:stop])))
        if pos != record_end:
            raise reader.fail(
                f"length says the record ends at byte {position + record_end} but its fields "
                f"end at byte {position + pos}"
            )
        if decode:
            out.append((offset_delta, timestamp_delta, key, value, tuple(headers)))
    if pos != end:
        raise CorruptRecordError(
            f"{end - pos} bytes at byte {position + pos} follow the last of the batch's "
            f"{count} records"
        )
    if low > high:
        low = high = NO_TIMESTAMP
    return out, low, high


def validate_records(
    data: Buffer, count: int, base_timestamp: int, position: int
) -> tuple[int, int]:
    """Checks that ``data`` holds exactly ``count`` well-formed records numbered 0, 1, 2, ...
    (a produced batch's uncompressed record stream; ``position`` is where ``data`` starts,
    for the error messages) and returns the lowest and highest record timestamp (``base_timestamp``
    plus the delta), leaving out -1 ("no timestamp"); (-1, -1) when every record has none.

    Raises CorruptRecordError naming the record and the byte for: a length below 1 or past
    the stream, a varint longer than 5 bytes (varlong 10) or beyond 32 (64) bits or cut off
    by its record's end, a timestamp outside int64, an offset delta that is not the record's
    index, a key, value or header value length below -1 or past the record, a negative header
    count, a null or non-UTF-8 header key, fields that do not fill the record's length
    exactly, fewer records than ``count``, and bytes after the last record.
    """
    _, low, high = _walk(data, count, position, decode=False, base_timestamp=base_timestamp)
    return low, high


def decode_records(data: Buffer, count: int, position: int) -> list[DecodedRecord]:
    """The ``count`` records of ``data`` as (offset delta, timestamp delta, key, value,
    headers) tuples. The same checks as :func:`validate_records` but two: offset deltas may
    be any increasing numbers (a compacted batch keeps its records' original deltas), and
    timestamps are not summed (the caller adds the base timestamp)."""
    records, _, _ = _walk(data, count, position, decode=True, base_timestamp=0)
    return records


def decode_records_as(
    data: Buffer,
    count: int,
    position: int,
    cls: type[tuple[Any, ...]],
    prefix: tuple[Any, ...],
    suffix: tuple[Any, ...],
    base_offset: int,
    base_timestamp: int,
    stamp: int | None,
    start: int,
) -> list[Any]:
    """:func:`decode_records` (the same checks and errors), each record made an instance of
    the tuple type ``cls`` holding (``*prefix``, base_offset + offset delta, timestamp, key,
    value, headers, ``*suffix``): the timestamp is ``stamp`` unless it is None, else
    base_timestamp + timestamp delta. Records whose offset delta is below ``start`` are
    checked but left out. (The consumer makes its records with it: no tuple in between.)"""
    if type(prefix) is not tuple or type(suffix) is not tuple:
        raise TypeError(
            f"decode_records_as() argument 5 must be tuple, not {type(prefix).__name__}"
            if type(prefix) is not tuple
            else f"decode_records_as() argument 6 must be tuple, not {type(suffix).__name__}"
        )
    if not (isinstance(cls, type) and issubclass(cls, tuple)):
        raise TypeError(f"decode_records_as: cls must be a tuple type, not {cls!r}")
    if stamp is not None and type(stamp) is not int:
        raise TypeError(f"decode_records_as: stamp must be int or None, not {stamp!r}")
    records = decode_records(data, count, position)
    new = tuple.__new__
    if stamp is None:
        return [
            new(cls, (*prefix, base_offset + delta, base_timestamp + ts, key, value, hdrs, *suffix))
            for delta, ts, key, value, hdrs in records
            if delta >= start
        ]
    return [
        new(cls, (*prefix, base_offset + delta, stamp, key, value, hdrs, *suffix))
        for delta, _, key, value, hdrs in records
        if delta >= start
    ]


def _put_varint(out: bytearray, value: int) -> None:
    raw = (value << 1) ^ (value >> 63)
    if raw < 0x80:
        out.append(raw)
        return
    raw &= _UINT64_MAX
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)


def _as_bytes(data: Any, index: int, what: str) -> bytes | bytearray | None:
    if data is None or type(data) is bytes or type(data) is bytearray:
        return data
    if isinstance(data, memoryview):
        return data.tobytes()
    if isinstance(data, bytes | bytearray):
        return data
    raise TypeError(f"record {index}: {what} must be bytes or None, not {type(data).__name__}")


def _put_bytes(out: bytearray, data: bytes | bytearray | None) -> None:
    if data is None:
        out.append(1)  # zigzag(-1)
    else:
        _put_varint(out, len(data))
        out += data


def _encode(
    out: bytearray,
    index: int,
    offset_delta: int,
    timestamp_delta: int,
    key: Any,
    value: Any,
    headers: Any,
) -> None:
    if not INT64_MIN <= timestamp_delta <= INT64_MAX:
        raise ValueError(f"record {index}: timestamp delta {timestamp_delta} is outside int64")
    if not 0 <= offset_delta <= INT32_MAX:
        raise ValueError(f"record {index}: offset delta {offset_delta} is outside 0..{INT32_MAX}")
    key = _as_bytes(key, index, "key")
    value = _as_bytes(value, index, "value")
    body = bytearray(b"\x00")  # attributes
    _put_varint(body, timestamp_delta)
    _put_varint(body, offset_delta)
    _put_bytes(body, key)
    _put_bytes(body, value)
    try:
        pairs = list(headers)
    except TypeError:
        raise TypeError(
            f"record {index}: headers must be (str, bytes | None) pairs, not "
            f"{type(headers).__name__}"
        ) from None
    _put_varint(body, len(pairs))
    for pair in pairs:
        try:
            header_key, header_value = pair
        except (TypeError, ValueError):
            raise TypeError(
                f"record {index}: headers must be (str, bytes | None) pairs, not "
                f"{type(pair).__name__}"
            ) from None
        if type(header_key) is not str:
            raise TypeError(
                f"record {index}: header key must be str, not {type(header_key).__name__}"
            )
        _put_bytes(body, header_key.encode("utf-8"))
        _put_bytes(body, _as_bytes(header_value, index, "header value"))
    _put_varint(out, len(body))
    out += body


def encode_record(
    out: bytearray,
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | bytearray | memoryview | None,
    value: bytes | bytearray | memoryview | None,
    headers: Iterable[tuple[str, bytes | bytearray | memoryview | None]],
) -> None:
    """Appends one record to ``out``. Raises ValueError for a timestamp delta outside int64
    or an offset delta outside 0..2^31-1, TypeError for a key, value or header of the wrong
    type; ``out`` is unchanged when it raises."""
    if type(offset_delta) is not int or type(timestamp_delta) is not int:
        raise TypeError("record 0: offset and timestamp deltas must be int")
    _encode(out, 0, offset_delta, timestamp_delta, key, value, headers)


def encode_records(
    out: bytearray,
    records: Iterable[Sequence[Any]],
    base_timestamp: int,
    first_offset_delta: int,
    max_timestamp: int,
) -> int:
    """Appends (timestamp, key, value, headers) records to ``out`` with offset deltas
    ``first_offset_delta``, +1, ... and timestamps relative to ``base_timestamp``; returns
    the highest of ``max_timestamp`` and their timestamps. Errors as :func:`encode_record`,
    naming the record's index in ``records``; ``out`` is unchanged when it raises."""
    size = len(out)
    try:
        for index, record in enumerate(records):
            try:
                timestamp, key, value, headers = record
            except (TypeError, ValueError):
                raise TypeError(
                    f"record {index}: records must be (timestamp, key, value, headers) tuples, "
                    f"not {type(record).__name__}"
                ) from None
            if type(timestamp) is not int:
                raise TypeError(
                    f"record {index}: timestamp must be int, not {type(timestamp).__name__}"
                )
            if not INT64_MIN <= timestamp <= INT64_MAX:
                raise ValueError(f"record {index}: timestamp {timestamp} is outside int64")
            _encode(
                out,
                index,
                first_offset_delta + index,
                timestamp - base_timestamp,
                key,
                value,
                headers,
            )
            if timestamp > max_timestamp:
                max_timestamp = timestamp
    except BaseException:
        del out[size:]
        raise
    return max_timestamp
