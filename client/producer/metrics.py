"""The producer's own metrics, for applications to export (Kafka's producer-metrics).

The sender counts per batch, never per record (an integer add or two and a bucket search per
batch sent), so the hot path pays nothing per record. ``AsyncProducer.metrics()`` (and the
blocking ``Producer.metrics()``) returns a plain dict; ``metrics_collector()`` returns a
prometheus_client Collector an application registers in its own registry::

    registry.register(producer.metrics_collector())

The Collector names its series ``raftka_producer_*`` with a ``client_id`` label.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from raftka.common.metrics.spec import MetricKind, MetricSpec

RECORDS_SENT = MetricSpec(
    "raftka_producer_records_sent_total",
    MetricKind.COUNTER,
    "Records sent to brokers (counted at a batch's first send, not its retries).",
    ("client_id",),
)
BATCHES_SENT = MetricSpec(
    "raftka_producer_batches_sent_total",
    MetricKind.COUNTER,
    "Record batches sent (first sends).",
    ("client_id",),
)
RETRIES = MetricSpec(
    "raftka_producer_retries_total",
    MetricKind.COUNTER,
    "Batch sends retried after a retriable error.",
    ("client_id",),
)
RECORD_ERRORS = MetricSpec(
    "raftka_producer_record_errors_total",
    MetricKind.COUNTER,
    "Records whose send failed for good (the future got the error).",
    ("client_id",),
)
BATCH_SIZE = MetricSpec(
    "raftka_producer_batch_size_bytes",
    MetricKind.HISTOGRAM,
    "Bytes of each batch sent (as encoded, after compression).",
    ("client_id",),
)
QUEUE_TIME = MetricSpec(
    "raftka_producer_queue_time_seconds",
    MetricKind.HISTOGRAM,
    "Time from a batch's first record to its first send (linger and waiting for a request slot).",
    ("client_id",),
)
PRODUCER_METRICS = (RECORDS_SENT, BATCHES_SENT, RETRIES, RECORD_ERRORS, BATCH_SIZE, QUEUE_TIME)

BATCH_SIZE_BUCKETS = (
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
)  # fmt: skip
QUEUE_TIME_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class Buckets:
    """A histogram's counts kept as plain numbers (one bisect per observation)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus buckets: (upper bound, observations <= it), ending with +Inf."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((repr(bound), running))
        out.append(("+Inf", self.count))
        return out


class ProducerMetrics:
    """Counters one producer's sender keeps (plain attributes; read them any time)."""

    def __init__(self) -> None:
        self.records_sent = 0
        self.batches_sent = 0
        self.retries = 0
        self.record_errors = 0
        self.batch_size = Buckets(BATCH_SIZE_BUCKETS)
        self.queue_time = Buckets(QUEUE_TIME_BUCKETS)

    def first_send(self, records: int, size_bytes: int, queued_s: float) -> None:
        self.records_sent += records
        self.batches_sent += 1
        self.batch_size.observe(size_bytes)
        self.queue_time.observe(queued_s)

    def snapshot(self) -> dict[str, float]:
        """The counters and averages as a plain dict (e.g. to log, or for a test)."""
        b, q = self.batch_size, self.queue_time
        return {
            "records_sent": self.records_sent,
            "batches_sent": self.batches_sent,
            "retries": self.retries,
            "record_errors": self.record_errors,
            "batch_size_avg_bytes": b.sum / b.count if b.count else 0.0,
            "queue_time_avg_s": q.sum / q.count if q.count else 0.0,
        }


class ProducerCollector(Collector):
    """Exposes one producer's :class:`ProducerMetrics` to a prometheus_client registry."""

    def __init__(self, metrics: ProducerMetrics, client_id: str) -> None:
        self._metrics = metrics
        self._labels = [client_id]

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        for spec, count in (
            (RECORDS_SENT, m.records_sent),
            (BATCHES_SENT, m.batches_sent),
            (RETRIES, m.retries),
            (RECORD_ERRORS, m.record_errors),
        ):
            family = spec.counter_family()
            family.add_metric(self._labels, count)
            yield family
        for spec, buckets in ((BATCH_SIZE, m.batch_size), (QUEUE_TIME, m.queue_time)):
            histogram = spec.histogram_family()
            histogram.add_metric(self._labels, buckets.cumulative(), buckets.sum)
            yield histogram
