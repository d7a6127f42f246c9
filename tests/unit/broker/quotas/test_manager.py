"""The quota manager: rebuilt when the image's quotas change, muting, request time, bounds."""

from __future__ import annotations

from raftka.broker.quotas.manager import (
    NO_SENSORS,
    QuotaManager,
    QuotaSensor,
    quota_user,
)
from raftka.broker.quotas.sampler import SampledRate
from raftka.common.metadata.security_image import SecurityImage
from raftka.common.security.model import quota_entity_proto
from raftka.v1.metadata_pb2 import ClientQuotaRecord, MetadataRecord


def set_quota(
    image: SecurityImage, entity: tuple[tuple[str, str | None], ...], key: str, value: float
) -> None:
    image.apply(
        MetadataRecord(
            client_quota=ClientQuotaRecord(entity=quota_entity_proto(entity), key=key, value=value)
        )
    )


def test_quota_user_strips_the_principal_type() -> None:
    assert quota_user("User:alice") == "alice"
    assert quota_user("User:ANONYMOUS") == "ANONYMOUS"
    assert quota_user("bare") == "bare"


def test_no_quotas_means_no_sensors_and_new_quotas_are_picked_up() -> None:
    image = SecurityImage()
    manager = QuotaManager(lambda: image)
    assert manager.sensors("alice", "app", 0) is NO_SENSORS
    set_quota(image, (("client-id", "app"),), "producer_byte_rate", 1000)
    sensors = manager.sensors("alice", "app", 0)
    assert sensors.produce is not None and sensors.produce.bound == 1000
    assert sensors.fetch is None and sensors.request is None
    assert manager.sensors("alice", "other", 0) is NO_SENSORS  # no quota of its own
    # A changed value keeps the measured rate and takes the new bound.
    sensors.produce.record(500, 0)
    set_quota(image, (("client-id", "app"),), "producer_byte_rate", 2000)
    again = manager.sensors("alice", "app", 10)
    assert again.produce is sensors.produce and again.produce.bound == 2000


def test_a_replaced_image_with_the_same_version_is_still_noticed() -> None:
    first, second = SecurityImage(), SecurityImage()
    current = [first]
    manager = QuotaManager(lambda: current[0])
    set_quota(second, (("user", None),), "consumer_byte_rate", 10)
    first.version = second.version
    assert manager.sensors("a", "b", 0) is NO_SENSORS
    current[0] = second
    assert manager.sensors("a", "b", 0).fetch is not None


def test_over_the_quota_the_sensor_throttles_and_mutes() -> None:
    sensor = QuotaSensor(1000, SampledRate(0), max_throttle_ms=11_000)
    assert sensor.record(1000, 0) == 0  # one window's worth in the first window: fine
    throttle = sensor.record(1000, 0)
    # 2000 over a 1 s window against 1000/s: (2000 - 1000) / 1000 * 1000 ms
    assert throttle == 1000
    assert sensor.muted_until_ms == 1000
    sensor.unrecord(1000, 0)
    assert sensor.rate.total(0) == 1000


def test_throttles_are_capped() -> None:
    sensor = QuotaSensor(1, SampledRate(0), max_throttle_ms=11_000)
    assert sensor.record(10**9, 0) == 11_000


def test_request_time_is_a_percentage_and_its_throttle_at_most_one_window() -> None:
    image = SecurityImage()
    set_quota(image, (("client-id", "app"),), "request_percentage", 10)
    manager = QuotaManager(lambda: image)
    request = manager.sensors("u", "app", 0).request
    assert request is not None
    # 50 ms of handler time in a 1 s window is 5 % of a thread: within 10 %.
    assert manager.record_request_time(request, 50, 0) == 0
    assert manager.record_request_time(request, 5000, 0) == 1000


def test_a_fetch_answer_holds_at_most_one_window_of_the_quota() -> None:
    image = SecurityImage()
    set_quota(image, (("client-id", "c"),), "consumer_byte_rate", 204800)
    manager = QuotaManager(lambda: image)
    fetch = manager.sensors("u", "c", 0).fetch
    assert fetch is not None and manager.max_bytes_in_window(fetch) == 204800


def test_a_client_sending_as_fast_as_it_can_is_held_to_its_quota() -> None:
    """Five requests in flight, each answered after the mute and the throttle: what a greedy
    producer gets over 30 simulated seconds."""
    sensor = QuotaSensor(204_800, SampledRate(0), max_throttle_ms=11_000)
    pending = [0] * 5  # when each in-flight slot sends next
    acked = 0
    while min(pending) < 30_000:
        i = pending.index(min(pending))
        start = max(pending[i], sensor.muted_until_ms) + 5
        answered = start + sensor.record(16_384, start)
        if answered <= 30_000:
            acked += 16_384
        pending[i] = answered + 1
    assert abs(acked / 30 / 204_800 - 1) < 0.05


def test_idle_sensors_are_forgotten() -> None:
    image = SecurityImage()
    set_quota(image, (("client-id", None),), "producer_byte_rate", 100)
    manager = QuotaManager(lambda: image)
    for i in range(10):
        sensor = manager.sensors("u", f"c{i}", 0).produce
        assert sensor is not None
        sensor.record(1, 0)
    assert len(manager._sensors) == 10
    manager.sensors("u", "new", 120_000)  # a new caller after the sweep interval
    assert len(manager._sensors) == 1
