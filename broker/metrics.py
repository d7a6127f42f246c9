"""The broker's metrics: bytes in and out per topic (counted where produce and fetch happen),
and partition and consumer-group gauges read at scrape time.

Bytes are counted once per produced or fetched partition (O(1) per batch set, never per
record): ``bytes_in`` is what leaders appended for producers (internal topics are written by
their coordinators and not counted); ``bytes_out`` is what consumers fetched (followers'
fetches are replication, not counted). Per-partition gauges cover the partitions this broker
hosts; partition health counts cover the partitions it leads, so summing over the brokers
counts each partition once.

Consumer-group lag is the coordinator's: for each group this broker coordinates and each
partition with a committed offset, the partition's high watermark minus the committed offset.
The high watermark is read from this broker's replica of the partition; a partition it does not
host is left out (with replication factor = broker count, every broker hosts every partition).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from raftka.common.metadata.image import MetadataImage
from raftka.common.metrics.partitions import partition_counts
from raftka.common.metrics.spec import MetricKind, MetricSpec

BYTES_IN = MetricSpec(
    "raftka_broker_topic_bytes_in_total",
    MetricKind.COUNTER,
    "Bytes of record batches producers wrote to partitions this broker leads, by topic.",
    ("topic",),
)
BYTES_OUT = MetricSpec(
    "raftka_broker_topic_bytes_out_total",
    MetricKind.COUNTER,
    "Bytes of record batches consumers fetched from this broker, by topic (replication "
    "fetches not included).",
    ("topic",),
)
KAFKA_ZERO_COPY = MetricSpec(
    "raftka_broker_kafka_fetch_zero_copy_bytes_total",
    MetricKind.COUNTER,
    "Bytes of record batches the Kafka listener answered as segment file regions, sent with "
    "sendfile (part of raftka_broker_topic_bytes_out_total).",
)
PARTITIONS = MetricSpec(
    "raftka_broker_partitions", MetricKind.GAUGE, "Partition replicas this broker hosts."
)
LEADER_PARTITIONS = MetricSpec(
    "raftka_broker_leader_partitions", MetricKind.GAUGE, "Partitions this broker leads."
)
UNDER_REPLICATED = MetricSpec(
    "raftka_broker_under_replicated_partitions",
    MetricKind.GAUGE,
    "Partitions this broker leads whose ISR is smaller than their replica list.",
)
UNDER_MIN_ISR = MetricSpec(
    "raftka_broker_under_min_isr_partitions",
    MetricKind.GAUGE,
    "Partitions this broker leads whose ISR is below min.insync.replicas (acks=all refused).",
)
LOG_SIZE = MetricSpec(
    "raftka_broker_log_size_bytes",
    MetricKind.GAUGE,
    "Bytes of a hosted partition's log on disk (all segments).",
    ("topic", "partition"),
)
LOG_START = MetricSpec(
    "raftka_broker_log_start_offset",
    MetricKind.GAUGE,
    "A hosted partition's log start offset.",
    ("topic", "partition"),
)
LOG_END = MetricSpec(
    "raftka_broker_log_end_offset",
    MetricKind.GAUGE,
    "A hosted partition's log end offset (the offset its next record gets).",
    ("topic", "partition"),
)
HIGH_WATERMARK = MetricSpec(
    "raftka_broker_high_watermark",
    MetricKind.GAUGE,
    "A hosted partition's high watermark (on a follower: as last heard from the leader).",
    ("topic", "partition"),
)
GROUP_LAG = MetricSpec(
    "raftka_group_lag",
    MetricKind.GAUGE,
    "On a group's coordinator: records between a partition's high watermark and the group's "
    "committed offset.",
    ("group", "topic", "partition"),
)
BROKER_METRICS = (
    BYTES_IN,
    BYTES_OUT,
    KAFKA_ZERO_COPY,
    PARTITIONS,
    LEADER_PARTITIONS,
    UNDER_REPLICATED,
    UNDER_MIN_ISR,
    LOG_SIZE,
    LOG_START,
    LOG_END,
    HIGH_WATERMARK,
    GROUP_LAG,
)


class TopicTraffic:
    """Bytes in and out per topic; the per-topic children are cached (one dict lookup per
    produced or fetched partition)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._in = BYTES_IN.counter(registry)
        self._out = BYTES_OUT.counter(registry)
        self._zero_copy = KAFKA_ZERO_COPY.counter(registry)
        self._in_by_topic: dict[str, Counter] = {}
        self._out_by_topic: dict[str, Counter] = {}

    def bytes_in(self, topic: str, count: int) -> None:
        child = self._in_by_topic.get(topic)
        if child is None:
            child = self._in_by_topic[topic] = self._in.labels(topic)
        child.inc(count)

    def bytes_out(self, topic: str, count: int) -> None:
        child = self._out_by_topic.get(topic)
        if child is None:
            child = self._out_by_topic[topic] = self._out.labels(topic)
        child.inc(count)

    def zero_copy_out(self, count: int) -> None:
        """``count`` of the bytes out go from segment files to a socket (``sendfile``)."""
        self._zero_copy.inc(count)


@dataclass(frozen=True, slots=True)
class HostedLog:
    """What the collector reads of one hosted partition."""

    topic: str
    partition: int
    size_bytes: int
    log_start_offset: int
    log_end_offset: int
    high_watermark: int


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    group: str
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class BrokerView:
    """What the collector reads, as functions over the broker's state."""

    broker_id: int
    image: Callable[[], MetadataImage]
    hosted: Callable[[], Iterable[HostedLog]]
    committed_offsets: Callable[[], Iterable[CommittedOffset]]


class BrokerCollector(Collector):
    def __init__(self, view: BrokerView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        view = self._view
        counts = partition_counts(view.image(), leader=view.broker_id)
        yield LEADER_PARTITIONS.gauge(counts.partitions)
        yield UNDER_REPLICATED.gauge(counts.under_replicated)
        yield UNDER_MIN_ISR.gauge(counts.under_min_isr)
        families = [s.gauge_family() for s in (LOG_SIZE, LOG_START, LOG_END, HIGH_WATERMARK)]
        high_watermarks: dict[tuple[str, int], int] = {}
        for h in view.hosted():
            labels = [h.topic, str(h.partition)]
            values = (h.size_bytes, h.log_start_offset, h.log_end_offset, h.high_watermark)
            for family, value in zip(families, values, strict=True):
                family.add_metric(labels, value)
            high_watermarks[(h.topic, h.partition)] = h.high_watermark
        yield PARTITIONS.gauge(len(high_watermarks))
        yield from families
        lag = GROUP_LAG.gauge_family()
        for c in view.committed_offsets():
            hw = high_watermarks.get((c.topic, c.partition))
            if hw is not None and c.offset >= 0:
                lag.add_metric([c.group, c.topic, str(c.partition)], max(0, hw - c.offset))
        yield lag
