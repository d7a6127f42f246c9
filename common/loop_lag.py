"""How late a process's event loop runs its timers: a lag probe.

A task sleeps ``interval_s`` again and again; how much later than asked it wakes is the lag,
the time something held the loop (an apply, an image rebuild, a long synchronous call). Raft
ticks, heartbeats and session checks share that loop, so a lag near the election timeout or
the broker session means elections and fencing. The probe keeps the worst lag seen and logs
``event_loop_lagged`` for every lag over ``report_s``.

``LagTracker`` is the clock-free part (fed wake-up times), so it is tested with a virtual
clock; ``LoopLagProbe`` drives it with the loop's own clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from raftka.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

PROBE_INTERVAL_S = 0.05
REPORT_LAG_S = 0.2


@dataclass(slots=True)
class LagTracker:
    """The lag of each wake-up of a timer asked to fire every ``interval_s``."""

    interval_s: float
    report_s: float = REPORT_LAG_S
    max_lag_s: float = 0.0
    """The worst lag seen since start."""
    samples: int = 0

    def woke(self, slept_from: float, now: float) -> float | None:
        """A wake-up at ``now`` of a sleep that began at ``slept_from``: returns the lag when it
        is worth reporting (over ``report_s``), else None."""
        lag = max(0.0, now - slept_from - self.interval_s)
        self.samples += 1
        self.max_lag_s = max(self.max_lag_s, lag)
        return lag if lag > self.report_s else None


class LoopLagProbe:
    """Measures the running loop's lag until stopped (``start`` / ``stop``)."""

    def __init__(
        self, interval_s: float = PROBE_INTERVAL_S, report_s: float = REPORT_LAG_S
    ) -> None:
        self.tracker = LagTracker(interval_s, report_s)
        self._task: asyncio.Task[None] | None = None

    @property
    def max_lag_s(self) -> float:
        return self.tracker.max_lag_s

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loop-lag-probe")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tracker = self.tracker
        while True:
            slept_from = loop.time()
            await asyncio.sleep(tracker.interval_s)
            lag = tracker.woke(slept_from, loop.time())
            if lag is not None:
                log.warning(
                    "event_loop_lagged",
                    lag_ms=round(lag * 1000),
                    max_lag_ms=round(tracker.max_lag_s * 1000),
                )
