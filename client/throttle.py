"""What a client noticed of broker quotas: the throttle times its answers carried.

A broker over a client's quota holds its answer for the throttle time and says so in
``throttle_time_ms`` (Kafka's delayed response), so the client needs to do nothing but wait,
which it already did. Producers and consumers count what they saw here (``throttle``
attributes) and log each throttled answer at debug level, so an application can tell a slow
broker from a quota.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class ThrottleStats:
    """Counts over the answers of one producer's or consumer's brokers."""

    throttled_responses: int = 0
    """Answers that carried a throttle time above 0."""
    total_ms: int = 0
    """The sum of those throttle times."""
    max_ms: int = 0
    """The longest one."""
    last_ms: int = 0
    """The throttle time of the last answer (0 when it was not throttled)."""

    def note(self, throttle_ms: int, broker: str, request: str) -> None:
        self.last_ms = throttle_ms
        if throttle_ms <= 0:
            return
        self.throttled_responses += 1
        self.total_ms += throttle_ms
        self.max_ms = max(self.max_ms, throttle_ms)
        log.debug("quota_throttled", broker=broker, request=request, throttle_ms=throttle_ms)

    def as_dict(self) -> dict[str, int]:
        return {
            "throttled_responses": self.throttled_responses,
            "throttle_time_ms_total": self.total_ms,
            "throttle_time_ms_max": self.max_ms,
            "throttle_time_ms_last": self.last_ms,
        }
