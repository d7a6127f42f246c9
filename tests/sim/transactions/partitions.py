"""A model of the partition side of transactions (contract decisions 1, 3, 4 and 5): per
producer id the stored epoch, the last coordinator epoch heard, the open transaction; the
markers appended; the last stable offset."""

from __future__ import annotations

from dataclasses import dataclass, field

TP = tuple[str, int]

NONE = "NONE"
INVALID_PRODUCER_EPOCH = "INVALID_PRODUCER_EPOCH"
COORDINATOR_FENCED = "TRANSACTION_COORDINATOR_FENCED"


@dataclass(frozen=True, slots=True)
class OpenTxn:
    producer_id: int
    epoch: int
    first_offset: int


@dataclass(frozen=True, slots=True)
class ClosedTxn:
    producer_id: int
    epoch: int
    first_offset: int
    marker_offset: int
    committed: bool


@dataclass(slots=True)
class SimPartition:
    tp: TP
    end_offset: int = 0
    epochs: dict[int, int] = field(default_factory=dict)
    coordinator_epochs: dict[int, int] = field(default_factory=dict)
    open: dict[int, OpenTxn] = field(default_factory=dict)
    closed: list[ClosedTxn] = field(default_factory=list)
    #: (producer id, marker epoch) -> the outcomes of the markers appended for it.
    markers: dict[tuple[int, int], set[bool]] = field(default_factory=dict)

    def write(self, producer_id: int, epoch: int) -> int | None:
        """A transactional batch of one record: its offset, or None (INVALID_PRODUCER_EPOCH)."""
        if epoch < self.epochs.get(producer_id, -1):
            return None
        current = self.open.get(producer_id)
        assert current is None or current.epoch == epoch, (
            f"{self.tp}: producer {producer_id} writes at epoch {epoch} over its open "
            f"transaction of epoch {current.epoch}: the coordinator let a new transaction "
            f"begin before the old one was marked here"
        )
        self.epochs[producer_id] = epoch
        offset = self.end_offset
        if current is None:
            self.open[producer_id] = OpenTxn(producer_id, epoch, offset)
        self.end_offset += 1
        return offset

    def marker(self, producer_id: int, epoch: int, committed: bool, coordinator_epoch: int) -> str:
        if coordinator_epoch < self.coordinator_epochs.get(producer_id, -1):
            return COORDINATOR_FENCED
        if epoch < self.epochs.get(producer_id, -1):
            return INVALID_PRODUCER_EPOCH
        self.epochs[producer_id] = epoch
        self.coordinator_epochs[producer_id] = coordinator_epoch
        offset = self.end_offset
        self.end_offset += 1
        self.markers.setdefault((producer_id, epoch), set()).add(committed)
        txn = self.open.pop(producer_id, None)
        if txn is not None:
            self.closed.append(
                ClosedTxn(producer_id, txn.epoch, txn.first_offset, offset, committed)
            )
        return NONE

    @property
    def last_stable_offset(self) -> int:
        return min((t.first_offset for t in self.open.values()), default=self.end_offset)
