"""One pass over a history that groups it by partition and indexes what the rules look up: which
values were read at which offsets, and what the final read holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from raftka.client.types import TopicPartition
from raftka.common.ids import Offset
from raftka.ops.experiments.history import (
    InvalidHistoryError,
    Operation,
    OpKind,
    Outcome,
)


@dataclass(slots=True)
class PartitionHistory:
    """Everything the rules need about one partition. Only reads that returned (outcome OK)
    are indexed: a failed or timed-out read says nothing about the log."""

    partition: TopicPartition
    sends: list[Operation] = field(default_factory=list)
    """Every send to this partition, whatever its outcome."""
    polls: list[Operation] = field(default_factory=list)
    final_reads: list[Operation] = field(default_factory=list)
    final: Operation | None = None
    """The final read that completed last: the log as it stands after healing."""
    read_offsets: dict[str, set[Offset]] = field(default_factory=dict)
    """Value -> every offset any poll or final read returned it at."""
    read_values: dict[Offset, set[str]] = field(default_factory=dict)
    """Offset -> every value any poll or final read returned there."""
    first_read: dict[str, Operation] = field(default_factory=dict)
    """Value -> the read that returned it and completed first."""
    final_offsets: dict[str, list[Offset]] = field(default_factory=dict)
    """Value -> the offsets :attr:`final` holds it at, in read order."""
    final_values: dict[Offset, str] = field(default_factory=dict)
    """Offset -> the value :attr:`final` holds there (the first, if it repeats an offset)."""

    def add_read(self, op: Operation) -> None:
        for record in op.records:
            self.read_offsets.setdefault(record.value, set()).add(record.offset)
            self.read_values.setdefault(record.offset, set()).add(record.value)
            first = self.first_read.get(record.value)
            if first is None or op.complete_time < first.complete_time:
                self.first_read[record.value] = op

    def set_final(self, op: Operation) -> None:
        self.final = op
        for record in op.records:
            self.final_offsets.setdefault(record.value, []).append(record.offset)
            self.final_values.setdefault(record.offset, record.value)

    def position(self, value: str) -> Offset | None:
        """Where a value sits in the log: the lowest offset a read returned it at."""
        offsets = self.read_offsets.get(value)
        return min(offsets) if offsets else None


@dataclass(frozen=True, slots=True)
class HistoryIndex:
    operations: int
    sends: dict[str, Operation]
    """Value -> the send that wrote it."""
    partitions: dict[TopicPartition, PartitionHistory]

    def view(self, partition: TopicPartition) -> PartitionHistory:
        return self.partitions[partition]


def index_history(ops: Iterable[Operation]) -> HistoryIndex:
    """Groups ``ops`` by partition. Raises :class:`InvalidHistoryError` when a value is sent
    twice: values must be unique for the checker to tell records apart."""
    sends: dict[str, Operation] = {}
    partitions: dict[TopicPartition, PartitionHistory] = {}
    count = 0
    for op in ops:
        count += 1
        view = partitions.get(op.partition)
        if view is None:
            view = partitions[op.partition] = PartitionHistory(op.partition)
        if op.kind is OpKind.SEND:
            assert op.value is not None  # Operation enforces it
            earlier = sends.get(op.value)
            if earlier is not None:
                raise InvalidHistoryError(
                    f"value {op.value!r} is sent twice (by processes {earlier.process} and "
                    f"{op.process}); every send needs a unique value"
                )
            sends[op.value] = op
            view.sends.append(op)
        elif op.outcome is Outcome.OK:
            (view.polls if op.kind is OpKind.POLL else view.final_reads).append(op)
            view.add_read(op)
    for view in partitions.values():
        if view.final_reads:
            view.set_final(max(view.final_reads, key=lambda op: op.complete_time))
    return HistoryIndex(count, sends, partitions)
