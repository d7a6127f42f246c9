"""Decodes the records of batches (the consumer and convenience path; per-record work)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
from raftka.common.records.errors import InvalidRecordError
from raftka.common.records.varint import read_varint, read_varlong


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
    data: Buffer = payload if codec is Compression.NONE else decompress(codec, payload)
    return DecodedBatch(header, tuple(_decode_records(header, data)))


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


def _decode_records(header: BatchHeader, data: Buffer) -> Iterator[Record]:
    base_offset = header.base_offset
    base_timestamp = header.base_timestamp
    log_append_time = header.timestamp_type is TimestampType.LOG_APPEND_TIME
    end = len(data)
    pos = 0
    for index in range(header.records_count):
        length, pos = read_varint(data, pos)
        record_end = pos + length
        if length < 1 or record_end > end:
            raise InvalidRecordError(
                f"batch at base offset {base_offset}: record {index} declares {length} bytes, "
                f"{end - pos} remain"
            )
        pos += 1  # record attributes: unused
        timestamp_delta, pos = read_varlong(data, pos)
        offset_delta, pos = read_varint(data, pos)
        key, pos = _read_bytes(data, pos, record_end)
        value, pos = _read_bytes(data, pos, record_end)
        header_count, pos = read_varint(data, pos)
        if header_count < 0:
            raise InvalidRecordError(
                f"record at offset delta {offset_delta}: negative header count"
            )
        headers: list[tuple[str, bytes | None]] = []
        for _ in range(header_count):
            raw_key, pos = _read_bytes(data, pos, record_end)
            if raw_key is None:
                raise InvalidRecordError(f"record at offset delta {offset_delta}: null header key")
            header_value, pos = _read_bytes(data, pos, record_end)
            try:
                header_key = raw_key.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidRecordError(
                    f"record at offset delta {offset_delta}: header key is not UTF-8"
                ) from exc
            headers.append((header_key, header_value))
        if pos != record_end:
            raise InvalidRecordError(
                f"record at offset delta {offset_delta}: length says {length} bytes, "
                f"fields use {length + pos - record_end}"
            )
        timestamp = header.max_timestamp if log_append_time else base_timestamp + timestamp_delta
        yield Record(base_offset + offset_delta, timestamp, key, value, tuple(headers))
    if pos != end:
        raise InvalidRecordError(
            f"batch at base offset {base_offset}: {end - pos} bytes follow the last of "
            f"{header.records_count} records"
        )


def _read_bytes(data: Buffer, pos: int, limit: int) -> tuple[bytes | None, int]:
    length, pos = read_varint(data, pos)
    if length < 0:
        if length != -1:
            raise InvalidRecordError(f"field at byte {pos} has negative length {length}")
        return None, pos
    end = pos + length
    if end > limit:
        raise InvalidRecordError(f"field at byte {pos} of {length} bytes overruns its record")
    return bytes(data[pos:end]), end
