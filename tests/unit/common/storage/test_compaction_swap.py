"""Swapping cleaned segments in: crashes mid-clean, appends and truncations meanwhile."""

from __future__ import annotations

import os
from pathlib import Path

from raftka.common.storage import SegmentedLog
from raftka.common.storage.cleaned_segment import group_segments, write_cleaned_segment
from raftka.common.storage.cleaner import build_offset_map, clean_log
from raftka.common.storage.files import SWAP_SUFFIX
from raftka.common.storage.segment import LogSegment
from tests.unit.common.storage.compaction_support import (
    keyed,
    latest,
    read_from,
    rules,
    small_log,
)


def fill(log: SegmentedLog, rounds: int = 6, keys: int = 5) -> None:
    for r in range(rounds):
        for k in range(keys):
            log.append(keyed([(f"k{k}".encode(), f"v{r}-{k}".encode())]))


def files(directory: Path, suffix: str) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(suffix))


def cleaned_group(log: SegmentedLog) -> tuple[LogSegment, list[LogSegment]]:
    """Writes the cleaned copy of the first group of non-active segments (no swap)."""
    _generation, segments = log.cleanable_segments(log.segment_base_offsets[-1])
    offset_map, _end = build_offset_map(segments, 0, max_keys=100, progress=lambda n: None)
    group = group_segments(segments, 10_000)[0]
    cleaned, _stats = write_cleaned_segment(
        log.directory, group, offset_map, rules(), index_interval_bytes=100, progress=lambda n: None
    )
    return cleaned, list(group)


def test_a_crash_before_the_swap_leaves_the_old_segments(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    fill(log)
    before = read_from(log, 0)[0]
    cleaned_group(log)
    assert files(tmp_path, ".log.cleaned")
    # Crash: the log is never closed. The next open deletes the *.cleaned files.
    reopened = small_log(tmp_path)
    assert files(tmp_path, ".cleaned") == []
    assert read_from(reopened, 0)[0] == before


def test_a_crash_after_the_swap_was_decided_completes_it(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    fill(log)
    before = read_from(log, 0)[0]
    bases = log.segment_base_offsets
    cleaned, group = cleaned_group(log)
    cleaned.rename_files(SWAP_SUFFIX, log_first=False)
    assert len(group) == len(bases) - 1
    # Crash with the .swap files beside the old segments: the swap is finished on open.
    reopened = small_log(tmp_path)
    assert files(tmp_path, ".swap") == []
    assert reopened.segment_base_offsets == (bases[0], bases[-1])
    after = read_from(reopened, 0)[0]
    assert latest(after) == latest(before)
    assert len(after) < len(before)
    assert reopened.log_end_offset == log.log_end_offset
    # Every offset reads what follows it.
    kept = [r.offset for r in after]
    for offset in range(reopened.log_end_offset):
        assert [r.offset for r in read_from(reopened, offset)[0]] == [
            o for o in kept if o >= offset
        ]


def test_a_crash_while_stripping_the_swap_suffix_loses_nothing(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    fill(log)
    before = read_from(log, 0)[0]
    cleaned, group = cleaned_group(log)
    cleaned.rename_files(SWAP_SUFFIX, log_first=False)
    for old in group:
        old.rename_for_deletion()
    # The log file got its plain name, the indexes did not yet.
    swap_log = cleaned.log_path
    os.replace(swap_log, swap_log.with_name(swap_log.name.removesuffix(SWAP_SUFFIX)))
    reopened = small_log(tmp_path)
    assert files(tmp_path, ".swap") == [] and files(tmp_path, ".deleted") == []
    assert latest(read_from(reopened, 0)[0]) == latest(before)


def test_an_append_during_cleaning_is_kept(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    fill(log)
    appended: list[int] = []

    def append_once(_bytes: int) -> None:
        if not appended:
            appended.append(log.append(keyed([(b"k0", b"during")])).base_offset)

    result = clean_log(
        log,
        first_dirty=0,
        end_offset=log.segment_base_offsets[-1],
        rules=rules(),
        progress=append_once,
    )
    assert result is not None and result.completed and result.segments_after >= 1
    records = read_from(log, 0)[0]
    assert latest(records)[b"k0"] == (appended[0], b"during")
    assert files(tmp_path, ".cleaned") == [] and files(tmp_path, ".swap") == []


def test_a_truncation_during_cleaning_aborts_it(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    fill(log)
    bases = log.segment_base_offsets
    cut = bases[1] + 1

    def truncate_once(_bytes: int) -> None:
        if log.log_end_offset > cut:
            log.truncate_to(cut)

    before = read_from(log, 0)[0]
    result = clean_log(
        log, first_dirty=0, end_offset=bases[-1], rules=rules(), progress=truncate_once
    )
    assert result is not None and not result.completed
    assert files(tmp_path, ".cleaned") == [] and files(tmp_path, ".swap") == []
    assert read_from(log, 0)[0] == [r for r in before if r.offset < log.log_end_offset]
