"""Decodes the records of batches (the consumer and convenience path).

The record stream is walked by the record codec (:mod:`~raftka.common.records.accel`: one C
call per batch, or its pure-Python twin): :func:`decode_raw` hands out its tuples as they
are, :func:`decode_as` has it make the caller's own named tuples directly (the consumer's
``ConsumerRecord``: no tuple in between), :func:`decode_batch` builds :class:`Record`
objects. A compressed stream is decompressed with a hard output
limit, so a damaged or hostile stored batch cannot take a reader's memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from raftka.common.records import accel
from raftka.common.records.batch import (
    HEADER_SIZE,
    BatchHeader,
    Buffer,
    Compression,
    TimestampType,
    split_batches,
    validate,
)
from raftka.common.records.compression import decompress
from raftka.common.records.errors import CorruptRecordError, InvalidRecordError, RecordError
from raftka.common.records.pycodec import DecodedRecord

T = TypeVar("T", bound=tuple[Any, ...])


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record with its absolute offset and timestamp."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    header: BatchHeader
    records: tuple[Record, ...]


MAX_DECODED_STREAM_BYTES = 64 << 20
"""What one compressed batch may decompress to when it is decoded (unless the caller gives
another bound): new batches were checked against their topic's ``max.message.bytes`` when
they were produced, so only a damaged or hostile stored batch comes near it."""


class RawRecords(NamedTuple):
    """A batch's records as the codec returns them: (offset delta, timestamp delta, key,
    value, headers) tuples, and what turns them into absolute offsets and timestamps."""

    header: BatchHeader
    records: list[DecodedRecord]
    base_offset: int
    base_timestamp: int
    """Add a record's timestamp delta to this, unless ``log_append_time`` is set."""
    log_append_time: int | None
    """The batch's max timestamp when it is LogAppendTime (every record's timestamp)."""


def decode_raw(
    batch: Buffer, pos: int = 0, *, max_output: int = MAX_DECODED_STREAM_BYTES
) -> RawRecords:
    """The records of the batch at ``pos`` as the codec's tuples (no per-record object is
    built here; the consumer uses :func:`decode_as`, which makes its records directly). The header is parsed, not checked (CRC and length were
    checked when the fetch was split into batches). A stream that does not decode raises
    InvalidRecordError, one that does not decompress CorruptRecordError, one that decompresses
    past ``max_output`` bytes RecordTooLargeError, each naming the batch."""
    header = BatchHeader.parse(batch, pos)
    records = _decode_payload(
        batch,
        pos,
        header,
        max_output,
        lambda data, position: accel.decode_records(data, header.records_count, position),
    )
    log_append = header.timestamp_type is TimestampType.LOG_APPEND_TIME
    return RawRecords(
        header,
        records,
        header.base_offset,
        header.base_timestamp,
        header.max_timestamp if log_append else None,
    )


def decode_as(
    batch: Buffer,
    pos: int,
    cls: type[T],
    prefix: tuple[Any, ...],
    suffix: tuple[Any, ...],
    start: int = 0,
    *,
    max_output: int = MAX_DECODED_STREAM_BYTES,
) -> list[T]:
    """The records of the batch at ``pos`` made instances of the tuple type ``cls`` in one
    codec call (``accel.decode_records_as``): each holds (``*prefix``, offset, timestamp, key,
    value, headers, ``*suffix``), with absolute offsets and timestamps; records whose offset
    delta is below ``start`` are left out. Checks and errors as :func:`decode_raw`."""
    header = BatchHeader.parse(batch, pos)
    log_append = header.timestamp_type is TimestampType.LOG_APPEND_TIME

    def decode(data: Buffer, position: int) -> list[Any]:
        return accel.decode_records_as(
            data,
            header.records_count,
            position,
            cls,
            prefix,
            suffix,
            header.base_offset,
            header.base_timestamp,
            header.max_timestamp if log_append else None,
            start,
        )

    return _decode_payload(batch, pos, header, max_output, decode)


def decode_batch(
    batch: Buffer,
    pos: int = 0,
    *,
    verify: bool = True,
    max_output: int = MAX_DECODED_STREAM_BYTES,
) -> DecodedBatch:
    """Decodes the batch at ``pos`` (validating it first unless ``verify`` is False); a
    compressed stream may decompress to at most ``max_output`` bytes."""
    if verify:
        validate(batch, pos)
    raw = decode_raw(batch, pos, max_output=max_output)
    base, stamp = raw.base_offset, raw.log_append_time
    if stamp is not None:
        records = tuple(
            Record(base + delta, stamp, key, value, headers)
            for delta, _, key, value, headers in raw.records
        )
    else:
        first = raw.base_timestamp
        records = tuple(
            Record(base + delta, first + ts_delta, key, value, headers)
            for delta, ts_delta, key, value, headers in raw.records
        )
    return DecodedBatch(raw.header, records)


def iter_records(buf: Buffer, *, verify: bool = True) -> Iterator[Record]:
    """Yields every record of a buffer of one or more concatenated batches, in order."""
    if verify:
        for span in split_batches(buf):
            yield from decode_batch(buf, span.position, verify=False).records
        return
    pos = 0
    while pos < len(buf):
        decoded = decode_batch(buf, pos, verify=False)
        yield from decoded.records
        pos += decoded.header.size


def _decode_payload(
    batch: Buffer,
    pos: int,
    header: BatchHeader,
    max_output: int,
    decode: Callable[[Buffer, int], list[Any]],
) -> list[Any]:
    """``decode(stream, position)`` of the batch's record stream, which starts at byte
    ``position`` of the batch when uncompressed, or is the decompressed stream (at most
    ``max_output`` bytes) with ``position`` 0; errors name the batch."""
    view = batch if isinstance(batch, memoryview) else memoryview(batch)
    payload = view[pos + HEADER_SIZE : pos + header.size]
    codec = header.compression
    if codec is Compression.NONE:
        stream: Buffer = payload
        position = HEADER_SIZE
    else:
        try:
            stream = decompress(codec, payload, max_output=max_output)
        except RecordError as exc:
            raise type(exc)(f"batch at base offset {header.base_offset}: {exc.message}") from None
        position = 0
    try:
        return decode(stream, position)
    except CorruptRecordError as exc:
        where = "" if position else "decompressed "
        raise InvalidRecordError(
            f"batch at base offset {header.base_offset} ({where}byte positions): {exc.message}"
        ) from None
