"""Encodes records into one v2 batch (the producer and convenience path).

This is per-record Python work by nature; the broker's hot path never uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftka.common.records.batch import (
    HEADER_SIZE,
    HEADER_STRUCT,
    LOG_OVERHEAD,
    MAGIC,
    NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    Compression,
    TimestampType,
    make_attributes,
    write_crc,
)
from raftka.common.records.compression import check_supported, compress
from raftka.common.records.errors import InvalidRecordError
from raftka.common.records.varint import INT32_MAX, write_varint, write_varlong

RecordHeaders = Sequence[tuple[str, bytes | None]]
"""Record headers: (key, value) pairs; keys are UTF-8 strings, values may be null."""


class RecordBatchBuilder:
    """Accumulates records and encodes them into one batch.

    Offset deltas are consecutive from 0 unless given explicitly (strictly increasing, as
    after compaction). The base timestamp is the first record's timestamp.
    """

    def __init__(
        self,
        *,
        compression: Compression = Compression.NONE,
        base_offset: int = 0,
        partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = NO_PRODUCER_EPOCH,
        base_sequence: int = NO_SEQUENCE,
        transactional: bool = False,
        control: bool = False,
        timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    ) -> None:
        check_supported(compression)
        self._compression = compression
        self._base_offset = base_offset
        self._partition_leader_epoch = partition_leader_epoch
        self._producer_id = producer_id
        self._producer_epoch = producer_epoch
        self._base_sequence = base_sequence
        self._attributes = make_attributes(
            compression, timestamp_type, transactional=transactional, control=control
        )
        self._records = bytearray()
        self._count = 0
        self._last_offset_delta = -1
        self._base_timestamp: int | None = None
        self._max_timestamp = -1

    @property
    def record_count(self) -> int:
        return self._count

    @property
    def uncompressed_size(self) -> int:
        """Bytes of the batch so far if built without compression."""
        return HEADER_SIZE + len(self._records)

    def append(
        self,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: RecordHeaders = (),
        *,
        offset_delta: int | None = None,
    ) -> int:
        """Adds one record; returns its offset delta."""
        if offset_delta is None:
            offset_delta = self._last_offset_delta + 1
        elif offset_delta <= self._last_offset_delta:
            raise ValueError(
                f"offset delta {offset_delta} is not above the previous {self._last_offset_delta}"
            )
        if offset_delta > INT32_MAX:
            raise ValueError(f"offset delta {offset_delta} does not fit in int32")
        if self._base_timestamp is None:
            self._base_timestamp = timestamp
        body = bytearray(b"\x00")  # record attributes: unused
        write_varlong(body, timestamp - self._base_timestamp)
        write_varint(body, offset_delta)
        _write_bytes(body, key)
        _write_bytes(body, value)
        write_varint(body, len(headers))
        for header_key, header_value in headers:
            _write_bytes(body, header_key.encode("utf-8"))
            _write_bytes(body, header_value)
        write_varint(self._records, len(body))
        self._records += body
        self._count += 1
        self._last_offset_delta = offset_delta
        self._max_timestamp = max(self._max_timestamp, timestamp)
        return offset_delta

    def build(self) -> bytearray:
        """Encodes the batch (CRC included). Returns a bytearray so offsets can be rewritten."""
        if self._count == 0:
            raise InvalidRecordError("cannot build a batch with no records")
        payload: bytes | bytearray = self._records
        if self._compression is not Compression.NONE:
            payload = compress(self._compression, self._records)
        size = HEADER_SIZE + len(payload)
        out = bytearray(size)
        base_timestamp = self._base_timestamp if self._base_timestamp is not None else -1
        HEADER_STRUCT.pack_into(
            out,
            0,
            self._base_offset,
            size - LOG_OVERHEAD,
            self._partition_leader_epoch,
            MAGIC,
            0,
            self._attributes,
            self._last_offset_delta,
            base_timestamp,
            self._max_timestamp,
            self._producer_id,
            self._producer_epoch,
            self._base_sequence,
            self._count,
        )
        out[HEADER_SIZE:] = payload
        write_crc(out)
        return out


def _write_bytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        write_varint(out, -1)
    else:
        write_varint(out, len(data))
        out += data


def build_batch(
    records: Sequence[tuple[int, bytes | None, bytes | None, RecordHeaders]],
    *,
    compression: Compression = Compression.NONE,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    transactional: bool = False,
    control: bool = False,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
) -> bytearray:
    """One-shot helper: ``records`` are (timestamp, key, value, headers) tuples."""
    builder = RecordBatchBuilder(
        compression=compression,
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        transactional=transactional,
        control=control,
        timestamp_type=timestamp_type,
    )
    for timestamp, key, value, headers in records:
        builder.append(timestamp, key, value, headers)
    return builder.build()
