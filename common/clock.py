"""The two clocks Raftka reads, with names that say which is which.

- :func:`wall_clock_ms`: milliseconds since the Unix epoch. For what is stored or sent and
  compared across machines: record timestamps, retention by time, segment ages.
- :func:`monotonic_ms`: milliseconds on a clock that never jumps back. For measuring time
  on one node: sessions, lags, deadlines, timeouts. Meaningless across processes.

Code that must run under a simulator takes a clock as an argument (a ``Clock``) instead of
calling these directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
"""A function that returns a time in milliseconds (one of the two below, or a fake)."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000
