from __future__ import annotations

import asyncio
import random

from prometheus_client import CollectorRegistry

from raftka.client.producer.metrics import Buckets, ProducerCollector, ProducerMetrics
from tests.unit.client.fake_leaders import FakeLeaders
from tests.unit.client.producer.test_producer_sender import TP, Harness


def test_buckets_are_cumulative_and_end_at_inf() -> None:
    b = Buckets((1.0, 10.0))
    for v in (0.5, 1.0, 5.0, 50.0):
        b.observe(v)
    assert b.cumulative() == [("1.0", 2), ("10.0", 3), ("+Inf", 4)]
    assert (b.count, b.sum) == (4, 56.5)


def test_the_sender_counts_sends_and_retries_and_a_registry_exports_them() -> None:
    cluster = FakeLeaders(random.Random(3), refuse=0.5)

    async def main() -> ProducerMetrics:
        async with Harness(
            cluster, linger_ms=0, batch_size=64, retry_backoff_ms=1, retry_backoff_max_ms=5
        ) as h:
            await asyncio.gather(*[await h.send(TP, b"r%d" % i) for i in range(40)])
            return h.sender.metrics

    metrics = asyncio.run(main())
    snapshot = metrics.snapshot()
    assert snapshot["records_sent"] == 40
    assert snapshot["batches_sent"] == metrics.batch_size.count >= 2
    assert snapshot["retries"] > 0, "half the requests were refused"
    assert snapshot["record_errors"] == 0
    assert snapshot["batch_size_avg_bytes"] > 0

    registry = CollectorRegistry()
    registry.register(ProducerCollector(metrics, "app-1"))
    get = registry.get_sample_value
    labels = {"client_id": "app-1"}
    assert get("raftka_producer_records_sent_total", labels) == 40
    assert get("raftka_producer_retries_total", labels) == snapshot["retries"]
    assert get("raftka_producer_batch_size_bytes_count", labels) == snapshot["batches_sent"]
    inf = get("raftka_producer_queue_time_seconds_bucket", {**labels, "le": "+Inf"})
    assert inf == snapshot["batches_sent"]
