"""Opening a log directory: tidy leftover files, then load or recover each segment.

A segment is trusted (indexes loaded, nothing rescanned) when the last shutdown was clean, or
when it lies wholly below the checkpointed recovery point. Every other segment (always the
last one after a crash, every one when there is no checkpoint) is rescanned: each batch is
validated, indexes are rebuilt, and the file is cut at the first invalid or incomplete batch.
A segment that was cut, or that does not end where the next one begins, ends the log: the
segments after it are deleted. A trusted segment whose index files are missing or fail their
checks is rescanned too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from raftka.common.storage.checkpoint import Checkpoint
from raftka.common.storage.files import SEGMENT_FILE_RE, TEMP_SUFFIXES
from raftka.common.storage.results import DamageReport
from raftka.common.storage.segment import LogSegment
from raftka.common.storage.swap import complete_swaps

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class LoadedSegments:
    segments: list[LogSegment]
    recovered: list[LogSegment] = field(default_factory=list)
    damage: DamageReport | None = None
    """The first damage found in a trusted segment (kept: see SegmentedLog.damage_found_on_open)."""
    directory_changed: bool = False
    """Files were created or removed: fsync the directory."""


def tidy_directory(directory: Path) -> tuple[list[int], bool]:
    """Completes a cleaned-segment swap a crash interrupted (:mod:`.swap`), then removes
    temporary files (``*.deleted``, ``*.cleaned``, leftover ``*.swap``) and index files
    without a log; returns the sorted segment base offsets and whether anything changed."""
    bases: list[int] = []
    index_files: list[tuple[str, int]] = []
    changed = complete_swaps(directory)
    for name in os.listdir(directory):
        if name.endswith(TEMP_SUFFIXES):
            (directory / name).unlink(missing_ok=True)
            changed = True
            continue
        match = SEGMENT_FILE_RE.match(name)
        if match is None:
            continue
        if match.group(2) == "log":
            bases.append(int(match.group(1)))
        else:
            index_files.append((name, int(match.group(1))))
    base_set = set(bases)
    for name, base in index_files:
        if base not in base_set:
            (directory / name).unlink(missing_ok=True)
            changed = True
    bases.sort()
    return bases, changed


def load_segments(
    directory: Path,
    bases: list[int],
    *,
    index_interval_bytes: int,
    checkpoint: Checkpoint | None,
    clean: bool,
    now_ms: int,
) -> LoadedSegments:
    """Opens the segments at ``bases`` (non-empty, sorted), recovering them as needed."""
    segments: list[LogSegment] = []
    try:
        for base in bases:
            segments.append(
                LogSegment.open(
                    directory, base, index_interval_bytes=index_interval_bytes, now_ms=now_ms
                )
            )
        return _load_or_recover(directory, segments, checkpoint, clean, now_ms)
    except BaseException:
        for segment in segments:
            segment.close()
        raise


def _load_or_recover(
    directory: Path,
    segments: list[LogSegment],
    checkpoint: Checkpoint | None,
    clean: bool,
    now_ms: int,
) -> LoadedSegments:
    result = LoadedSegments(segments)
    i = 0
    while i < len(segments):
        segment = segments[i]
        next_base = segments[i + 1].base_offset if i + 1 < len(segments) else None
        must_recover = not clean and (
            checkpoint is None or next_base is None or next_base > checkpoint.recovery_point
        )
        if not must_recover:
            problem = segment.load_indexes(next_base)
            if problem is not None:
                log.warning("index_rebuild_needed", path=str(segment.log_path), reason=problem)
                must_recover = True
            elif next_base is None:
                if not segment.load_as_active(now_ms):
                    log.warning("active_segment_tail_invalid", path=str(segment.log_path))
                    must_recover = True
            else:
                damage = segment.load_as_inactive(next_base)
                if damage is not None:
                    log.error(
                        "log_damage_found",
                        path=str(segment.log_path),
                        offset=damage.offset,
                        position=damage.position,
                        reason=damage.reason,
                    )
                    if result.damage is None:
                        result.damage = damage
        if must_recover:
            truncated = segment.recover(now_ms)
            result.recovered.append(segment)
            if next_base is not None and (truncated or segment.next_offset != next_base):
                if not truncated:
                    log.warning(
                        "segment_gap",
                        path=str(segment.log_path),
                        next_offset=segment.next_offset,
                        next_segment_base_offset=next_base,
                    )
                dropped = segments[i + 1 :]
                for later in reversed(dropped):
                    later.delete()
                log.warning(
                    "dropped_segments_after_corruption",
                    directory=str(directory),
                    base_offsets=[s.base_offset for s in dropped],
                )
                del segments[i + 1 :]
                result.directory_changed = True
        i += 1
    return result


def log_start_on_open(
    directory: Path, checkpoint: Checkpoint | None, first_base: int, log_end: int
) -> int:
    """The log start offset of a loaded log whose first segment starts at ``first_base``:
    the checkpointed one, within the segments. A checkpointed start below the first segment
    is damage, logged as ``log_damage_found``."""
    start = checkpoint.log_start_offset if checkpoint is not None else first_base
    log_start = min(max(start, first_base), log_end)
    if checkpoint is not None and checkpoint.log_start_offset < first_base:
        # Retention moves the checkpointed log start before it deletes: segments below
        # the first one were lost some other way. What remains is served; the loss is told.
        log.error(
            "log_damage_found",
            directory=str(directory),
            offset=checkpoint.log_start_offset,
            reason=(
                f"offsets {checkpoint.log_start_offset}..{first_base - 1} are missing: "
                "the segments holding them were deleted outside the broker"
            ),
            action="log_start_moved",
            log_start_offset=log_start,
        )
    return log_start
