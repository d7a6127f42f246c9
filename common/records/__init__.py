"""Kafka v2 record batches: header codec and validation (hot path), builder and decoder.

The broker's produce/fetch path touches only headers: :func:`split_batches` validates the
batches of a request (length, magic, CRC-32C), :func:`set_base_offset` assigns offsets in
place. :class:`RecordBatchBuilder` and :func:`decode_batch` / :func:`iter_records` encode and
decode individual records for clients and the convenience path.
"""

from raftka.common.records.batch import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    BatchHeader,
    BatchSpan,
    Buffer,
    CheckedBatches,
    Compression,
    TimestampType,
    check_batches,
    compute_crc,
    read_base_offset,
    read_batch_size,
    set_base_offset,
    set_partition_leader_epoch,
    split_batches,
    validate,
)
from raftka.common.records.builder import RecordBatchBuilder, build_batch
from raftka.common.records.compression import SUPPORTED_COMPRESSION, compress, decompress
from raftka.common.records.control import (
    ControlType,
    EndTxnMarker,
    build_end_txn_marker,
    is_end_txn_marker,
    parse_end_txn_marker,
)
from raftka.common.records.decoder import DecodedBatch, Record, decode_batch, iter_records
from raftka.common.records.errors import (
    CorruptRecordError,
    InvalidRecordError,
    InvalidTimestampError,
    RecordError,
    RecordTooLargeError,
    UnsupportedCompressionError,
)

__all__ = [
    "HEADER_SIZE",
    "LOG_OVERHEAD",
    "MAGIC",
    "SUPPORTED_COMPRESSION",
    "BatchHeader",
    "BatchSpan",
    "Buffer",
    "CheckedBatches",
    "Compression",
    "ControlType",
    "CorruptRecordError",
    "DecodedBatch",
    "EndTxnMarker",
    "InvalidRecordError",
    "InvalidTimestampError",
    "Record",
    "RecordBatchBuilder",
    "RecordError",
    "RecordTooLargeError",
    "TimestampType",
    "UnsupportedCompressionError",
    "build_batch",
    "build_end_txn_marker",
    "check_batches",
    "compress",
    "compute_crc",
    "decode_batch",
    "decompress",
    "is_end_txn_marker",
    "iter_records",
    "parse_end_txn_marker",
    "read_base_offset",
    "read_batch_size",
    "set_base_offset",
    "set_partition_leader_epoch",
    "split_batches",
    "validate",
]
