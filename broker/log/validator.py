"""Checks the batches a producer sent before a leader appends them (Kafka's LogValidator).

:func:`split_batches` checks each batch's length, magic and CRC-32C (one C call per batch),
and the producer rules below are a few integer tests per batch. Then every record of every
batch is walked by the record codec (:func:`~raftka.common.records.accel.validate_records`,
one C call per batch, or its pure-Python twin): framing, varints, the records count, offset
deltas 0, 1, 2, ..., timestamps within int64, key/value/header lengths, UTF-8 header keys,
no bytes left over. A compressed batch is decompressed first, with the topic's
``max.message.bytes`` as a hard limit on its output. A batch that fails is refused with
CorruptRecordError (CORRUPT_MESSAGE) naming the partition and the byte, and nothing of the
request is written: such a batch would stop every consumer at its offset. With
``message.timestamp.type=LogAppendTime`` each batch's timestamp-type bit and max timestamp are
rewritten in a copy and its CRC recomputed (again one C call).

CreateTime timestamps (KIP-937): neither a batch's first and max timestamps nor any record's
may be negative other than -1 ("no timestamp"); the lowest may lie at most
``message.timestamp.before.max.ms`` before the broker's clock and the highest at most
``message.timestamp.after.max.ms`` after it. Record timestamps come from the codec's walk (it
returns the lowest and highest), so this stays O(1) Python work per batch.

This is the only CRC check of a produced batch: the result carries the checked spans
(:class:`~raftka.common.records.batch.CheckedBatches`), which the segmented log appends
without checking them again.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from raftka.common.records import (
    SUPPORTED_COMPRESSION,
    BatchHeader,
    BatchSpan,
    Buffer,
    CheckedBatches,
    Compression,
    CorruptRecordError,
    InvalidRecordError,
    RecordError,
    RecordTooLargeError,
    UnsupportedCompressionError,
    accel,
    compress,
    decompress,
    split_batches,
)
from raftka.common.records.batch import (
    ATTRIBUTES_POS,
    BATCH_LENGTH_POS,
    COMPRESSION_MASK,
    CONTROL_FLAG,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAX_TIMESTAMP_POS,
    NO_PRODUCER_ID,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_FLAG,
    write_crc,
)
from raftka.common.records.errors import InvalidTimestampError

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
_SUPPORTED_CODEC_IDS = frozenset(int(codec) for codec in SUPPORTED_COMPRESSION)


NO_TIMESTAMP = -1
"""A record timestamp meaning "none"."""


@dataclass(frozen=True, slots=True)
class TimestampBounds:
    """The CreateTime timestamps a leader accepts at ``now_ms`` (KIP-937's topic configs)."""

    now_ms: int
    before_max_ms: int
    """``message.timestamp.before.max.ms``."""
    after_max_ms: int
    """``message.timestamp.after.max.ms``."""

    def check(self, header: BatchHeader, where: str) -> None:
        """Raises InvalidTimestampError, naming ``where`` and the bound, for a batch whose
        first or max timestamp is negative (other than -1) or out of bounds."""
        self.check_range(header.base_timestamp, header.max_timestamp, where)

    def check_range(self, first: int, last: int, where: str) -> None:
        """Raises InvalidTimestampError for a lowest timestamp ``first`` or highest ``last``
        (either -1 for none) that is negative or out of bounds."""
        if first < NO_TIMESTAMP or last < NO_TIMESTAMP:
            raise InvalidTimestampError(
                f"{where}: timestamp {min(first, last)} is negative; use milliseconds since "
                "the epoch, or -1 for no timestamp"
            )
        if last != NO_TIMESTAMP and last - self.now_ms > self.after_max_ms:
            raise InvalidTimestampError(
                f"{where}: timestamp {last} is {last - self.now_ms} ms after the broker's "
                f"clock ({self.now_ms}), more than the topic's message.timestamp.after.max.ms="
                f"{self.after_max_ms}; fix the producer's clock or raise the topic config"
            )
        if first != NO_TIMESTAMP and self.now_ms - first > self.before_max_ms:
            raise InvalidTimestampError(
                f"{where}: timestamp {first} is {self.now_ms - first} ms before the broker's "
                f"clock ({self.now_ms}), more than the topic's message.timestamp.before.max.ms="
                f"{self.before_max_ms}; fix the producer's clock or raise the topic config"
            )


@dataclass(frozen=True, slots=True)
class ValidatedBatches:
    """Batches ready for the log: the caller's bytes, or a rewritten copy."""

    checked: CheckedBatches
    """The bytes to append with their checked spans (headers as rewritten, if they were)."""
    record_count: int
    headers: tuple[BatchHeader, ...]
    """Each batch's header as sent (before any LogAppendTime rewrite)."""
    has_producer_ids: bool
    """Whether any batch carries a producer id (idempotent producer state applies)."""

    @property
    def data(self) -> Buffer:
        return self.checked.data

    @property
    def batch_count(self) -> int:
        return len(self.checked.spans)


MAX_DECOMPRESSED_BATCH_BYTES = 64 << 20
"""The hard limit on what one batch may decompress to when the leader recompresses it
(:func:`recompress_batches` alone; a produced batch is held to the topic's max.message.bytes)."""


def validate_produced_batches(
    buf: Buffer,
    *,
    max_message_bytes: int,
    log_append_time_ms: int | None,
    timestamps: TimestampBounds | None = None,
    where: str = "the partition",
    compression: Compression | None = None,
) -> ValidatedBatches:
    """Validates every batch of a produce request's records for one partition.

    Raises, naming the batch's byte position: CorruptRecordError (bad CRC, truncated or
    impossible length; records that do not walk (see the module's docstring), naming
    ``where`` and the byte; a compressed stream that does not decompress, or decompresses to
    more than ``max_message_bytes``), InvalidRecordError (no batches, magic other than 2, a control batch,
    a transactional batch without producer id, records count not matching the offset delta, a producer id without
    an epoch or a sequence), RecordTooLargeError (a batch larger than ``max_message_bytes``, the topic's
    ``max.message.bytes``), UnsupportedCompressionError (an unknown codec id),
    InvalidTimestampError (CreateTime topics, with ``timestamps``: see :class:`TimestampBounds`).

    When ``log_append_time_ms`` is given, every batch is marked LogAppendTime with that max
    timestamp (in a copy; the caller's buffer is never modified).

    ``compression`` is the topic's ``compression.type`` as a codec (None for ``producer``:
    batches keep the producer's). A batch with another codec is recompressed
    (:func:`recompress_batches`) from the stream its record check decompressed.
    """
    try:
        spans = split_batches(buf, max_batch_bytes=max_message_bytes)
    except RecordTooLargeError as exc:
        raise RecordTooLargeError(
            f"{exc.message} (the topic's max.message.bytes is {max_message_bytes})"
        ) from None
    if not spans:
        raise InvalidRecordError("the produce request holds no record batch for this partition")
    records = 0
    has_producer_ids = False
    check_timestamps = timestamps if log_append_time_ms is None else None
    for position, _size, header in spans:
        attributes = header.attributes
        codec = attributes & COMPRESSION_MASK
        if codec not in _SUPPORTED_CODEC_IDS:
            raise UnsupportedCompressionError(
                f"batch at byte {position}: compression {Compression(codec).name.lower()} "
                "is not supported; use none, gzip, snappy, lz4 or zstd"
            )
        if attributes & CONTROL_FLAG:
            raise InvalidRecordError(
                f"batch at byte {position}: clients may not write control batches"
            )
        if attributes & TRANSACTIONAL_FLAG and header.producer_id == NO_PRODUCER_ID:
            raise InvalidRecordError(
                f"batch at byte {position}: a transactional batch needs a producer id and "
                "epoch (from InitProducerId with a transactional id)"
            )
        count = header.records_count
        if count < 1 or header.last_offset_delta != count - 1:
            raise InvalidRecordError(
                f"batch at byte {position}: records count {count} does not match last offset "
                f"delta {header.last_offset_delta} (a batch needs at least one record)"
            )
        if header.producer_id != NO_PRODUCER_ID:
            if header.producer_id < 0 or header.producer_epoch < 0 or header.base_sequence < 0:
                raise InvalidRecordError(
                    f"batch at byte {position}: producer id {header.producer_id} with invalid "
                    f"epoch {header.producer_epoch} or base sequence {header.base_sequence}"
                )
            has_producer_ids = True
        if check_timestamps is not None:
            check_timestamps.check(header, f"{where}, batch at byte {position}")
        records += count
    # Decompressed streams are kept (up to MAX_DECOMPRESSED_BATCH_BYTES in all) only for the
    # batches a topic's compression.type will recompress, which then need not decompress again.
    streams: dict[int, Buffer] = {}
    kept = 0
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    for index, (position, size, header) in enumerate(spans):
        low, high, stream = check_records(
            view,
            position,
            size,
            header,
            max_message_bytes=max_message_bytes,
            where=where,
            stored_codec=compression,
        )
        if check_timestamps is not None:
            check_timestamps.check_range(low, high, f"{where}, batch at byte {position}")
        if (
            stream is not None
            and compression is not None
            and header.attributes & COMPRESSION_MASK != compression
            and kept + len(stream) <= MAX_DECOMPRESSED_BATCH_BYTES
        ):
            streams[index] = stream
            kept += len(stream)
    headers = tuple(span.header for span in spans)
    checked = CheckedBatches(buf, spans)
    if compression is not None and any(
        span.header.attributes & COMPRESSION_MASK != compression for span in spans
    ):
        checked = recompress_batches(
            checked, compression, max_message_bytes=max_message_bytes, streams=streams
        )
        buf, spans = checked
    if log_append_time_ms is not None:
        copy = bytearray(buf)
        stamped: list[BatchSpan] = []
        for position, size, header in spans:
            attributes = header.attributes | TIMESTAMP_TYPE_MASK
            _INT16.pack_into(copy, position + ATTRIBUTES_POS, attributes)
            _INT64.pack_into(copy, position + MAX_TIMESTAMP_POS, log_append_time_ms)
            crc = write_crc(copy, position, size)
            stamped.append(
                BatchSpan(
                    position,
                    size,
                    header._replace(
                        attributes=attributes, max_timestamp=log_append_time_ms, crc=crc
                    ),
                )
            )
        checked = CheckedBatches(copy, stamped)
    return ValidatedBatches(checked, records, headers, has_producer_ids)


def check_records(
    view: memoryview,
    position: int,
    size: int,
    header: BatchHeader,
    *,
    max_message_bytes: int,
    where: str,
    stored_codec: Compression | None = None,
) -> tuple[int, int, bytes | None]:
    """Walks every record of the batch at ``position`` (one codec call) and returns its
    lowest and highest record timestamp (-1 for none) and, for a compressed batch, the
    decompressed record stream (None for an uncompressed one).

    A compressed stream is decompressed with ``max_message_bytes`` as a hard output limit.
    Raises CorruptRecordError naming ``where``, the batch's byte and the bad record's byte
    (inside the batch, or inside the decompressed stream), or RecordTooLargeError for a
    stream past the limit when ``stored_codec`` is NONE (stored uncompressed, the batch
    would be too large: that is its honest error, not corruption)."""
    codec = header.attributes & COMPRESSION_MASK
    payload = view[position + HEADER_SIZE : position + size]
    count = header.records_count
    if codec == Compression.NONE:
        try:
            low, high = accel.validate_records(payload, count, header.base_timestamp, HEADER_SIZE)
        except CorruptRecordError as exc:
            raise CorruptRecordError(
                f"{where}, batch at byte {position} (positions below count from the batch's "
                f"first byte): {exc.message}"
            ) from None
        return low, high, None
    name = Compression(codec).name.lower()
    try:
        stream = decompress(Compression(codec), payload, max_output=max_message_bytes)
    except RecordTooLargeError:
        if stored_codec is Compression.NONE:
            raise RecordTooLargeError(
                f"{where}, batch at byte {position}: its {name} records decompress to more "
                f"than {max_message_bytes} bytes, so recompressed with none (the topic's "
                f"compression.type) it exceeds the topic's max.message.bytes "
                f"{max_message_bytes}; send smaller batches"
            ) from None
        raise CorruptRecordError(
            f"{where}, batch at byte {position}: its {name} records decompress to more than "
            f"{max_message_bytes} bytes, the topic's max.message.bytes (the limit on what one "
            "batch may decompress to); send smaller batches"
        ) from None
    except CorruptRecordError as exc:
        raise CorruptRecordError(f"{where}, batch at byte {position}: {exc.message}") from None
    try:
        low, high = accel.validate_records(stream, count, header.base_timestamp, 0)
    except CorruptRecordError as exc:
        raise CorruptRecordError(
            f"{where}, batch at byte {position}: its {name} records, decompressed to "
            f"{len(stream)} bytes (positions below count in them): {exc.message}"
        ) from None
    return low, high, stream


def recompress_batches(
    checked: CheckedBatches,
    codec: Compression,
    *,
    max_message_bytes: int,
    streams: Mapping[int, Buffer] | None = None,
) -> CheckedBatches:
    """The batches with every one not already in ``codec`` recompressed with it (a topic's
    ``compression.type``), in a new buffer. Only the record stream is decompressed (up to
    MAX_DECOMPRESSED_BATCH_BYTES) and compressed again: the records inside, and every header
    field but the codec bits, the length and the CRC (offset deltas, timestamps, producer id,
    epoch and sequence) stay as the producer sent them. Raises CorruptRecordError for a
    stream that does not decompress, RecordTooLargeError when it decompresses past the limit
    or the rebuilt batch exceeds ``max_message_bytes``. ``streams`` holds record streams
    already decompressed (by :func:`check_records`), by the batch's index in the spans."""
    data = checked.data
    view = data if isinstance(data, memoryview) else memoryview(data)
    out = bytearray()
    spans: list[BatchSpan] = []
    for index, (position, size, header) in enumerate(checked.spans):
        start = len(out)
        source = header.attributes & COMPRESSION_MASK
        if source == codec:
            out += view[position : position + size]
            spans.append(BatchSpan(start, size, header))
            continue
        payload = view[position + HEADER_SIZE : position + size]
        known = None if streams is None else streams.get(index)
        try:
            records = (
                known
                if known is not None
                else decompress(
                    Compression(source), payload, max_output=MAX_DECOMPRESSED_BATCH_BYTES
                )
            )
        except RecordError as exc:
            raise type(exc)(f"batch at byte {position}: {exc.message}") from None
        body = compress(codec, records)
        new_size = HEADER_SIZE + len(body)
        if new_size > max_message_bytes:
            raise RecordTooLargeError(
                f"batch at byte {position}: {new_size} bytes once recompressed with "
                f"{codec.name.lower()} (the topic's compression.type), above the topic's "
                f"max.message.bytes {max_message_bytes}; send smaller batches"
            )
        attributes = (header.attributes & ~COMPRESSION_MASK) | int(codec)
        rebuilt = header._replace(batch_length=new_size - LOG_OVERHEAD, attributes=attributes)
        out += view[position : position + HEADER_SIZE]
        out += body
        _INT32.pack_into(out, start + BATCH_LENGTH_POS, rebuilt.batch_length)
        _INT16.pack_into(out, start + ATTRIBUTES_POS, attributes)
        crc = write_crc(out, start, new_size)
        spans.append(BatchSpan(start, new_size, rebuilt._replace(crc=crc)))
    return CheckedBatches(out, spans)
