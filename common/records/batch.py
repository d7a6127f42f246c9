"""The v2 (magic 2) record-batch header: parse, validate, rewrite in place, split a buffer.

Byte layout (big-endian; Kafka's v2 RecordBatch, KIP-98)::

    0  BaseOffset int64          27 BaseTimestamp int64
    8  BatchLength int32         35 MaxTimestamp int64
    12 PartitionLeaderEpoch int32  43 ProducerId int64
    16 Magic int8 (= 2)          51 ProducerEpoch int16
    17 CRC uint32 (CRC-32C)      53 BaseSequence int32
    21 Attributes int16          57 RecordsCount int32
    23 LastOffsetDelta int32     61 records (compressed as one stream when compressed)

The CRC covers bytes [21, end), so the base offset and the partition leader epoch can be
rewritten without recomputing it. Everything here is O(1) Python work per batch: one
``struct`` call for the header and one C call for the CRC.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

import crc32c

from raftka.common.records.errors import (
    CorruptRecordError,
    InvalidRecordError,
    RecordTooLargeError,
    UnsupportedCompressionError,
)

Buffer = bytes | bytearray | memoryview
"""Anything a batch can be read from."""

WritableBuffer = bytearray | memoryview
"""Anything a batch can be rewritten in place in (a memoryview must be writable)."""

MAGIC = 2
LOG_OVERHEAD = 12
"""BaseOffset + BatchLength: the bytes not counted by BatchLength."""
HEADER_SIZE = 61
"""Size of the v2 batch header (Kafka's RECORD_BATCH_OVERHEAD)."""
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD

BASE_OFFSET_POS = 0
BATCH_LENGTH_POS = 8
PARTITION_LEADER_EPOCH_POS = 12
MAGIC_POS = 16
CRC_POS = 17
ATTRIBUTES_POS = 21
LAST_OFFSET_DELTA_POS = 23
BASE_TIMESTAMP_POS = 27
MAX_TIMESTAMP_POS = 35
PRODUCER_ID_POS = 43
PRODUCER_EPOCH_POS = 51
BASE_SEQUENCE_POS = 53
RECORDS_COUNT_POS = 57
CRC_START = ATTRIBUTES_POS

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1
NO_TIMESTAMP = -1

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_FLAG = 0x10
CONTROL_FLAG = 0x20
DELETE_HORIZON_FLAG = 0x40

HEADER_STRUCT = struct.Struct(">qiibIhiqqqhii")
assert HEADER_STRUCT.size == HEADER_SIZE
_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")


class Compression(enum.IntEnum):
    """Attribute bits 0-2."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class TimestampType(enum.IntEnum):
    """Attribute bit 3."""

    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


class BatchHeader(NamedTuple):
    """The 61-byte header of one batch, fields in wire order.

    A NamedTuple rather than a dataclass: it is built on the hot path straight from
    ``struct.unpack_from`` (one C call), which a frozen dataclass's ``__init__`` is not.
    """

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @classmethod
    def parse(cls, buf: Buffer, pos: int = 0) -> BatchHeader:
        """Reads the header at ``pos`` without validating anything but its presence."""
        if len(buf) - pos < HEADER_SIZE:
            raise CorruptRecordError(
                f"batch at byte {pos}: truncated header, {max(len(buf) - pos, 0)} of "
                f"{HEADER_SIZE} bytes present"
            )
        return cls._make(HEADER_STRUCT.unpack_from(buf, pos))

    @property
    def size(self) -> int:
        """Total bytes of the batch, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression_id(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def compression(self) -> Compression:
        """The codec; raises UnsupportedCompressionError for ids 5-7."""
        return compression_from_id(self.attributes & COMPRESSION_MASK)

    @property
    def timestamp_type(self) -> TimestampType:
        if self.attributes & TIMESTAMP_TYPE_MASK:
            return TimestampType.LOG_APPEND_TIME
        return TimestampType.CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_FLAG)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_FLAG)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & DELETE_HORIZON_FLAG)


class BatchSpan(NamedTuple):
    """Where one validated batch sits in a larger buffer."""

    position: int
    size: int
    header: BatchHeader


def compression_from_id(codec_id: int) -> Compression:
    try:
        return Compression(codec_id)
    except ValueError:
        raise UnsupportedCompressionError(f"unknown compression codec id {codec_id}") from None


def make_attributes(
    compression: Compression = Compression.NONE,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    *,
    transactional: bool = False,
    control: bool = False,
) -> int:
    attributes = int(compression) & COMPRESSION_MASK
    if timestamp_type is TimestampType.LOG_APPEND_TIME:
        attributes |= TIMESTAMP_TYPE_MASK
    if transactional:
        attributes |= TRANSACTIONAL_FLAG
    if control:
        attributes |= CONTROL_FLAG
    return attributes


def compute_crc(buf: Buffer, pos: int = 0, size: int | None = None) -> int:
    """CRC-32C of bytes [pos + 21, pos + size) of the batch at ``pos``."""
    end = len(buf) if size is None else pos + size
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    return int(crc32c.crc32c(view[pos + CRC_START : end]))


def validate(buf: Buffer, pos: int = 0, *, max_batch_bytes: int | None = None) -> BatchHeader:
    """Checks the batch at ``pos`` and returns its header.

    Checks, in order: enough bytes for the magic byte and then the header, magic == 2, a
    plausible BatchLength, the size limit, that the whole batch is present, the CRC-32C,
    a known compression id, and non-negative LastOffsetDelta / RecordsCount. Bytes after the
    batch are ignored. Raises CorruptRecordError, InvalidRecordError, RecordTooLargeError or
    UnsupportedCompressionError, each naming the byte position of the batch.
    """
    avail = len(buf) - pos
    if avail <= MAGIC_POS:
        raise CorruptRecordError(
            f"batch at byte {pos}: truncated, {max(avail, 0)} bytes present, "
            f"a batch header needs {HEADER_SIZE}"
        )
    magic = buf[pos + MAGIC_POS]
    if magic != MAGIC:
        # Byte 16 is the magic in every message format, so this test is meaningful first.
        raise InvalidRecordError(
            f"batch at byte {pos}: magic is {magic}, only {MAGIC} is supported"
        )
    if avail < HEADER_SIZE:
        raise CorruptRecordError(
            f"batch at byte {pos}: truncated header, {avail} of {HEADER_SIZE} bytes present"
        )
    header = BatchHeader._make(HEADER_STRUCT.unpack_from(buf, pos))
    length = header.batch_length
    if length < MIN_BATCH_LENGTH:
        raise CorruptRecordError(
            f"batch at byte {pos}: batch length {length} is below the minimum {MIN_BATCH_LENGTH}"
        )
    size = length + LOG_OVERHEAD
    if max_batch_bytes is not None and size > max_batch_bytes:
        raise RecordTooLargeError(
            f"batch at byte {pos}: {size} bytes exceeds the maximum batch size {max_batch_bytes}"
        )
    if size > avail:
        raise CorruptRecordError(
            f"batch at byte {pos}: truncated, batch length says {size} bytes but only "
            f"{avail} are present"
        )
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    actual = crc32c.crc32c(view[pos + CRC_START : pos + size])
    if actual != header.crc:
        raise CorruptRecordError(
            f"batch at byte {pos} (base offset {header.base_offset}): CRC-32C mismatch, "
            f"stored 0x{header.crc:08x}, computed 0x{actual:08x}"
        )
    if header.attributes & COMPRESSION_MASK > Compression.ZSTD:
        raise UnsupportedCompressionError(
            f"batch at byte {pos}: unknown compression codec id "
            f"{header.attributes & COMPRESSION_MASK}"
        )
    if header.last_offset_delta < 0:
        raise InvalidRecordError(
            f"batch at byte {pos}: negative last offset delta {header.last_offset_delta}"
        )
    if header.records_count < 0:
        raise InvalidRecordError(
            f"batch at byte {pos}: negative records count {header.records_count}"
        )
    return header


def split_batches(buf: Buffer, *, max_batch_bytes: int | None = None) -> list[BatchSpan]:
    """Validates every batch of a buffer of concatenated batches and returns their spans.

    The batches must fill the buffer exactly: trailing bytes that do not form a whole batch
    raise CorruptRecordError. An empty buffer gives an empty list.
    """
    spans: list[BatchSpan] = []
    pos = 0
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    end = len(view)
    while pos < end:
        header = validate(view, pos, max_batch_bytes=max_batch_bytes)
        size = header.batch_length + LOG_OVERHEAD
        spans.append(BatchSpan(pos, size, header))
        pos += size
    return spans


class CheckedBatches(NamedTuple):
    """Concatenated batches whose framing and CRC-32C were checked once (by
    :func:`check_batches`, or by a validator that built it from such spans), with the span of
    each: what an append takes so that it does not check every CRC again.

    ``spans`` must describe ``data`` as it is (a caller that rewrites a batch after checking it
    updates its span's header to match).
    """

    data: Buffer
    spans: list[BatchSpan]


def check_batches(buf: Buffer, *, max_batch_bytes: int | None = None) -> CheckedBatches:
    """:func:`split_batches` (every batch validated: length, magic, CRC) kept with its buffer."""
    return CheckedBatches(buf, split_batches(buf, max_batch_bytes=max_batch_bytes))


def set_base_offset(buf: WritableBuffer, base_offset: int, pos: int = 0) -> None:
    """Rewrites the batch's base offset in place; the CRC stays valid."""
    _INT64.pack_into(buf, pos + BASE_OFFSET_POS, base_offset)


def set_partition_leader_epoch(buf: WritableBuffer, epoch: int, pos: int = 0) -> None:
    """Rewrites the batch's partition leader epoch in place; the CRC stays valid."""
    _INT32.pack_into(buf, pos + PARTITION_LEADER_EPOCH_POS, epoch)


def read_base_offset(buf: Buffer, pos: int = 0) -> int:
    return int(_INT64.unpack_from(buf, pos + BASE_OFFSET_POS)[0])


def read_batch_size(buf: Buffer, pos: int = 0) -> int:
    """Total size of the batch at ``pos`` from its BatchLength field (not validated)."""
    return int(_INT32.unpack_from(buf, pos + BATCH_LENGTH_POS)[0]) + LOG_OVERHEAD


def write_crc(buf: WritableBuffer, pos: int = 0, size: int | None = None) -> int:
    """Computes and stores the CRC of the batch at ``pos``; returns it."""
    crc = compute_crc(buf, pos, size)
    _UINT32.pack_into(buf, pos + CRC_POS, crc)
    return crc


_PRODUCER_STATE = struct.Struct(">qhi")


def set_producer_state(
    buf: WritableBuffer, producer_id: int, producer_epoch: int, base_sequence: int, pos: int = 0
) -> None:
    """Rewrites the producer id, epoch and base sequence of the batch at ``pos`` and its CRC
    (they are covered by it): how an idempotent producer stamps a batch when it is first sent."""
    _PRODUCER_STATE.pack_into(
        buf, pos + PRODUCER_ID_POS, producer_id, producer_epoch, base_sequence
    )
    write_crc(buf, pos)
