"""When a partition's appends are made durable, and which appends and reads are cheap enough
to run on the event loop.

An append is fsynced before it is acknowledged when the broker's ``fsync_every_batch`` or the
topic's ``flush.messages=1`` asks for it (through group commit: :mod:`.flusher`), else every
``flush.messages`` offsets; meanwhile a high watermark that follows the log end moves with
it. Appends and tail reads of at most :data:`LIGHT_BYTES` that need no fsync are page-cache
work, cheaper on the event loop than the hop to an I/O thread and back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from raftka.broker.log.config import PartitionLogConfig
from raftka.broker.log.flusher import GroupFlusher
from raftka.broker.log.high_watermark import HighWatermark
from raftka.common.storage import SegmentedLog

LIGHT_BYTES = 64 * 1024
"""Appends and tail reads up to this size are page-cache work: cheaper on the event loop
than the hop to an I/O thread and back (see :meth:`FlushPolicy.append_is_light`)."""


class FlushPolicy:
    """The flush policy of one partition log, and what it knows of the last append."""

    def __init__(
        self,
        segmented_log: SegmentedLog,
        high_watermark: HighWatermark,
        write_lock: threading.Lock,
        config: Callable[[], PartitionLogConfig],
        *,
        fsync_every_batch: bool,
    ) -> None:
        self._log = segmented_log
        self._hw = high_watermark
        self._write_lock = write_lock
        self._config = config
        self._fsync_every_batch = fsync_every_batch
        self._flusher = GroupFlusher(segmented_log, high_watermark)
        self._last_append: tuple[int, int, int] = (-1, -1, 0)
        """The last producer or follower append: (base offset, end offset, bytes), for
        :meth:`tail_is_small`."""

    @property
    def sync_appends(self) -> bool:
        """Whether every append must be fsynced before it is acknowledged (the broker's
        ``fsync_every_batch``, or the topic's ``flush.messages=1``)."""
        return self._fsync_every_batch or self._config().flush_messages <= 1

    def append_is_light(self, nbytes: int) -> bool:
        """Whether an append of ``nbytes`` does no blocking disk work worth an I/O-thread
        hop: small (at most LIGHT_BYTES), not fsynced per write (:attr:`sync_appends`), not
        due for a periodic flush, and not held up by a truncation or compaction. Such an append is a page-cache write (a segment roll,
        once per segment, also creates files); the broker runs it on its event loop."""
        return (
            nbytes <= LIGHT_BYTES
            and not self.sync_appends
            # at most nbytes records: no flush.messages flush can fall due
            and self._log.log_end_offset - self._log.recovery_point + nbytes
            < self._config().flush_messages
            and not self._write_lock.locked()  # a truncation or compaction would block the loop
        )

    def tail_is_small(self, offset: int) -> bool:
        """Whether reading from ``offset`` to the log end reads at most LIGHT_BYTES, known
        without touching the disk: at the log end, or when ``offset`` starts the last append
        and nothing came after it (a caught-up follower one append behind, the common case
        at low rates). Such a read comes from the page cache; the broker runs it inline."""
        end = self._log.log_end_offset
        if offset >= end:
            return True
        base, last_end, nbytes = self._last_append
        return offset == base and last_end == end and nbytes <= LIGHT_BYTES

    def record_append(self, base_offset: int, end_offset: int, nbytes: int) -> None:
        """A producer or follower append wrote ``nbytes`` at [base_offset, end_offset)."""
        self._last_append = (base_offset, end_offset, nbytes)

    def after_append(self, next_offset: int, *, defer_flush: bool) -> None:
        """Flushes what an append that ended the log at ``next_offset`` makes due (unless
        ``defer_flush``: the caller flushes, sharing the fsync), or moves a high watermark
        that follows the log end."""
        if self.sync_appends:
            if not defer_flush:
                self.flush(up_to=next_offset)
        else:
            self._hw.on_log_end(next_offset)
            if next_offset - self._log.recovery_point >= self._config().flush_messages:
                self.flush()

    def flush(self, up_to: int | None = None, *, checkpoint: bool = False) -> None:
        """fsyncs what was appended, sharing fsyncs among concurrent callers (group commit: see
        :meth:`GroupFlusher.flush <raftka.broker.log.flusher.GroupFlusher.flush>`)."""
        self._flusher.flush(up_to, checkpoint=checkpoint)
