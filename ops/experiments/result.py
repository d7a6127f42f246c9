"""What a history check reports: the anomalies found, and counts of what the history holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from raftka.client.types import TopicPartition
from raftka.common.ids import Offset


class AnomalyKind(Enum):
    """The anomalies of Jepsen's Kafka queue workload, in the order a report lists them."""

    LOST_WRITE = "lost_write"
    """An acknowledged send is missing from the final read of its partition."""
    VANISHED = "vanished"
    """A poll read a value that the final read of the partition no longer holds."""
    DUPLICATE = "duplicate"
    """A value is in a partition at two different offsets."""
    OFFSET_MISMATCH = "offset_mismatch"
    """Two reads, or a read and an acknowledgement, disagree about what is at an offset."""
    OUT_OF_ORDER = "out_of_order"
    """A producer's acknowledged order, or a consumer's sequential reading, is not kept: the
    explanation starts with which rule ("producer order", "nonmonotonic poll", "poll skip")."""
    UNACKNOWLEDGED_READ = "unacknowledged_read"
    """A read returned a value never sent to that partition, sent but definitely failed, or
    read before its send began (Jepsen's G1a / aborted read and phantom)."""


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: AnomalyKind
    partition: TopicPartition
    values: tuple[str, ...]
    offsets: tuple[Offset, ...]
    explanation: str
    """One line for a human, naming the values and offsets."""
    process: int | None = None
    """The producer or consumer concerned, when there is one."""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "topic": self.partition.topic,
            "partition": self.partition.partition,
            "values": list(self.values),
            "offsets": list(self.offsets),
            "process": self.process,
            "explanation": self.explanation,
        }


@dataclass(frozen=True, slots=True)
class Counts:
    """Tallies of a history. Value counts (lost, duplicated, ...) count distinct values."""

    operations: int
    sends: int
    acknowledged: int
    failed: int
    indeterminate: int
    """Sends with outcome INFO; each is either seen or missing below, and neither is wrong."""
    indeterminate_seen: int
    """INFO sends whose value some read returned (the write did happen)."""
    indeterminate_missing: int
    """INFO sends whose value no read returned (the write most likely did not happen)."""
    polls: int
    """Polls that returned (outcome OK)."""
    final_reads: int
    """Final reads that returned (outcome OK)."""
    lost: int
    vanished: int
    duplicated: int
    unacknowledged_reads: int


@dataclass(frozen=True, slots=True)
class CheckResult:
    anomalies: tuple[Anomaly, ...]
    counts: Counts
    unchecked_partitions: tuple[TopicPartition, ...]
    """Partitions with sends or polls but no final read that returned: loss, vanished values
    and poll skips cannot be judged there, so none are reported for them."""

    @property
    def valid(self) -> bool:
        return not self.anomalies

    def of_kind(self, kind: AnomalyKind) -> tuple[Anomaly, ...]:
        return tuple(a for a in self.anomalies if a.kind is kind)

    def to_json(self) -> dict[str, Any]:
        by_kind = {kind.value: 0 for kind in AnomalyKind}
        for anomaly in self.anomalies:
            by_kind[anomaly.kind.value] += 1
        return {
            "valid": self.valid,
            "counts": asdict(self.counts),
            "anomaly_counts": by_kind,
            "unchecked_partitions": [str(tp) for tp in self.unchecked_partitions],
            "anomalies": [a.to_json() for a in self.anomalies],
        }
