"""The broker's quota manager: a rate per quota entity, and the throttle time of each request.

Kafka's model: the broker records what a request cost (produced bytes, fetched bytes, handler
time), measures the rate of the caller's quota entity, and when it is above the quota computes
how long the client must wait for the rate to fall back to it. The broker then holds the
response that long and says so in ``throttle_time_ms``; a request is never failed for a quota.
While a quota entity is being throttled its further requests wait before they are handled
(Kafka mutes the client's channel): otherwise a client with several requests in flight would
exceed its quota by what those requests carry.

Quotas come from the metadata image (``image.security.quotas``, set by AlterClientQuotas); the
lookup is rebuilt only when the image's security part changes, and a broker without quotas pays
one comparison per request. Sans-I/O: callers pass the time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from raftka.broker.quotas.lookup import MeasuredEntity, QuotaLookup
from raftka.broker.quotas.sampler import SampledRate, throttle_time_ms
from raftka.common.metadata.security_image import SecurityImage

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"

SWEEP_INTERVAL_MS = 60_000
"""How often rates idle for longer than the measured windows are forgotten."""
MAX_CACHED_CALLERS = 100_000
"""The most (user, client id) resolutions kept; the cache starts afresh past it."""


def quota_user(principal: str) -> str:
    """The quota user of a principal: ``User:alice`` -> ``alice`` (``User:ANONYMOUS`` ->
    ``ANONYMOUS``)."""
    _, sep, name = principal.partition(":")
    return name if sep else principal


class QuotaSensor:
    """The measured rate of one quota entity for one quota key, and its bound."""

    __slots__ = ("bound", "max_throttle_ms", "muted_until_ms", "rate")

    def __init__(self, bound: float, rate: SampledRate, max_throttle_ms: int) -> None:
        self.bound = bound
        self.rate = rate
        self.max_throttle_ms = max_throttle_ms
        self.muted_until_ms = 0
        """Until when the entity's further requests wait before being handled."""

    def record(self, value: float, now_ms: int) -> int:
        """Add what a request cost; return its throttle time in ms (0 within the quota), at
        most ``max_throttle_ms``, and mute the entity for it."""
        self.rate.record(value, now_ms)
        window = self.rate.window_size_ms(now_ms)
        throttle = throttle_time_ms(self.rate.rate(now_ms), self.bound, window)
        throttle = min(throttle, self.max_throttle_ms)
        if throttle > 0:
            self.muted_until_ms = max(self.muted_until_ms, now_ms + throttle)
        return throttle

    def unrecord(self, value: float, now_ms: int) -> None:
        """Take back a recorded cost (a throttled fetch that returns no records)."""
        self.rate.record(-value, now_ms)


@dataclass(frozen=True, slots=True)
class CallerSensors:
    """The sensors that apply to one caller; None where no quota of that key applies."""

    produce: QuotaSensor | None
    fetch: QuotaSensor | None
    request: QuotaSensor | None


NO_SENSORS = CallerSensors(None, None, None)


class QuotaManager:
    """Quota sensors for the callers of one broker."""

    def __init__(
        self,
        security: Callable[[], SecurityImage],
        *,
        num_windows: int = 11,
        window_ms: int = 1000,
    ) -> None:
        """``security``: the current security image (``lambda: follower.image.security``);
        ``num_windows`` x ``window_ms``: Kafka's quota.window.num x quota.window.size.seconds."""
        self._security = security
        self._num_windows = num_windows
        self._window_ms = window_ms
        self._image: SecurityImage | None = None
        self._version = -1
        self._any = False
        self._lookups: dict[str, QuotaLookup] = {}
        self._callers: dict[tuple[str, str], CallerSensors] = {}
        self._sensors: dict[tuple[str, MeasuredEntity], QuotaSensor] = {}
        self._next_sweep_ms = 0

    @property
    def window_ms(self) -> int:
        return self._window_ms

    def sensors(self, user: str, client_id: str, now_ms: int) -> CallerSensors:
        """The sensors of the caller (``NO_SENSORS`` when no quota applies)."""
        image = self._security()
        if image is not self._image or image.version != self._version:
            self._rebuild(image)
        if not self._any:
            return NO_SENSORS
        found = self._callers.get((user, client_id))
        if found is None:
            if now_ms >= self._next_sweep_ms:
                self._sweep(now_ms)
            if len(self._callers) >= MAX_CACHED_CALLERS:
                self._callers.clear()
            found = CallerSensors(
                self._sensor(PRODUCER_BYTE_RATE, user, client_id, now_ms),
                self._sensor(CONSUMER_BYTE_RATE, user, client_id, now_ms),
                self._sensor(REQUEST_PERCENTAGE, user, client_id, now_ms),
            )
            if found == NO_SENSORS:
                found = NO_SENSORS  # callers without quotas take the handlers' fast path
            self._callers[(user, client_id)] = found
        return found

    def record_request_time(self, sensor: QuotaSensor, elapsed_ms: float, now_ms: int) -> int:
        """Record handler time as a percentage of one thread (``elapsed_ms`` per second is
        ``elapsed_ms / 10`` %); the throttle is at most one window, as in Kafka."""
        return sensor.record(elapsed_ms / 10.0, now_ms)

    def max_bytes_in_window(self, sensor: QuotaSensor) -> int:
        """The most bytes one fetch answer may hold under ``sensor``'s quota: one window's worth
        (Kafka caps fetch.max.bytes so, or a large answer would be throttled for ever)."""
        return max(1, int(sensor.bound * self._window_ms / 1000))

    def _rebuild(self, image: SecurityImage) -> None:
        quotas = image.quotas
        self._lookups = {
            key: QuotaLookup(key, quotas)
            for key in (PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE)
        }
        self._any = any(self._lookups.values())
        self._callers.clear()
        self._image, self._version = image, image.version

    def _sensor(self, key: str, user: str, client_id: str, now_ms: int) -> QuotaSensor | None:
        applied = self._lookups[key].find(user, client_id)
        if applied is None:
            return None
        sensor = self._sensors.get((key, applied.measured))
        if sensor is None:
            sensor = self._sensors[(key, applied.measured)] = QuotaSensor(
                applied.bound,
                SampledRate(now_ms, num_windows=self._num_windows, window_ms=self._window_ms),
                # Kafka caps request-time throttles at one window, byte throttles at all.
                self._window_ms
                if key == REQUEST_PERCENTAGE
                else self._num_windows * self._window_ms,
            )
        sensor.bound = applied.bound
        return sensor

    def _sweep(self, now_ms: int) -> None:
        """Forget sensors idle for longer than their windows (their rate is 0 again)."""
        self._next_sweep_ms = now_ms + SWEEP_INTERVAL_MS
        idle_ms = self._num_windows * self._window_ms
        stale = [
            k
            for k, s in self._sensors.items()
            if now_ms - s.rate.last_record_ms >= idle_ms and s.muted_until_ms <= now_ms
        ]
        if stale:
            for k in stale:
                del self._sensors[k]
            self._callers.clear()
