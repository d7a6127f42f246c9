"""Group commit (GroupFlusher): appends waiting to be durable share fsyncs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from raftka.common.storage import SegmentedLog
from tests.unit.broker.support import T0, batch, open_partition

NOW = T0 + 5_000


class CountingCondition(threading.Condition):
    """Signals ``all_waiting`` once ``expected`` threads wait on it."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.waiting = 0
        self.expected = expected
        self.all_waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting += 1
        if self.waiting >= self.expected:
            self.all_waiting.set()
        try:
            return super().wait(timeout)
        finally:
            self.waiting -= 1


def test_concurrent_flushes_share_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plog = open_partition(tmp_path, fsync_every_batch=True)
    calls: list[int] = []
    release = threading.Event()
    real_flush = SegmentedLog.flush

    def slow_flush(self: SegmentedLog, *, checkpoint: bool = True) -> None:
        calls.append(self.log_end_offset)
        real_flush(self, checkpoint=checkpoint)
        if len(calls) == 1:  # a slow fsync: it covers offset 0 only
            assert release.wait(10)

    monkeypatch.setattr(SegmentedLog, "flush", slow_flush)
    cond = CountingCondition(expected=3)
    plog._flush_policy._flusher._cond = cond
    first = plog.append_as_leader(batch(1), leader_epoch=1, now_ms=NOW, defer_flush=True)
    t1 = threading.Thread(target=plog.flush, kwargs={"up_to": first.last_offset + 1})
    t1.start()
    waiters = []
    for _ in range(3):  # appended while the first fsync is in progress
        result = plog.append_as_leader(batch(1), leader_epoch=1, now_ms=NOW, defer_flush=True)
        waiter = threading.Thread(target=plog.flush, kwargs={"up_to": result.last_offset + 1})
        waiter.start()
        waiters.append(waiter)
    assert cond.all_waiting.wait(10)
    release.set()
    for thread in [t1, *waiters]:
        thread.join(10)
        assert not thread.is_alive()
    assert calls == [1, 4]  # the three later appends shared the second fsync
    assert (plog.durable_offset, plog.high_watermark) == (4, 4)
    plog.close()
