"""Turning the bytes handed to an append into what a segment writes (pure, no I/O).

All checks happen here, before anything is written: every batch is validated (length, magic,
CRC, size limit), and its offsets are either assigned or checked. Only headers are touched.
Batches handed over as :class:`~raftka.common.records.batch.CheckedBatches` were validated by
the caller: their CRCs are not computed again (only the size limit is checked).
"""

from __future__ import annotations

from dataclasses import dataclass

from raftka.common.records.batch import (
    Buffer,
    CheckedBatches,
    set_base_offset,
    set_partition_leader_epoch,
    split_batches,
)
from raftka.common.records.errors import InvalidRecordError, RecordTooLargeError
from raftka.common.storage.errors import UnexpectedAppendOffsetError
from raftka.common.storage.segment import SegmentEntry

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


@dataclass(frozen=True, slots=True)
class PreparedAppend:
    data: Buffer
    """The bytes to write (the caller's, or a copy with rewritten headers)."""
    entries: list[SegmentEntry]
    next_offset: int
    """Log end offset after the append."""
    max_timestamp: int


def prepare_append(
    batch: Buffer | CheckedBatches,
    next_offset: int,
    *,
    assign_offsets: bool,
    leader_epoch: int | None,
    max_batch_bytes: int,
) -> PreparedAppend:
    """Validates the concatenated batches in ``batch`` for an append at ``next_offset``.

    With ``assign_offsets`` the batches must be dense (records_count == last_offset_delta + 1
    >= 1) and their base offsets are rewritten in a copy; otherwise they must carry
    consecutive offsets from ``next_offset`` (UnexpectedAppendOffsetError). ``leader_epoch``,
    when given, is stamped into a copy. The caller's buffer is never modified.
    ``CheckedBatches`` are trusted to be valid and to match their spans (no CRC is computed).
    """
    if isinstance(batch, CheckedBatches):
        view = memoryview(batch.data)
        spans = batch.spans
        for position, size, _header in spans:
            if size > max_batch_bytes:
                raise RecordTooLargeError(
                    f"batch at byte {position}: {size} bytes exceeds the maximum batch size "
                    f"{max_batch_bytes}"
                )
    else:
        view = memoryview(batch)
        spans = split_batches(view, max_batch_bytes=max_batch_bytes)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if not spans:
        raise InvalidRecordError("append needs at least one record batch, got 0 bytes")
    if leader_epoch is not None and not _INT32_MIN <= leader_epoch <= _INT32_MAX:
        raise ValueError(f"leader epoch {leader_epoch} does not fit in int32")
    entries: list[SegmentEntry] = []
    max_timestamp = -1
    for i, (position, size, header) in enumerate(spans):
        if assign_offsets:
            if header.records_count < 1 or header.last_offset_delta != header.records_count - 1:
                raise InvalidRecordError(
                    f"batch {i} at byte {position}: records count {header.records_count} "
                    f"does not match last offset delta {header.last_offset_delta}"
                )
        elif header.base_offset != next_offset:
            raise UnexpectedAppendOffsetError(next_offset, header.base_offset, i)
        entries.append(SegmentEntry(position, size, next_offset, header.max_timestamp))
        if header.max_timestamp > max_timestamp:
            max_timestamp = header.max_timestamp
        next_offset += header.last_offset_delta + 1
    data: Buffer = view
    if assign_offsets or leader_epoch is not None:
        writable = bytearray(view)
        for entry in entries:
            if assign_offsets:
                set_base_offset(writable, entry.base_offset, entry.position)
            if leader_epoch is not None:
                set_partition_leader_epoch(writable, leader_epoch, entry.position)
        data = writable
    return PreparedAppend(data, entries, next_offset, max_timestamp)
