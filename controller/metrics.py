"""The controller's metrics: Raft health read at scrape time, and partition events counted by
the active controller when the records that make them commit.

Leader elections and ISR shrinks and expansions are counted from the committed metadata log,
whatever asked for them (a leader broker's AlterPartition, a fenced broker taken out of every
ISR, an election request, a reassignment): every voter applies each committed batch once, and
the one that is the Raft leader when it applies it counts it. The counters live on whichever
controller led at the time, so sum them over the controllers (``sum(rate(...))``). (Counting
when the leader's own write is acknowledged would miss the entries a deposed leader proposed
and its successor committed; counting at apply can count an entry twice only when leadership
moves between the old leader applying it and the new one doing so, a narrow window.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from raftka.common.metadata.image import MetadataImage, merge_partition_change
from raftka.common.metadata.model import NO_LEADER, PartitionState
from raftka.common.metrics.partitions import partition_counts
from raftka.common.metrics.spec import MetricKind, MetricSpec
from raftka.controller.raft.status import Role, Status
from raftka.v1.metadata_pb2 import MetadataBatch, MetadataRecord

ACTIVE = MetricSpec(
    "raftka_controller_active",
    MetricKind.GAUGE,
    "1 on the active controller (the Raft leader serving writes), 0 elsewhere; the sum over "
    "the quorum should be 1.",
)
TERM = MetricSpec(
    "raftka_controller_raft_term", MetricKind.GAUGE, "This voter's current Raft term."
)
COMMIT_INDEX = MetricSpec(
    "raftka_controller_raft_commit_index",
    MetricKind.GAUGE,
    "The highest metadata log index this voter knows committed.",
)
APPLIED_INDEX = MetricSpec(
    "raftka_controller_raft_applied_index",
    MetricKind.GAUGE,
    "The highest metadata log index applied to this voter's metadata image.",
)
COMMIT_LAG = MetricSpec(
    "raftka_controller_raft_commit_lag",
    MetricKind.GAUGE,
    "On the active controller: entries each other voter lacks of the committed log (commit "
    "index minus the voter's match index).",
    ("voter",),
)
LOG_SIZE = MetricSpec(
    "raftka_controller_metadata_log_size_bytes",
    MetricKind.GAUGE,
    "Bytes of metadata log on this voter's disk (snapshots bound it).",
)
SNAPSHOT_AGE = MetricSpec(
    "raftka_controller_snapshot_age_seconds",
    MetricKind.GAUGE,
    "Seconds since this voter's newest metadata snapshot was written (absent: none yet).",
)
OFFLINE = MetricSpec(
    "raftka_controller_offline_partitions",
    MetricKind.GAUGE,
    "On the active controller: partitions without a leader (0 elsewhere).",
)
UNDER_REPLICATED = MetricSpec(
    "raftka_controller_under_replicated_partitions",
    MetricKind.GAUGE,
    "On the active controller: partitions whose ISR is smaller than their replica list.",
)
UNDER_MIN_ISR = MetricSpec(
    "raftka_controller_under_min_isr_partitions",
    MetricKind.GAUGE,
    "On the active controller: partitions whose ISR is below min.insync.replicas.",
)
PARTITIONS = MetricSpec(
    "raftka_controller_partitions", MetricKind.GAUGE, "On the active controller: all partitions."
)
BROKERS = MetricSpec(
    "raftka_controller_brokers",
    MetricKind.GAUGE,
    "On the active controller: registered brokers by state (unfenced, fenced).",
    ("state",),
)
ELECTIONS = MetricSpec(
    "raftka_controller_leader_elections_total",
    MetricKind.COUNTER,
    "Partition leader elections committed while this controller led the quorum; unclean: the "
    "new leader was not in the ISR (records may be lost).",
    ("kind",),
)
ISR_SHRINKS = MetricSpec(
    "raftka_controller_isr_shrinks_total",
    MetricKind.COUNTER,
    "Committed ISR changes that removed replicas, while this controller led the quorum.",
)
ISR_EXPANDS = MetricSpec(
    "raftka_controller_isr_expands_total",
    MetricKind.COUNTER,
    "Committed ISR changes that added replicas, while this controller led the quorum.",
)
CONTROLLER_METRICS = (
    ACTIVE,
    TERM,
    COMMIT_INDEX,
    APPLIED_INDEX,
    COMMIT_LAG,
    LOG_SIZE,
    SNAPSHOT_AGE,
    OFFLINE,
    UNDER_REPLICATED,
    UNDER_MIN_ISR,
    PARTITIONS,
    BROKERS,
    ELECTIONS,
    ISR_SHRINKS,
    ISR_EXPANDS,
)


@dataclass(frozen=True, slots=True)
class PartitionEvents:
    """What one PartitionChangeRecord does to its partition."""

    elected: bool = False
    unclean: bool = False
    isr_shrunk: bool = False
    isr_expanded: bool = False


def partition_events(
    image: MetadataImage,
    records: Iterable[MetadataRecord],
) -> list[PartitionEvents]:
    """Classify the PartitionChangeRecords of one batch against ``image`` (the image before
    the batch applies; two changes of one partition in a batch are taken in order): an
    election gives the partition a leader other than its current one (unclean when that broker
    was not in the ISR); the ISR shrinks or expands when members leave or join it."""
    events: list[PartitionEvents] = []
    states: dict[tuple[str, int], PartitionState] = {}
    for record in records:
        if record.WhichOneof("record") != "partition_change":
            continue
        change = record.partition_change
        key = (change.topic_id, change.partition_id)
        old = states.get(key) or image.partition(*key)
        if old is None:
            continue
        new = states[key] = merge_partition_change(old, change)
        elected = new.leader != NO_LEADER and new.leader != old.leader
        old_isr, new_isr = set(old.isr), set(new.isr)
        events.append(
            PartitionEvents(
                elected=elected,
                unclean=elected and new.leader not in old_isr,
                isr_shrunk=bool(old_isr - new_isr),
                isr_expanded=bool(new_isr - old_isr),
            )
        )
    return events


class ControllerMetrics:
    """The controller's event counters, kept by the Raft leader as committed batches apply."""

    def __init__(self, registry: CollectorRegistry, is_leader: Callable[[], bool]) -> None:
        self._is_leader = is_leader
        elections = ELECTIONS.counter(registry)
        self._clean = elections.labels("clean")
        self._unclean = elections.labels("unclean")
        self._shrinks = ISR_SHRINKS.counter(registry)
        self._expands = ISR_EXPANDS.counter(registry)

    def before_apply(self, image: MetadataImage, batch: MetadataBatch) -> None:
        """A committed batch is about to apply to ``image``: on the leader, count what its
        partition changes do (the state machine's hook)."""
        if batch.records and self._is_leader():
            self.count(partition_events(image, batch.records))

    def count(self, events: Sequence[PartitionEvents]) -> None:
        for e in events:
            if e.elected:
                (self._unclean if e.unclean else self._clean).inc()
            if e.isr_shrunk:
                self._shrinks.inc()
            if e.isr_expanded:
                self._expands.inc()


@dataclass(frozen=True, slots=True)
class RaftView:
    """What the collector reads, as functions (the runtime's status, the storage's sizes)."""

    status: Callable[[], Status]
    is_active: Callable[[], bool]
    image: Callable[[], MetadataImage]
    log_size_bytes: Callable[[], int]
    snapshot_saved_at: Callable[[], float | None]
    """Wall-clock seconds of the newest snapshot, or None."""
    clock: Callable[[], float] = time.time


class ControllerCollector(Collector):
    """Raft and cluster gauges, read from the controller's state at scrape time."""

    def __init__(self, view: RaftView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        view = self._view
        status = view.status()
        active = view.is_active()
        yield ACTIVE.gauge(1 if active else 0)
        yield TERM.gauge(status.term)
        yield COMMIT_INDEX.gauge(status.commit_index)
        yield APPLIED_INDEX.gauge(status.applied_index)
        lag = COMMIT_LAG.gauge_family()
        if status.role is Role.LEADER:
            for p in status.progress:
                lag.add_metric([str(p.node_id)], max(0, status.commit_index - p.match_index))
        yield lag
        yield LOG_SIZE.gauge(view.log_size_bytes())
        saved_at = view.snapshot_saved_at()
        if saved_at is not None:
            yield SNAPSHOT_AGE.gauge(max(0.0, view.clock() - saved_at))
        image = view.image()
        counts = partition_counts(image) if active else None
        yield PARTITIONS.gauge(counts.partitions if counts else 0)
        yield OFFLINE.gauge(counts.offline if counts else 0)
        yield UNDER_REPLICATED.gauge(counts.under_replicated if counts else 0)
        yield UNDER_MIN_ISR.gauge(counts.under_min_isr if counts else 0)
        brokers = BROKERS.gauge_family()
        if active:
            fenced = sum(1 for b in image.brokers.values() if b.fenced)
            brokers.add_metric(["unfenced"], len(image.brokers) - fenced)
            brokers.add_metric(["fenced"], fenced)
        yield brokers
