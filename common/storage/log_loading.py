"""Opening a segmented log: from the files of its directory to a
:class:`~raftka.common.storage.log_state.LogState`.

The directory is tidied and its segments loaded or recovered (:mod:`.recovery`); the log
start comes from the checkpoint, segments wholly below it go, recovered bytes are made
durable before the recovery point claims them, and the ``clean-shutdown`` marker is consumed.
A directory without segments becomes a new, empty log.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from raftka.common.files import fsync_dir
from raftka.common.storage.checkpoint import CLEAN_SHUTDOWN_FILE, Checkpoint, read_checkpoint
from raftka.common.storage.log_state import LogState
from raftka.common.storage.log_truncation import delete_leading_segments
from raftka.common.storage.recovery import load_segments, log_start_on_open, tidy_directory

log = structlog.get_logger(__name__)


def load_log(state: LogState) -> None:
    """Fills the empty ``state`` from its directory, recovering what needs it."""
    directory = state.directory
    now = state.clock()
    bases, state.unsynced.dir_dirty = tidy_directory(directory)
    checkpoint = read_checkpoint(directory)
    state.checkpointed = checkpoint
    clean_marker = directory / CLEAN_SHUTDOWN_FILE
    clean = clean_marker.exists()
    if not bases:
        start = (
            checkpoint.log_start_offset
            if checkpoint is not None
            else state.config.initial_start_offset
        )
        state.start_empty(start, now)
        if checkpoint is None:
            # A new, empty log: with no checkpoint the next open finds the same (its
            # first segment's base is the start), so none is written yet; the first
            # flush writes it. Creating many partitions then costs no checkpoint fsyncs.
            state.checkpointed = Checkpoint(start, start)
        _finish_load(state, clean_marker, clean, recovered=0, created=True)
        return
    loaded = load_segments(
        directory,
        bases,
        index_interval_bytes=state.config.index_interval_bytes,
        checkpoint=checkpoint,
        clean=clean,
        now_ms=now,
    )
    state.unsynced.dir_dirty = state.unsynced.dir_dirty or loaded.directory_changed
    state.damage_on_open = loaded.damage
    state.set_segments(loaded.segments)
    state.log_end = state.segments[-1].next_offset
    state.log_start = log_start_on_open(directory, checkpoint, state.bases[0], state.log_end)
    delete_leading_segments(state, state.log_start, reason="below_log_start")
    # Recovered bytes may exist only in the page cache: make them durable before the
    # recovery point claims them.
    for segment in loaded.recovered:
        if any(segment is live for live in state.segments):
            segment.flush()
    state.unsynced.sync_dir()
    state.recovery_point = state.log_end
    _finish_load(state, clean_marker, clean, recovered=len(loaded.recovered), created=False)


def _finish_load(
    state: LogState, clean_marker: Path, clean: bool, *, recovered: int, created: bool
) -> None:
    state.write_checkpoint()
    if clean:
        clean_marker.unlink(missing_ok=True)
        fsync_dir(state.directory)
    # A new log is told by whoever created it (a broker creates thousands at once).
    (log.debug if created else log.info)(
        "log_opened",
        directory=str(state.directory),
        segments=len(state.segments),
        log_start_offset=state.log_start,
        log_end_offset=state.log_end,
        recovered_segments=recovered,
        clean_shutdown=clean,
        created=created,
    )
