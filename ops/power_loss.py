"""What a power loss does to a stopped broker's partition logs: the writes it never fsynced are
gone.

A broker's partition logs are fsynced by their flush policy (by default only when a segment
rolls or the log closes: replication, not fsync, keeps acknowledged records, as in Kafka), and
each log's ``recovery-point`` file names the offset below which everything was fsynced. After a
kill -9 the page cache still holds the rest; a power loss does not. :func:`cut_unflushed_tails`
imitates it on the data directory of a node that is not running: in each partition log, the
active segment loses part of what lies past the recovery point (by default half of those bytes,
so the cut usually falls inside a batch and leaves a torn tail for recovery to find).

The ``recovery-point`` file is written when a log is flushed with a checkpoint (on close, by
the log manager), so it may lag behind later fsyncs: with ``fsync_every_batch`` the cut can take
records a real power loss would keep. It is exact for the default flush policy, which is the
case that matters (acknowledged records on no disk, only in page caches).

Only partition logs are cut. The Raft log of a controller fsyncs every entry before anyone
relies on it, and its ``recovery-point`` file may lag behind those fsyncs, so cutting past it
would remove data no power loss could take.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from raftka.common.data_dir import PARTITION_LOGS_DIR
from raftka.common.storage.checkpoint import read_checkpoint

_BATCH_HEADER = struct.Struct(">qi")
"""A v2 batch starts with its base offset (int64) and its length after these 12 bytes."""


@dataclass(frozen=True, slots=True)
class CutTail:
    """One segment shortened by a simulated power loss."""

    segment: Path
    recovery_point: int
    """The offset from the log's ``recovery-point`` file (0 without one)."""
    flushed_bytes: int
    """The position in the segment of the first byte past the recovery point."""
    old_size: int
    new_size: int

    @property
    def lost_bytes(self) -> int:
        return self.old_size - self.new_size


def cut_unflushed_tails(data_dir: Path, keep_fraction: float = 0.5) -> list[CutTail]:
    """Shortens the active segment of every partition log under ``data_dir`` to keep only
    ``keep_fraction`` of its bytes past the recovery point. The node must not be running.
    Returns the segments that lost something."""
    if not 0.0 <= keep_fraction < 1.0:
        raise ValueError(f"keep_fraction must be in [0, 1), got {keep_fraction}")
    logs = data_dir / PARTITION_LOGS_DIR
    cuts: list[CutTail] = []
    if not logs.is_dir():
        return cuts
    for log_dir in sorted(p for p in logs.iterdir() if p.is_dir()):
        cut = cut_unflushed_tail(log_dir, keep_fraction)
        if cut is not None:
            cuts.append(cut)
    return cuts


def cut_unflushed_tail(log_dir: Path, keep_fraction: float = 0.5) -> CutTail | None:
    """The cut of :func:`cut_unflushed_tails` for one log directory (None: nothing unflushed)."""
    segments = sorted(log_dir.glob("*.log"))
    if not segments:
        return None
    active = segments[-1]
    checkpoint = read_checkpoint(log_dir)
    recovery_point = 0 if checkpoint is None else checkpoint.recovery_point
    size = active.stat().st_size
    flushed = _position_of(active, recovery_point, size)
    unflushed = size - flushed
    if unflushed <= 0:
        return None
    new_size = flushed + int(unflushed * keep_fraction)
    with active.open("r+b") as f:
        f.truncate(new_size)
        os.fsync(f.fileno())
    return CutTail(active, recovery_point, flushed, size, new_size)


def _position_of(segment: Path, offset: int, size: int) -> int:
    """The position of the first batch in ``segment`` holding an offset >= ``offset`` (found
    by walking the batch headers), or ``size`` when there is none."""
    position = 0
    with segment.open("rb") as f:
        while position + _BATCH_HEADER.size <= size:
            f.seek(position)
            base_offset, length = _BATCH_HEADER.unpack(f.read(_BATCH_HEADER.size))
            end = position + _BATCH_HEADER.size + length
            if length <= 0 or end > size:
                return position  # a torn batch: unflushed by definition
            last_offset = base_offset + _last_offset_delta(f, position)
            if last_offset >= offset:
                return position
            position = end
    return size


def _last_offset_delta(f: BinaryIO, position: int) -> int:
    """The batch's lastOffsetDelta (int32 at byte 23 of a v2 batch)."""
    f.seek(position + 23)
    data = f.read(4)
    return int(struct.unpack(">i", data)[0]) if len(data) == 4 else 0
