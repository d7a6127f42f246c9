"""The sampled rate and Kafka's throttle formula, on a simulated clock."""

from __future__ import annotations

import pytest

from raftka.broker.quotas.sampler import SampledRate, throttle_time_ms


def test_a_steady_rate_is_measured_once_the_windows_fill() -> None:
    rate = SampledRate(0, num_windows=11, window_ms=1000)
    for t in range(0, 30_000, 100):
        rate.record(100, t)  # 1000 per second
    assert rate.rate(29_950) == pytest.approx(1000, rel=0.02)


def test_a_new_client_is_measured_over_at_least_min_full_windows() -> None:
    rate = SampledRate(0, min_full_windows=1)
    rate.record(500, 100)
    assert rate.window_size_ms(100) == 1100  # 100 ms elapsed + one full window
    assert rate.rate(100) == pytest.approx(500 / 1.1)
    kafka = SampledRate(0, min_full_windows=10)
    kafka.record(500, 100)
    assert kafka.window_size_ms(100) == 10_100


def test_windows_older_than_the_ring_are_forgotten() -> None:
    rate = SampledRate(0, num_windows=3, window_ms=1000)
    rate.record(900, 0)
    assert rate.total(2_999) == 900
    assert rate.total(3_000) == 0
    assert rate.rate(3_000) == 0


def test_the_ring_reuses_the_oldest_window() -> None:
    rate = SampledRate(0, num_windows=3, window_ms=1000)
    for t in (0, 1000, 2000, 3000):
        rate.record(1, t)
    assert rate.total(3000) == 3  # the window of t=0 was reused for t=3000


def test_a_sampled_rate_refuses_a_meaningless_shape() -> None:
    with pytest.raises(ValueError, match="at least 2 windows"):
        SampledRate(0, num_windows=1)
    with pytest.raises(ValueError):
        SampledRate(0, num_windows=3, min_full_windows=3)


def test_the_throttle_formula_is_kafkas() -> None:
    assert throttle_time_ms(100, 100, 10_000) == 0
    assert throttle_time_ms(50, 100, 10_000) == 0
    # (observed - bound) / bound * window
    assert throttle_time_ms(150, 100, 10_000) == 5000
    assert throttle_time_ms(300, 100, 2_000) == 4000
