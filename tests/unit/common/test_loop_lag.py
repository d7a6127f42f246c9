"""LagTracker: the lag of a periodic timer's wake-ups, from given times (a virtual clock)."""

from __future__ import annotations

from raftka.common.loop_lag import LagTracker


def test_lag_is_the_time_past_the_interval_and_only_large_lags_are_reported() -> None:
    tracker = LagTracker(interval_s=0.05, report_s=0.2)
    assert tracker.woke(10.0, 10.05) is None  # on time
    assert tracker.woke(10.05, 10.15) is None  # 50 ms late: kept, not reported
    assert abs(tracker.max_lag_s - 0.05) < 1e-9
    lag = tracker.woke(10.15, 10.7)  # the loop was held for half a second
    assert lag is not None and abs(lag - 0.5) < 1e-9
    assert tracker.woke(10.7, 10.74) is None  # early (a coarse clock) counts as no lag
    assert abs(tracker.max_lag_s - 0.5) < 1e-9 and tracker.samples == 4
