"""Decodes the records of batches (the consumer and convenience path).

The record stream is walked by the record codec (:mod:`~raftka.common.records.accel`: one C
call per batch, or its pure-Python twin); what stays per record here is building the
:class:`Record` objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
from raftka.common.records.errors import CorruptRecordError, InvalidRecordError


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


def decode_batch(batch: Buffer, pos: int = 0, *, verify: bool = True) -> DecodedBatch:
    """Decodes the batch at ``pos`` (validating it first unless ``verify`` is False)."""
    header = validate(batch, pos) if verify else BatchHeader.parse(batch, pos)
    view = batch if isinstance(batch, memoryview) else memoryview(batch)
    payload = view[pos + HEADER_SIZE : pos + header.size]
    codec = header.compression
    if codec is Compression.NONE:
        return DecodedBatch(header, _decode_records(header, payload, HEADER_SIZE))
    return DecodedBatch(header, _decode_records(header, decompress(codec, payload), 0))


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


def _decode_records(header: BatchHeader, data: Buffer, position: int) -> tuple[Record, ...]:
    """The records of ``data`` (the batch's record stream, which starts at byte ``position``
    of the batch when uncompressed, or is the decompressed stream with ``position`` 0)."""
    base_offset = header.base_offset
    try:
        records = accel.decode_records(data, header.records_count, position)
    except CorruptRecordError as exc:
        where = "" if position else "decompressed "
        raise InvalidRecordError(
            f"batch at base offset {base_offset} ({where}byte positions): {exc.message}"
        ) from None
    if header.timestamp_type is TimestampType.LOG_APPEND_TIME:
        stamp = header.max_timestamp
        return tuple(
            Record(base_offset + offset_delta, stamp, key, value, headers)
            for offset_delta, _, key, value, headers in records
        )
    base_timestamp = header.base_timestamp
    return tuple(
        Record(base_offset + offset_delta, base_timestamp + timestamp_delta, key, value, headers)
        for offset_delta, timestamp_delta, key, value, headers in records
    )
