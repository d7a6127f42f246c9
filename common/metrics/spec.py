"""Metric declarations: one :class:`MetricSpec` per metric, the single source of its name,
type, labels and help text. The code builds its metrics from them, and the tests check the
docs and the Grafana dashboard against them, so neither can name a metric that does not exist.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)


class MetricKind(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    """The exposed name; a counter's ends in ``_total``."""
    kind: MetricKind
    help: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.startswith("raftka_"):
            raise ValueError(f"metric {self.name}: Raftka's metrics are named raftka_<area>_<name>")
        if (self.kind is MetricKind.COUNTER) != self.name.endswith("_total"):
            raise ValueError(f"metric {self.name}: counters, and only counters, end in _total")

    @property
    def sample_names(self) -> tuple[str, ...]:
        """The names of the time series it exposes (what a PromQL query names)."""
        if self.kind is MetricKind.HISTOGRAM:
            return tuple(self.name + s for s in ("_bucket", "_count", "_sum"))
        return (self.name,)

    # ---- building metrics from a spec ----

    def counter(self, registry: CollectorRegistry) -> Counter:
        self._expect(MetricKind.COUNTER)
        return Counter(self.name, self.help, self.labels, registry=registry)

    def histogram(self, registry: CollectorRegistry, buckets: Sequence[float]) -> Histogram:
        self._expect(MetricKind.HISTOGRAM)
        return Histogram(self.name, self.help, self.labels, registry=registry, buckets=buckets)

    def gauge_family(self) -> GaugeMetricFamily:
        """An empty family for a collector to fill (``add_metric(label_values, value)``)."""
        self._expect(MetricKind.GAUGE)
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)

    def gauge(self, value: float) -> GaugeMetricFamily:
        """A family with one unlabelled sample."""
        self._expect(MetricKind.GAUGE)
        return GaugeMetricFamily(self.name, self.help, value=value)

    def counter_family(self) -> CounterMetricFamily:
        self._expect(MetricKind.COUNTER)
        return CounterMetricFamily(self.name, self.help, labels=self.labels)

    def histogram_family(self) -> HistogramMetricFamily:
        self._expect(MetricKind.HISTOGRAM)
        return HistogramMetricFamily(self.name, self.help, labels=self.labels)

    def _expect(self, kind: MetricKind) -> None:
        if self.kind is not kind:
            raise TypeError(f"metric {self.name} is a {self.kind.value}, not a {kind.value}")


def sample_names(specs: Iterable[MetricSpec]) -> set[str]:
    return {name for spec in specs for name in spec.sample_names}
