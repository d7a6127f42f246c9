"""Encodes records into one v2 batch (the producer and convenience path).

The record bytes come from the record codec (:mod:`~raftka.common.records.accel`: one C call
per record in :meth:`RecordBatchBuilder.append`, one per call in
:meth:`RecordBatchBuilder.extend`, with the pure-Python codec as fallback); the header is one
``struct`` call and the CRC one C call per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

from raftka.common.records import accel
from raftka.common.records.batch import (
    COMPRESSION_MASK,
    DELETE_HORIZON_FLAG,
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
from raftka.common.records.varint import INT32_MAX

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
        base_timestamp: int | None = None,
        max_timestamp: int | None = None,
        last_offset_delta: int | None = None,
        delete_horizon: bool = False,
    ) -> None:
        """The last four rewrite a batch as the log cleaner does: ``base_timestamp`` is what
        record timestamps are stored relative to (default: the first record's), and with
        ``delete_horizon`` it is the batch's delete horizon (attribute bit 0x40);
        ``max_timestamp`` and ``last_offset_delta`` keep the original batch's values (a batch
        that lost records still spans its offsets)."""
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
        if delete_horizon:
            self._attributes |= DELETE_HORIZON_FLAG
        self._records = bytearray(HEADER_SIZE)
        """The header's room (written by build()), then the encoded records."""
        self._shared = False
        """build() handed ``_records`` out as the batch: copy it before changing it again."""
        self._count = 0
        self._last_offset_delta = -1
        self._base_timestamp: int | None = base_timestamp
        self._max_timestamp = -1
        self._max_timestamp_override = max_timestamp
        self._last_offset_delta_override = last_offset_delta

    @property
    def record_count(self) -> int:
        return self._count

    @property
    def uncompressed_size(self) -> int:
        """Bytes of the batch so far if built without compression."""
        return len(self._records)

    def _writable(self) -> bytearray:
        if self._shared:  # a batch built before: leave it as it was returned
            self._records = bytearray(self._records)
            self._shared = False
        return self._records

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
        accel.encode_record(
            self._writable(), offset_delta, timestamp - self._base_timestamp, key, value, headers
        )
        self._count += 1
        self._last_offset_delta = offset_delta
        if timestamp > self._max_timestamp:
            self._max_timestamp = timestamp
        return offset_delta

    def extend(
        self, records: Sequence[tuple[int, bytes | None, bytes | None, RecordHeaders]]
    ) -> int:
        """Adds (timestamp, key, value, headers) records with consecutive offset deltas in
        one codec call; returns the offset delta of the first. Raises as :meth:`append` does,
        naming the record's index, and then adds none of them."""
        if not records:
            return self._last_offset_delta + 1
        return self._extend(records, len(records), _first_timestamp(records))

    def extend_columns(
        self,
        timestamps: Sequence[int],
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
        headers: Sequence[RecordHeaders] | None = None,
    ) -> int:
        """:meth:`extend` over columns of equal length (``headers`` None: no record has any),
        with no tuple made per record (the producer's batches are kept as columns)."""
        count = len(timestamps)
        if (
            len(keys) != count
            or len(values) != count
            or (headers is not None and len(headers) != count)
        ):
            raise ValueError(
                f"columns of different lengths: {count} timestamps, {len(keys)} keys, "
                f"{len(values)} values"
                + (f", {len(headers)} headers" if headers is not None else "")
            )
        if not count:
            return self._last_offset_delta + 1
        first_timestamp = timestamps[0]
        if type(first_timestamp) is not int:
            raise TypeError(
                f"record 0: timestamp must be int, not {type(first_timestamp).__name__}"
            )
        columns = repeat(()) if headers is None else headers
        records = zip(timestamps, keys, values, columns, strict=False)  # (lengths checked)
        return self._extend(records, count, first_timestamp)

    def _extend(self, records: Iterable[Sequence[Any]], count: int, first_timestamp: int) -> int:
        first = self._last_offset_delta + 1
        if self._base_timestamp is None:
            self._base_timestamp = first_timestamp
        self._max_timestamp = accel.encode_records(
            self._writable(), records, self._base_timestamp, first, self._max_timestamp
        )
        self._count += count
        self._last_offset_delta = first + count - 1
        return first

    def build(self) -> bytearray:
        """Encodes the batch (CRC included). Returns a bytearray so offsets can be rewritten.
        Uncompressed, the batch is the builder's own buffer (the records were encoded behind
        the header's room): nothing is copied, and a later append copies it first."""
        if self._count == 0:
            raise InvalidRecordError("cannot build a batch with no records")
        if self._compression is Compression.NONE:
            out = self._records
            self._shared = True
        else:
            with memoryview(self._records) as view:
                payload = compress(self._compression, view[HEADER_SIZE:])
            out = bytearray(HEADER_SIZE + len(payload))
            out[HEADER_SIZE:] = payload
        size = len(out)
        base_timestamp = self._base_timestamp if self._base_timestamp is not None else -1
        last_offset_delta = self._last_offset_delta
        if self._last_offset_delta_override is not None:
            if self._last_offset_delta_override < last_offset_delta:
                raise ValueError(
                    f"last offset delta {self._last_offset_delta_override} is below the last "
                    f"record's {last_offset_delta}"
                )
            last_offset_delta = self._last_offset_delta_override
        max_timestamp = self._max_timestamp
        if self._max_timestamp_override is not None:
            max_timestamp = self._max_timestamp_override
        HEADER_STRUCT.pack_into(
            out,
            0,
            self._base_offset,
            size - LOG_OVERHEAD,
            self._partition_leader_epoch,
            MAGIC,
            0,
            self._attributes,
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            self._producer_id,
            self._producer_epoch,
            self._base_sequence,
            self._count,
        )
        write_crc(out)
        return out


def build_empty_batch(
    *,
    base_offset: int,
    last_offset_delta: int,
    partition_leader_epoch: int,
    attributes: int = 0,
    base_timestamp: int = -1,
    max_timestamp: int = -1,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
) -> bytearray:
    """A header-only batch (no records) spanning offsets base_offset..base_offset +
    last_offset_delta, as the log cleaner writes where all records of a span were removed
    (Kafka's ``writeEmptyHeader``). The compression bits of ``attributes`` are cleared: there
    is no payload to decompress."""
    out = bytearray(HEADER_SIZE)
    HEADER_STRUCT.pack_into(
        out,
        0,
        base_offset,
        HEADER_SIZE - LOG_OVERHEAD,
        partition_leader_epoch,
        MAGIC,
        0,
        attributes & ~COMPRESSION_MASK,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        0,
    )
    write_crc(out)
    return out


def _first_timestamp(records: Sequence[Any]) -> int:
    """The first record's timestamp (the batch's base timestamp); the codec checks the rest."""
    try:
        timestamp = records[0][0]
    except (TypeError, IndexError, KeyError):
        raise TypeError(
            "record 0: records must be (timestamp, key, value, headers) tuples, not "
            f"{type(records[0]).__name__}"
        ) from None
    if type(timestamp) is not int:
        raise TypeError(f"record 0: timestamp must be int, not {type(timestamp).__name__}")
    return timestamp


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
    builder.extend(records)
    return builder.build()
