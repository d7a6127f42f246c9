"""Reporting shared by ``raftka perf consume`` and ``raftka perf produce``: live progress
once a second (to stderr), percentiles, and the final summary (to stdout)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

MB = 1024 * 1024


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile {pct} is not within 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def format_ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


class PerfProgress:
    """Running totals of records and bytes, with a line to ``stream`` every ``interval_s``
    (call :meth:`maybe_report` often: after every poll or send)."""

    def __init__(
        self,
        label: str,
        *,
        interval_s: float = 1.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.records = 0
        self.bytes = 0
        self._interval_s = interval_s
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self.started = clock()
        self._last_at = self.started
        self._last_records = 0
        self._last_bytes = 0

    def add(self, records: int, nbytes: int) -> None:
        self.records += records
        self.bytes += nbytes

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    def maybe_report(self) -> bool:
        now = self._clock()
        window = now - self._last_at
        if window < self._interval_s:
            return False
        records, nbytes = self.records - self._last_records, self.bytes - self._last_bytes
        print(
            f"{self.label}: {now - self.started:6.1f} s  {self.records:>12,} records  "
            f"{records / window:>10,.0f} records/s  {nbytes / window / MB:8.2f} MB/s",
            file=self._stream,
            flush=True,
        )
        self._last_at, self._last_records, self._last_bytes = now, self.records, self.bytes
        return True

    def summary(self, latencies_s: Sequence[float] = (), latency_label: str = "latency") -> str:
        """The final report: totals, rates, and p50/p99 of ``latencies_s`` if given."""
        elapsed = max(self.elapsed, 1e-9)
        lines = [
            f"records:      {self.records:,}",
            f"bytes:        {self.bytes:,}",
            f"elapsed:      {elapsed:.2f} s",
            f"records/s:    {self.records / elapsed:,.0f}",
            f"MB/s:         {self.bytes / elapsed / MB:.2f}",
        ]
        if latencies_s:
            lines.append(
                f"{latency_label}: p50 {format_ms(percentile(latencies_s, 50))}, "
                f"p99 {format_ms(percentile(latencies_s, 99))}, "
                f"max {format_ms(max(latencies_s))} ({len(latencies_s):,} samples)"
            )
        return "\n".join(lines)
