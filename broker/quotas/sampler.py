"""A rate measured over a ring of time windows (Kafka's ``SampledStat`` + ``Rate``).

Values are added to the current window; a window older than ``num_windows * window_ms`` is
forgotten. The rate is the sum over the kept windows divided by the time they cover, counted as
at least ``min_full_windows`` full windows: a client that just started is measured as if it had
been idle before, so a short burst is allowed and a steady sender is measured at its real rate
once the windows have filled.

Kafka counts at least ``num_windows - 1`` windows. With the throttle formula that lets a new
(or long idle) client send ten windows' worth at once, and again each time the window holding
that burst expires: a client pushing as fast as it can then moves in bursts of ten seconds'
worth every eleven seconds, above its quota over any period shorter than minutes. Raftka counts
at least one window by default, so the burst is one window's worth and the rate over any period
of a few windows stays near the quota (measured: the 30 s integration test). Sans-I/O: every
call takes the time.
"""

from __future__ import annotations


class SampledRate:
    """Value per second over the last ``num_windows`` windows of ``window_ms``."""

    __slots__ = (
        "_current",
        "_min_full",
        "_num",
        "_starts",
        "_values",
        "_window_ms",
        "last_record_ms",
    )

    def __init__(
        self,
        now_ms: int,
        *,
        num_windows: int = 11,
        window_ms: int = 1000,
        min_full_windows: int = 1,
    ) -> None:
        if num_windows < 2 or window_ms <= 0 or not 0 < min_full_windows < num_windows:
            raise ValueError(
                "a sampled rate needs at least 2 windows of a positive length, and counts "
                "between 1 and num_windows - 1 of them at least"
            )
        self._num = num_windows
        self._min_full = min_full_windows
        self._window_ms = window_ms
        self._starts = [now_ms] * num_windows
        self._values = [0.0] * num_windows
        self._current = 0
        self.last_record_ms = now_ms
        """When a value was last recorded (idle rates are dropped by the quota manager)."""

    def record(self, value: float, now_ms: int) -> None:
        i = self._current
        if now_ms - self._starts[i] >= self._window_ms:
            i = self._current = (i + 1) % self._num
            self._starts[i] = now_ms
            self._values[i] = 0.0
        self._values[i] += value
        self.last_record_ms = now_ms

    def window_size_ms(self, now_ms: int) -> int:
        """The time the kept windows cover, at least ``min_full_windows`` windows (Kafka's
        ``Rate.windowSize``). Forgets expired windows first."""
        self._purge(now_ms)
        elapsed = now_ms - min(self._starts)
        full = elapsed // self._window_ms
        if full < self._min_full:
            elapsed += (self._min_full - full) * self._window_ms
        return elapsed

    def total(self, now_ms: int) -> float:
        self._purge(now_ms)
        return sum(self._values)

    def rate(self, now_ms: int) -> float:
        """Value per second."""
        window = self.window_size_ms(now_ms)
        return sum(self._values) * 1000.0 / window

    def _purge(self, now_ms: int) -> None:
        expire = self._num * self._window_ms
        starts, values = self._starts, self._values
        for i in range(self._num):
            if now_ms - starts[i] >= expire:
                starts[i] = now_ms
                values[i] = 0.0


def throttle_time_ms(rate: float, bound: float, window_size_ms: int) -> int:
    """How long to hold a client back whose measured ``rate`` exceeds ``bound``: long enough
    for its rate over the window to fall back to the bound (Kafka's ``QuotaUtils.throttleTime``:
    ``(rate - bound) / bound * window``); 0 within the quota."""
    if rate <= bound:
        return 0
    return round((rate - bound) / bound * window_size_ms)
