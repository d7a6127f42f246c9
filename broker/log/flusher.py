"""Group commit for one partition log: concurrent appends waiting to be durable share fsyncs."""

from __future__ import annotations

import threading

from raftka.broker.log.high_watermark import HighWatermark
from raftka.common.storage import SegmentedLog


class GroupFlusher:
    """fsyncs a segmented log on behalf of many waiting appends at once, and moves a high
    watermark that follows the log end to what is durable."""

    def __init__(self, segmented_log: SegmentedLog, high_watermark: HighWatermark) -> None:
        self._log = segmented_log
        self._hw = high_watermark
        self._cond = threading.Condition()
        self._flushing = False

    def flush(self, up_to: int | None = None, *, checkpoint: bool = False) -> None:
        """fsyncs what was appended. With ``up_to``, returns at once if every offset below it
        is already durable; a call that finds another flush in progress waits for it first,
        so that concurrent callers share fsyncs. ``checkpoint`` also writes the recovery
        point (fewer segments to rescan after a crash)."""
        with self._cond:
            while True:
                if up_to is not None and self._log.recovery_point >= up_to:
                    return
                if not self._flushing:
                    break
                self._cond.wait()
            self._flushing = True
        try:
            self._log.flush(checkpoint=checkpoint)
        finally:
            with self._cond:
                self._hw.on_log_end(self._log.recovery_point)
                self._flushing = False
                self._cond.notify_all()
