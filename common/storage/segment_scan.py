"""Walking a segment file's stored batches: the scans behind loading and recovering a segment
(from its last index entry, or from its first byte) and the searches behind its reads (the
batch holding an offset, the first record at or after a timestamp).

Plain functions over a descriptor (or the segment's files) and the numbers they start from;
:class:`~raftka.common.storage.segment.LogSegment` applies what they find.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from raftka.common.files import pread_exact
from raftka.common.records.batch import HEADER_SIZE, LOG_OVERHEAD, BatchHeader, validate
from raftka.common.records.decoder import decode_batch
from raftka.common.records.errors import RecordError
from raftka.common.storage.batch_scan import BatchScan
from raftka.common.storage.errors import DamagedBatchError
from raftka.common.storage.results import TimestampOffset
from raftka.common.storage.segment_files import SegmentFiles

if TYPE_CHECKING:
    from raftka.common.storage.segment import LogSegment

_LOCATE_CHUNK_BYTES = 8192

TrackBatch = Callable[[int, int, int, int], None]
"""Called with (base offset, position, size, max timestamp) for each valid batch."""


class TailScan(NamedTuple):
    """What the batches after a segment's last index entry restore: whether they are clean,
    the offset after them (meaningful only when clean), and the max timestamp with its
    batch's offset (as far as the walk went)."""

    clean: bool
    next_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int


class WalkEnd(NamedTuple):
    """Where a walk over batch headers ended: the offset the next batch should have had, the
    position after the last good batch (or of the bad one), and why it stopped early."""

    next_offset: int
    position: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class RecoveryScan:
    """The valid prefix of a segment file: its length and next offset, whether it holds a
    control batch, and why the rest (if any) is not valid."""

    valid_bytes: int
    next_offset: int
    control: bool
    reason: str | None


def walk_headers(fd: int, start: int, size: int, expected: int) -> WalkEnd:
    """Walks the batch headers in [``start``, ``size``) of ``fd``, whose first batch must
    have base offset ``expected``, to where the segment really ends."""
    reason: str | None = None
    position = start
    scan = BatchScan(fd, start, size)
    for pos, view in scan:
        header = BatchHeader.parse(view)
        if header.base_offset != expected:
            reason = f"batch has base offset {header.base_offset}, expected {expected}"
            position = pos
            break
        expected = header.next_offset
        position = pos + header.size
    else:
        if scan.position != size:
            reason = f"unreadable batch ({size - scan.position} bytes to the end)"
            position = scan.position
    return WalkEnd(expected, position, reason)


def scan_for_recovery(fd: int, base_offset: int, file_size: int, track: TrackBatch) -> RecoveryScan:
    """Validates every batch of the file from its first byte, calling ``track`` for each
    valid one, up to the first invalid or incomplete batch."""
    control = False
    expected = base_offset
    valid = 0
    reason: str | None = None
    scan = BatchScan(fd, 0, file_size)
    for pos, view in scan:
        try:
            header = validate(view)
        except RecordError as exc:
            reason = f"at byte {pos}: {exc}"
            break
        if header.base_offset != expected:
            reason = (
                f"batch at byte {pos} has base offset {header.base_offset}, expected {expected}"
            )
            break
        track(header.base_offset, pos, header.size, header.max_timestamp)
        control = control or header.is_control
        expected = header.next_offset
        valid = pos + header.size
    if reason is None and valid < file_size:
        reason = f"incomplete batch at byte {valid}"
    return RecoveryScan(valid, expected, control, reason)


def scan_tail(
    fd: int,
    start: int,
    size: int,
    expected: int,
    max_timestamp: int,
    offset_of_max_timestamp: int,
    *,
    verify: bool,
) -> TailScan:
    """Walks the batches in [``start``, ``size``) (the first with base offset ``expected``),
    validating them if ``verify``, on from the max timestamp known so far; stops at the
    first that is not clean."""
    scan = BatchScan(fd, start, size)
    for _pos, view in scan:
        try:
            header = validate(view) if verify else BatchHeader.parse(view)
        except RecordError:
            return TailScan(False, expected, max_timestamp, offset_of_max_timestamp)
        if header.base_offset != expected:
            return TailScan(False, expected, max_timestamp, offset_of_max_timestamp)
        if header.max_timestamp > max_timestamp:
            max_timestamp = header.max_timestamp
            offset_of_max_timestamp = header.base_offset
        expected = header.next_offset
    return TailScan(scan.position == size, expected, max_timestamp, offset_of_max_timestamp)


def locate_batch(
    files: SegmentFiles,
    offset: int,
    expected: int,
    pos: int,
    end: int,
    damage: Callable[[int, int, str], DamagedBatchError],
) -> tuple[int, BatchHeader] | None:
    """Position and header of the batch holding ``offset``, walking headers from ``pos``
    (whose batch has base offset ``expected``) in small reads; None if the file ends
    (at ``end``) before it. Bad framing raises ``damage(offset, position, reason)``."""
    buf = b""
    buf_start = pos
    while pos < end:
        off = pos - buf_start
        if off + HEADER_SIZE > len(buf):
            with files.use() as fd:
                buf = pread_exact(fd, min(_LOCATE_CHUNK_BYTES, end - pos), pos)
            buf_start, off = pos, 0
        try:
            header = BatchHeader.parse(buf, off)
        except RecordError as exc:
            raise damage(expected, pos, str(exc)) from exc
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD or header.size > end - pos:
            raise damage(expected, pos, f"impossible batch length {header.batch_length}")
        if header.base_offset != expected:
            raise damage(
                expected,
                pos,
                f"batch has base offset {header.base_offset}, expected {expected}",
            )
        if header.base_offset + header.last_offset_delta >= offset:
            return pos, header
        pos += header.batch_length + LOG_OVERHEAD
        expected = header.next_offset
    return None


def find_timestamp(
    segment: LogSegment, timestamp: int, start_offset: int
) -> TimestampOffset | None:
    """:meth:`LogSegment.find_timestamp
    <raftka.common.storage.segment.LogSegment.find_timestamp>`."""
    if segment.max_timestamp < timestamp or segment.next_offset <= start_offset:
        return None
    first = max(start_offset, segment.base_offset)
    entry = segment.time_index.lookup(timestamp)
    if entry is not None:
        first = max(first, entry[1])
    found = segment.find(first)
    if found is None:
        return None
    for _pos, view in segment.batches_from(found[0]):
        header = BatchHeader.parse(view)
        if header.max_timestamp < timestamp or header.last_offset < start_offset:
            continue
        for record in decode_batch(view, verify=False).records:
            if record.offset >= start_offset and record.timestamp >= timestamp:
                return TimestampOffset(
                    record.timestamp, record.offset, header.partition_leader_epoch
                )
    return None
