"""The leader-epoch cache of a partition replica (Kafka's ``LeaderEpochFileCache``, KIP-101/279).

A sorted list of (epoch, start offset): the first offset written under each leader epoch. A new
leader assigns (its epoch, its log end offset); a follower assigns an entry whenever a batch
from the leader carries a newer partition leader epoch. Both epochs and start offsets are
strictly increasing. The cache answers OffsetForLeaderEpoch (:meth:`LeaderEpochCache.end_offset_for`)
and so drives the leader's divergence check of a follower's fetch (KIP-595's DivergingEpoch,
Kafka's ``validateOffsetAndEpoch``) and the follower's truncation (KIP-101, KIP-279).

Persisted in ``leader-epoch-checkpoint`` in the partition directory, in Kafka's text format::

    0              <- format version
    2              <- number of entries
    0 0            <- "epoch start_offset", one line per entry, oldest first
    3 120

written atomically on every change (changes are rare: a new epoch, a truncation, retention).
A missing or unreadable file is rebuilt from the log's batch headers (:func:`rebuild_from_log`).

Thread-safe (one lock). Mutations write the file when ``path`` is set; pass ``flush=False`` to
group several and call :meth:`LeaderEpochCache.flush` once.
"""

from __future__ import annotations

import struct
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import structlog

from raftka.common.files import atomic_write
from raftka.common.records.batch import PARTITION_LEADER_EPOCH_POS
from raftka.common.storage import SegmentedLog

LEADER_EPOCH_CHECKPOINT_FILE = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
"""Kafka's ``UNDEFINED_EPOCH``: no epoch (also what a batch without one carries)."""
UNDEFINED_EPOCH_OFFSET = -1
"""Kafka's ``UNDEFINED_EPOCH_OFFSET``: the end offset could not be determined."""

_VERSION = 0
_INT32 = struct.Struct(">i")

log = structlog.get_logger(__name__)


class EpochEntry(NamedTuple):
    epoch: int
    start_offset: int
    """First offset written under ``epoch``."""


class EpochEndOffset(NamedTuple):
    """An OffsetForLeaderEpoch answer, and the ``DivergingEpoch`` of a fetch response."""

    epoch: int
    end_offset: int
    """Exclusive: the first offset *not* written under ``epoch``."""

    @property
    def undefined(self) -> bool:
        return self.end_offset == UNDEFINED_EPOCH_OFFSET


UNDEFINED = EpochEndOffset(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)


class LeaderEpochCache:
    """Sorted (epoch, start offset) entries; see the module docstring."""

    def __init__(self, path: Path | None = None, entries: Iterable[EpochEntry] = ()) -> None:
        """``path`` is the checkpoint file (None: in memory only). ``entries`` must be sorted
        with strictly increasing epochs and start offsets (ValueError otherwise)."""
        self._path = path
        self._lock = threading.Lock()
        self._epochs: list[int] = []
        self._starts: list[int] = []
        for epoch, start in entries:
            if epoch < 0 or start < 0:
                raise ValueError(f"invalid leader epoch entry ({epoch}, {start})")
            if self._epochs and (epoch <= self._epochs[-1] or start <= self._starts[-1]):
                raise ValueError(
                    f"leader epoch entry ({epoch}, {start}) does not follow "
                    f"({self._epochs[-1]}, {self._starts[-1]})"
                )
            self._epochs.append(epoch)
            self._starts.append(start)
        self._dirty = False

    # ================================================================== loading

    @classmethod
    def load(cls, directory: Path, segmented_log: SegmentedLog) -> LeaderEpochCache:
        """The cache of the log in ``directory``: read from its checkpoint, made consistent
        with the log (entries at or past the log end dropped, entries below the log start
        collapsed), or rebuilt from the batch headers when the file is missing or unreadable
        or the log's last batch carries an epoch newer than the file knows (a crash between
        an append and the checkpoint write)."""
        path = directory / LEADER_EPOCH_CHECKPOINT_FILE
        entries = read_leader_epoch_checkpoint(path)
        start, end = segmented_log.log_start_offset, segmented_log.log_end_offset
        if entries is None:
            reason = "missing" if not path.exists() else "unreadable"
            return rebuild_from_log(path, segmented_log, reason=reason)
        cache = cls(path, entries)
        cache.truncate_from_end(end, flush=False)
        cache.truncate_from_start(start, flush=False)
        if end > start:
            last_epoch = _epoch_of_batch_at(segmented_log, end - 1)
            latest = cache.latest_entry
            # A checkpoint written without fsync (a follower's append) may have lost its
            # latest changes: its tail must agree with the batches (leader epochs are unique,
            # so a batch of the latest entry's epoch at its start means the same history).
            if last_epoch > cache.latest_epoch or (
                latest is not None
                and latest.start_offset < end
                and _epoch_of_batch_at(segmented_log, latest.start_offset) != latest.epoch
            ):
                log.warning(
                    "leader_epoch_checkpoint_stale",
                    path=str(path),
                    latest_checkpointed_epoch=cache.latest_epoch,
                    last_batch_epoch=last_epoch,
                )
                return rebuild_from_log(path, segmented_log, reason="stale")
        cache.flush()
        return cache

    # ================================================================== queries

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def entries(self) -> tuple[EpochEntry, ...]:
        with self._lock:
            return tuple(EpochEntry(e, s) for e, s in zip(self._epochs, self._starts, strict=True))

    def __len__(self) -> int:
        return len(self._epochs)

    @property
    def latest_epoch(self) -> int:
        """The newest epoch, or UNDEFINED_EPOCH (-1) when the cache is empty."""
        with self._lock:
            return self._epochs[-1] if self._epochs else UNDEFINED_EPOCH

    @property
    def latest_entry(self) -> EpochEntry | None:
        with self._lock:
            return EpochEntry(self._epochs[-1], self._starts[-1]) if self._epochs else None

    @property
    def earliest_entry(self) -> EpochEntry | None:
        with self._lock:
            return EpochEntry(self._epochs[0], self._starts[0]) if self._epochs else None

    def epoch_for_offset(self, offset: int) -> int:
        """The epoch the record at ``offset`` was written in: that of the last entry starting
        at or below ``offset`` (UNDEFINED_EPOCH if none does)."""
        with self._lock:
            i = bisect_right(self._starts, offset) - 1
            return self._epochs[i] if i >= 0 else UNDEFINED_EPOCH

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> EpochEndOffset:
        """OffsetForLeaderEpoch (KIP-101; Kafka's ``LeaderEpochFileCache.endOffsetFor``):

        - the latest epoch -> (it, ``log_end_offset``);
        - otherwise the largest epoch <= ``requested_epoch`` with, as end offset, the start
          offset of the first epoch above ``requested_epoch``;
        - below every known epoch -> (``requested_epoch``, start of the first epoch);
        - UNDEFINED (-1, -1) when ``requested_epoch`` is UNDEFINED_EPOCH, when the cache is
          empty, and when ``requested_epoch`` is above the latest epoch.
        """
        with self._lock:
            epochs = self._epochs
            if requested_epoch == UNDEFINED_EPOCH or not epochs:
                return UNDEFINED
            if requested_epoch == epochs[-1]:
                return EpochEndOffset(requested_epoch, log_end_offset)
            higher = bisect_right(epochs, requested_epoch)
            if higher == len(epochs):
                return UNDEFINED  # newer than any epoch this replica knows
            if higher == 0:
                return EpochEndOffset(requested_epoch, self._starts[0])
            return EpochEndOffset(epochs[higher - 1], self._starts[higher])

    # ================================================================== changes

    def assign(self, epoch: int, start_offset: int, *, flush: bool = True) -> bool:
        """Records that ``epoch`` starts at ``start_offset``, with Kafka's rules: nothing
        happens when ``epoch`` is already the latest epoch and ``start_offset`` is not below
        its start; otherwise entries at the end whose epoch is >= ``epoch`` or whose start
        offset is >= ``start_offset`` are removed first (kept monotonic; a warning is logged
        when that drops more than an entry with no records). Returns whether it changed."""
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"invalid leader epoch entry ({epoch}, {start_offset})")
        with self._lock:
            epochs, starts = self._epochs, self._starts
            if epochs and epoch == epochs[-1] and start_offset >= starts[-1]:
                return False
            removed: list[EpochEntry] = []
            while epochs and (epochs[-1] >= epoch or starts[-1] >= start_offset):
                removed.append(EpochEntry(epochs.pop(), starts.pop()))
            epochs.append(epoch)
            starts.append(start_offset)
            self._dirty = True
        if len(removed) > 1 or (removed and removed[0].start_offset != start_offset):
            log.warning(
                "leader_epoch_entries_truncated",
                path=str(self._path),
                new_entry=(epoch, start_offset),
                removed=[tuple(entry) for entry in reversed(removed)],
            )
        if flush:
            self.flush()
        return True

    def truncate_from_end(self, end_offset: int, *, flush: bool = True) -> bool:
        """Removes the entries starting at or after ``end_offset`` (the log was truncated
        there). Returns whether anything was removed."""
        with self._lock:
            i = bisect_left(self._starts, end_offset)
            if end_offset < 0 or i == len(self._starts):
                return False
            del self._epochs[i:]
            del self._starts[i:]
            self._dirty = True
        if flush:
            self.flush()
        return True

    def truncate_from_start(self, start_offset: int, *, flush: bool = True) -> bool:
        """The log start moved to ``start_offset``: entries starting at or below it collapse
        into one, the last of them, now starting at ``start_offset`` (an entry starting
        exactly there is kept as it is). Returns whether anything changed."""
        with self._lock:
            i = bisect_right(self._starts, start_offset)
            if i == 0 or (i == 1 and self._starts[0] == start_offset):
                return False
            epoch = self._epochs[i - 1]
            del self._epochs[:i]
            del self._starts[:i]
            self._epochs.insert(0, epoch)
            self._starts.insert(0, start_offset)
            self._dirty = True
        if flush:
            self.flush()
        return True

    def clear(self, *, flush: bool = True) -> None:
        with self._lock:
            if self._epochs:
                self._epochs.clear()
                self._starts.clear()
                self._dirty = True
        if flush:
            self.flush()

    def flush(self, *, force: bool = False, durable: bool = True) -> None:
        """Writes the checkpoint file if anything changed since the last write, or always
        with ``force`` (nothing without a ``path``). ``durable=False`` skips the two fsyncs:
        safe for changes that only follow the log's own batches (a follower's append), since
        ``load`` rebuilds a checkpoint whose tail disagrees with the batch headers."""
        with self._lock:
            if not (self._dirty or force) or self._path is None:
                return
            text = format_leader_epoch_checkpoint(
                EpochEntry(e, s) for e, s in zip(self._epochs, self._starts, strict=True)
            )
            atomic_write(self._path, text.encode("ascii"), durable=durable)
            self._dirty = False

    def __repr__(self) -> str:
        return f"LeaderEpochCache({list(self.entries)})"


# ====================================================================== follower truncation


class TruncationTarget(NamedTuple):
    offset: int
    """Truncate the log to this offset (:meth:`PartitionLog.truncate_to`)."""
    complete: bool
    """False when this replica does not know the leader's diverging epoch: after truncating,
    fetch again (with the new last fetched epoch) to learn the next divergence point."""


def follower_truncation_target(
    cache: LeaderEpochCache,
    diverging: EpochEndOffset,
    *,
    log_end_offset: int,
    high_watermark: int,
) -> TruncationTarget:
    """Where a follower truncates on the leader's (epoch, end offset) (KIP-101, KIP-279;
    Kafka's ``AbstractFetcherThread.getOffsetTruncationState``):

    - the local cache knows ``diverging.epoch`` (its largest epoch <= it is that epoch):
      ``min(leader end, local end of the epoch, log end)``, complete;
    - it knows only smaller epochs: ``min(local end of the largest smaller one, log end)``,
      not complete (KIP-279: fetch again from there);
    - the leader sent no epoch (-1), or the local cache cannot answer:
      ``min(leader end, log end)``, complete;
    - the leader sent no end offset (-1): the high watermark (capped at the log end).
    """
    if diverging.end_offset == UNDEFINED_EPOCH_OFFSET:
        return TruncationTarget(min(high_watermark, log_end_offset), True)
    if diverging.epoch == UNDEFINED_EPOCH:
        return TruncationTarget(min(diverging.end_offset, log_end_offset), True)
    local = cache.end_offset_for(diverging.epoch, log_end_offset)
    if local.undefined:
        return TruncationTarget(min(diverging.end_offset, log_end_offset), True)
    if local.epoch != diverging.epoch:
        return TruncationTarget(min(local.end_offset, log_end_offset), False)
    return TruncationTarget(min(diverging.end_offset, local.end_offset, log_end_offset), True)


# ====================================================================== the file


def format_leader_epoch_checkpoint(entries: Iterable[EpochEntry]) -> str:
    items = list(entries)
    lines = [str(_VERSION), str(len(items)), *(f"{e} {s}" for e, s in items)]
    return "\n".join(lines) + "\n"


def read_leader_epoch_checkpoint(path: Path) -> list[EpochEntry] | None:
    """The entries of a checkpoint file; None if it is missing or unreadable (a warning
    says why), in which case the cache is rebuilt from the log."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("leader_epoch_checkpoint_unreadable", path=str(path), error=str(exc))
        return None
    lines = text.split("\n")
    try:
        if len(lines) < 3 or lines[-1] != "" or int(lines[0]) != _VERSION:
            raise ValueError("unexpected layout")
        count = int(lines[1])
        body = lines[2:-1]
        if count != len(body):
            raise ValueError(f"count {count} but {len(body)} entries")
        entries: list[EpochEntry] = []
        for line in body:
            fields = line.split(" ")
            if len(fields) != 2:
                raise ValueError(f"bad entry {line!r}")
            entries.append(EpochEntry(int(fields[0]), int(fields[1])))
        LeaderEpochCache(None, entries)  # validates the order
    except ValueError as exc:
        log.warning("leader_epoch_checkpoint_unreadable", path=str(path), error=str(exc))
        return None
    return entries


# ====================================================================== rebuilding


def rebuild_from_log(path: Path, segmented_log: SegmentedLog, *, reason: str) -> LeaderEpochCache:
    """Builds the cache from the partition leader epochs of the log's batches (every batch
    header is read once: O(batches), for startup) and writes the checkpoint. A batch whose
    epoch is not newer than the previous ones adds nothing (as Kafka's segment recovery)."""
    cache = LeaderEpochCache(path)
    start, end = segmented_log.log_start_offset, segmented_log.log_end_offset
    if end == start and reason == "missing":
        # An empty log (a partition just created): nothing to record, and a missing file
        # rebuilds to the same empty cache, so nothing is written until the first epoch.
        return cache
    batches = 0
    if end > start:
        latest = UNDEFINED_EPOCH
        for base_offset, _last, view in segmented_log.iter_batches(start):
            batches += 1
            epoch = _INT32.unpack_from(view, PARTITION_LEADER_EPOCH_POS)[0]
            if epoch > latest:
                cache.assign(epoch, base_offset, flush=False)
                latest = epoch
        cache.truncate_from_start(start, flush=False)
    cache.flush(force=True)  # even an empty cache: the file then exists
    log.info(
        "leader_epoch_cache_rebuilt",
        path=str(path),
        reason=reason,
        batches=batches,
        entries=len(cache),
    )
    return cache


def _epoch_of_batch_at(segmented_log: SegmentedLog, offset: int) -> int:
    return segmented_log.batch_header_at(offset).partition_leader_epoch
