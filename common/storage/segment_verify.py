"""Verifying a segment's stored batches in bounded steps, for the background scrubber."""

from __future__ import annotations

from typing import TYPE_CHECKING

from raftka.common.records.batch import HEADER_SIZE, LOG_OVERHEAD, read_batch_size, validate
from raftka.common.records.errors import RecordError
from raftka.common.storage.results import DamageReport, ScrubProgress

if TYPE_CHECKING:
    from raftka.common.storage.segment import LogSegment


def _damage(segment: LogSegment, offset: int, position: int, reason: str) -> DamageReport:
    return DamageReport(offset, segment.base_offset, position, reason)


def verify_segment(
    segment: LogSegment, position: int, next_offset: int, max_bytes: int, *, end_offset: int | None
) -> ScrubProgress:
    """Re-reads and validates (framing, CRC-32C, contiguous offsets) the batches of
    ``segment`` from ``position``, whose first must have base offset ``next_offset``, reading
    about ``max_bytes`` (at least one batch). At the end of the segment, ``end_offset`` (the
    next segment's base offset; None for the last segment) must be where it ends.
    Damage is returned, not raised."""
    end = segment.size
    if position >= end:
        damage = None
        if end_offset is not None and next_offset != end_offset:
            damage = _damage(
                segment,
                next_offset,
                end,
                f"offsets {next_offset}..{end_offset - 1} are missing: the segment ends "
                f"at {next_offset} but the next one starts at {end_offset}",
            )
        return ScrubProgress(end, next_offset, 0, True, damage)
    want = min(max(max_bytes, HEADER_SIZE), end - position)
    chunk = memoryview(segment.read(position, want))
    first = read_batch_size(chunk) if len(chunk) >= LOG_OVERHEAD else 0
    if first > len(chunk) and HEADER_SIZE <= first <= end - position:
        chunk = memoryview(segment.read(position, first))
    done = 0
    expected = next_offset
    while len(chunk) - done >= LOG_OVERHEAD:
        size = read_batch_size(chunk, done)
        if done and size > len(chunk) - done and size <= end - position - done:
            break  # the rest of this batch is read by the next call
        try:
            header = validate(chunk, done)
        except RecordError as exc:
            report = _damage(segment, expected, position + done, str(exc))
            return ScrubProgress(position + done, expected, len(chunk), True, report)
        if header.base_offset != expected:
            reason = f"batch has base offset {header.base_offset}, expected {expected}"
            report = _damage(segment, expected, position + done, reason)
            return ScrubProgress(position + done, expected, len(chunk), True, report)
        expected = header.next_offset
        done += header.size
    if done == 0:
        reason = f"incomplete batch ({end - position} bytes to the end of the segment)"
        report = _damage(segment, expected, position, reason)
        return ScrubProgress(position, expected, len(chunk), True, report)
    return ScrubProgress(position + done, expected, len(chunk), False)
