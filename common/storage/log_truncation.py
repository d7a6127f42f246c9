"""Removing data from a segmented log: truncation at its end (a divergent tail, damage),
deletion at its start (retention, a log start below the first segments on open), and the
reset that empties it. Plain functions over a :class:`~raftka.common.storage.log_state.
LogState`, called by :class:`~raftka.common.storage.log.SegmentedLog` under its lock (see
its methods of the same names for what each promises).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from raftka.common.files import fsync_dir
from raftka.common.storage.errors import CorruptLogError, LogOffsetOutOfRangeError
from raftka.common.storage.log_state import LogState
from raftka.common.storage.results import DamageReport

log = structlog.get_logger(__name__)


def truncate_to(state: LogState, offset: int) -> int:
    """:meth:`SegmentedLog.truncate_to <raftka.common.storage.log.SegmentedLog.truncate_to>`."""
    if offset < 0:
        raise ValueError(f"cannot truncate to negative offset {offset}")
    if offset >= state.log_end:
        return state.log_end
    if offset <= state.log_start:
        reset(state, offset, reason="truncate_to_log_start")
        return offset
    i = state.index_of(offset)
    segment, _, header = state.locate(offset)
    _cut_after(state, i, lambda: segment.truncate_to(offset), header.base_offset, requested=offset)
    return header.base_offset


def truncate_at_damage(state: LogState, report: DamageReport) -> int:
    """:meth:`SegmentedLog.truncate_at_damage
    <raftka.common.storage.log.SegmentedLog.truncate_at_damage>`."""
    if report.offset >= state.log_end:
        return state.log_end
    if report.offset <= state.log_start:
        reset(state, report.offset, reason="damage_at_log_start")
        return report.offset
    i = state.index_of(report.segment_base_offset)
    if i < 0 or state.bases[i] != report.segment_base_offset:
        raise CorruptLogError(
            f"{state.directory.name}: segment {report.segment_base_offset} of the damage at "
            f"offset {report.offset} is gone; nothing was truncated"
        )
    segment = state.segments[i]
    _cut_after(
        state,
        i,
        lambda: segment.truncate_at(report.position, report.offset),
        report.offset,
        requested=report.offset,
    )
    state.damage_on_open = None
    return report.offset


def _cut_after(
    state: LogState, i: int, cut_segment: Callable[[], object], new_leo: int, *, requested: int
) -> None:
    """Deletes the segments after the ``i``-th, cuts that one (``cut_segment``) and ends
    the log at ``new_leo``."""
    segment = state.segments[i]
    state.generation += 1
    old_leo = state.log_end
    state.recovery_point = min(state.recovery_point, new_leo)
    state.log_start = min(state.log_start, new_leo)
    state.write_checkpoint()
    later = state.segments[i + 1 :]
    for dropped in reversed(later):
        state.discard(dropped)
    if later:
        del state.segments[i + 1 :]
        del state.bases[i + 1 :]
        fsync_dir(state.directory)
    cut_segment()
    segment.flush()
    state.log_end = new_leo
    log.info(
        "log_truncated",
        directory=str(state.directory),
        requested_offset=requested,
        log_end_offset=new_leo,
        previous_log_end_offset=old_leo,
        deleted_segments=len(later),
    )


def delete_before(state: LogState, offset: int, *, reason: str) -> int:
    """:meth:`SegmentedLog.delete_before
    <raftka.common.storage.log.SegmentedLog.delete_before>`."""
    if offset <= state.log_start:
        return 0
    if offset > state.log_end:
        raise LogOffsetOutOfRangeError(offset, state.log_start, state.log_end)
    if offset == state.log_end and not state.segments[-1].is_empty:
        state.roll(state.clock(), "delete_before")
    state.log_start = offset
    state.write_checkpoint()
    return delete_leading_segments(state, offset, reason=reason)


def reset(state: LogState, start_offset: int, *, reason: str) -> None:
    """Deletes every segment and restarts the log, empty, at ``start_offset``."""
    old_start, old_end = state.log_start, state.log_end
    state.generation += 1
    for segment in reversed(state.segments):
        state.discard(segment)
    state.set_segments([])
    fsync_dir(state.directory)
    state.start_empty(start_offset, state.clock())
    state.write_checkpoint()
    log.info(
        "log_reset",
        directory=str(state.directory),
        start_offset=start_offset,
        previous_log_start_offset=old_start,
        previous_log_end_offset=old_end,
        reason=reason,
    )


def delete_leading_segments(state: LogState, offset: int, *, reason: str) -> int:
    """Deletes non-active segments whose offsets all lie below ``offset``, oldest first."""
    count = 0
    while count + 1 < len(state.segments) and state.bases[count + 1] <= offset:
        count += 1
    if count == 0:
        return 0
    doomed = state.segments[:count]
    state.generation += 1
    for segment in doomed:
        state.discard(segment)
    del state.segments[:count]
    del state.bases[:count]
    state.unsynced.dir_dirty = True
    log.info(
        "segments_deleted",
        directory=str(state.directory),
        base_offsets=[segment.base_offset for segment in doomed],
        log_start_offset=state.log_start,
        reason=reason,
    )
    return count
