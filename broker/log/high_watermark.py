"""The high watermark of one partition replica, and its ``high-watermark-checkpoint`` file.

Offsets below the high watermark are committed: reads for consumers (and ListOffsets latest)
stop there, retention never deletes at or above it, and truncation never goes below it. It
only moves forward, except when a truncation allowed below it (a replica rejoining after an
unclean leader election) or a restart of the log lowers it.

Two modes. Until replication drives it (``follows_log_end``), it follows the log end offset
(the partition log advances it after every append, or every flush when appends are fsynced)
and is never checkpointed. Otherwise it is restored from the checkpoint on open (capped at the
log end; the log start offset without a checkpoint), the leader's replication state or the
follower's fetches move it, and it is checkpointed periodically and on close.

The checkpoint: Kafka keeps every partition's high watermark in one
``replication-offset-checkpoint`` per log directory; Raftka keeps one small file per partition
directory, so that partitions checkpoint independently. Text, two lines: format version (0) and
the high watermark. Written atomically; a missing or unreadable file means "unknown".
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog

from raftka.common.files import atomic_write

HIGH_WATERMARK_CHECKPOINT_FILE = "high-watermark-checkpoint"
_VERSION = 0

log = structlog.get_logger(__name__)


class HighWatermark:
    """The high watermark of one partition replica (thread-safe)."""

    def __init__(
        self, directory: Path, value: int, *, follows_log_end: bool, checkpointed: int | None
    ) -> None:
        """Use :meth:`open`."""
        self._dir = directory
        self._value = value
        self._follows_log_end = follows_log_end
        self._checkpointed = checkpointed
        self._lock = threading.RLock()
        self._checkpoint_lock = threading.Lock()
        self._listener: Callable[[int], object] | None = None

    @classmethod
    def open(
        cls, directory: Path, *, log_start: int, log_end: int, follows_log_end: bool
    ) -> HighWatermark:
        """At ``log_end`` when it ``follows_log_end``; otherwise where the checkpoint in
        ``directory`` left it, within [``log_start``, ``log_end``] (``log_start`` without one)."""
        if follows_log_end:
            return cls(directory, log_end, follows_log_end=True, checkpointed=None)
        restored = read_high_watermark(directory)
        value = log_start if restored is None else min(max(restored, log_start), log_end)
        return cls(directory, value, follows_log_end=False, checkpointed=restored)

    @property
    def value(self) -> int:
        return self._value

    def listen(self, listener: Callable[[int], object]) -> None:
        """Calls ``listener`` with the new value whenever it changes (advanced, lowered or
        restarted), under its lock: the listener sees the changes in order and must be quick
        (the producer state releases the transactions whose marker it passed)."""
        self._listener = listener

    def _set(self, offset: int) -> None:
        """Under the lock."""
        self._value = offset
        if self._listener is not None:
            self._listener(offset)

    @property
    def follows_log_end(self) -> bool:
        """Whether appends move it (no replication drives it yet)."""
        return self._follows_log_end

    @contextlib.contextmanager
    def frozen(self) -> Iterator[HighWatermark]:
        """Holds it still: no other thread moves it until the block ends (a truncation checks
        it and truncates under this; methods of this object may be called inside)."""
        with self._lock:
            yield self

    def advance(self, offset: int) -> int:
        """Moves it forward to ``offset`` (never backwards); returns it."""
        with self._lock:
            if offset > self._value:
                self._set(offset)
            return self._value

    def on_log_end(self, offset: int) -> None:
        """Appended (or flushed) up to ``offset``: followed when it follows the log end."""
        if self._follows_log_end:
            self.advance(offset)

    def lower_to(self, offset: int) -> bool:
        """Brings it down to ``offset`` if above (the log was truncated below it); returns
        whether it moved. It is then checkpointed, so a restart does not restore the old one."""
        with self._lock:
            if offset >= self._value:
                return False
            self._set(offset)
        self.checkpoint()
        return True

    def restart_at(self, offset: int) -> None:
        """The log restarted empty at ``offset`` (>= the high watermark): it moves there, and
        is checkpointed when replication drives it."""
        with self._lock:
            self._set(offset)
        if not self._follows_log_end:
            self.checkpoint()

    def checkpoint(self) -> int:
        """Writes it to ``high-watermark-checkpoint`` (atomically; skipped when the file already
        holds it) and returns it."""
        with self._checkpoint_lock:
            value = self._value
            if value != self._checkpointed:
                write_high_watermark(self._dir, value)
                self._checkpointed = value
            return value

    def on_close(self) -> None:
        """Checkpointed on a clean shutdown when replication drives it."""
        if not self._follows_log_end:
            self.checkpoint()

    def __repr__(self) -> str:
        return f"HighWatermark({self._value}, follows_log_end={self._follows_log_end})"


def read_high_watermark(directory: Path) -> int | None:
    """The checkpointed high watermark in ``directory``, or None (missing or unreadable)."""
    path = directory / HIGH_WATERMARK_CHECKPOINT_FILE
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("high_watermark_checkpoint_unreadable", path=str(path), error=str(exc))
        return None
    lines = text.split("\n")
    try:
        if len(lines) != 3 or lines[2] != "" or int(lines[0]) != _VERSION:
            raise ValueError("unexpected layout")
        value = int(lines[1])
        if value < 0:
            raise ValueError("negative high watermark")
    except ValueError as exc:
        log.warning("high_watermark_checkpoint_unreadable", path=str(path), error=str(exc))
        return None
    return value


def write_high_watermark(directory: Path, high_watermark: int) -> None:
    text = f"{_VERSION}\n{high_watermark}\n"
    atomic_write(directory / HIGH_WATERMARK_CHECKPOINT_FILE, text.encode("ascii"))
