"""What client quotas cost a Produce or Fetch on the broker, per request.

    .venv/bin/python scripts/bench_quotas.py --iterations 200000

In process, no gRPC: the quota part of the handler (current caller, quota user, the quota
manager's lookup; with a quota, recording bytes and handler time and computing the throttle)
against a baseline loop. Numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from raftka.broker.quotas.manager import NO_SENSORS, QuotaManager, quota_user
from raftka.broker.quotas.throttling import throttle_ms
from raftka.common.clock import monotonic_ms
from raftka.common.metadata.security_image import SecurityImage
from raftka.common.security.caller import current_caller
from raftka.common.security.model import quota_entity_proto
from raftka.v1.metadata_pb2 import ClientQuotaRecord, MetadataRecord


def per_call_ns(fn: Callable[[], object], iterations: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(iterations):
        fn()
    return (time.perf_counter_ns() - started) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=200_000)
    n = parser.parse_args().iterations

    image_none = SecurityImage()
    none = QuotaManager(lambda: image_none)

    def no_quotas() -> object:
        sensors = none.sensors(quota_user(current_caller().principal), "app", monotonic_ms())
        return sensors is NO_SENSORS

    image = SecurityImage()
    image.apply(
        MetadataRecord(
            client_quota=ClientQuotaRecord(
                entity=quota_entity_proto((("client-id", "other"),)),
                key="producer_byte_rate",
                value=1e6,
            )
        )
    )
    some = QuotaManager(lambda: image)

    def quotas_for_others() -> object:
        return some.sensors(quota_user(current_caller().principal), "app", monotonic_ms())

    image_mine = SecurityImage()
    image_mine.apply(
        MetadataRecord(
            client_quota=ClientQuotaRecord(
                entity=quota_entity_proto((("client-id", "app"),)),
                key="producer_byte_rate",
                value=1e12,
            )
        )
    )
    mine = QuotaManager(lambda: image_mine)

    def quota_applies() -> object:
        sensors = mine.sensors(quota_user(current_caller().principal), "app", monotonic_ms())
        return throttle_ms(mine, sensors, sensors.produce, 16384, 0.5)

    baseline = per_call_ns(lambda: None, n)
    for name, fn in (
        ("no quotas at all", no_quotas),
        ("quotas exist, none for this caller", quotas_for_others),
        ("a producer_byte_rate applies (record + throttle)", quota_applies),
    ):
        cost = per_call_ns(fn, n) - baseline
        print(f"{name:52s} {cost / 1000:6.2f} us per request")


if __name__ == "__main__":
    main()
