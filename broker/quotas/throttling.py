"""Applying quotas to a request: wait while muted, then record its cost and hold its answer.

The asyncio side of the quota manager, used by the BrokerService's Produce and Fetch. A request
of a throttled quota entity first waits out the mute (Kafka mutes the channel), is then handled,
records its bytes and handler time, and its answer is held for the larger of the two throttle
times, which the answer carries as ``throttle_time_ms``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from raftka.broker.quotas.manager import CallerSensors, QuotaManager, QuotaSensor
from raftka.common.clock import monotonic_ms


async def wait_unmuted(*sensors: QuotaSensor | None) -> None:
    """Wait until none of ``sensors`` is muted."""
    until = max((s.muted_until_ms for s in sensors if s is not None), default=0)
    delay = until - monotonic_ms()
    if delay > 0:
        await asyncio.sleep(delay / 1000)


def throttle_ms(
    quotas: QuotaManager,
    sensors: CallerSensors,
    byte_sensor: QuotaSensor | None,
    nbytes: int,
    handler_ms: float,
) -> int:
    """Record a handled request's bytes (on ``byte_sensor``) and handler time; return how long
    to hold its answer (0: not throttled)."""
    now = monotonic_ms()
    throttle = byte_sensor.record(nbytes, now) if byte_sensor is not None else 0
    if sensors.request is not None:
        throttle = max(throttle, quotas.record_request_time(sensors.request, handler_ms, now))
    return throttle


T = TypeVar("T")


async def under_quota(
    quotas: QuotaManager,
    sensors: CallerSensors,
    byte_sensor: QuotaSensor | None,
    work: Callable[[], Awaitable[tuple[T, int, float]]],
) -> tuple[T, int]:
    """Serve a request of a caller with quotas: wait out a mute, run ``work`` (its answer, its
    bytes, and the seconds it spent waiting for data, which are not handler time), record
    the cost, and hold the answer for the throttle. Returns the answer and the throttle in
    milliseconds (0: not throttled), which the answer should carry."""
    await wait_unmuted(byte_sensor, sensors.request)
    started = time.monotonic()
    answer, nbytes, waited_s = await work()
    handler_ms = (time.monotonic() - started - waited_s) * 1000
    throttle = throttle_ms(quotas, sensors, byte_sensor, nbytes, handler_ms)
    if throttle > 0:
        await asyncio.sleep(throttle / 1000)
    return answer, throttle
