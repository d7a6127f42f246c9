"""Prometheus metrics: what every node serves over HTTP (docs/operations.md, "Metrics").

Each node keeps its own ``CollectorRegistry`` (never prometheus_client's global default: several
nodes may share one test process). Event counts are plain counters incremented where the event
happens; values derived from state (partition counts, offsets, Raft progress) are read at scrape
time by collectors, so nothing on the hot path keeps them up to date.
"""

from raftka.common.metrics.config import MetricsSettings
from raftka.common.metrics.exporter import MetricsExporter
from raftka.common.metrics.spec import MetricKind, MetricSpec

__all__ = ["MetricKind", "MetricSpec", "MetricsExporter", "MetricsSettings"]
