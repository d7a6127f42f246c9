"""Idempotence bookkeeping: the producer id and epoch, each partition's next sequence, and the
batches sent but not yet acknowledged, in sequence order.

A batch gets its sequence when it is first sent and keeps it (and its bytes) through every
retry, so the broker can tell a retry of a batch it already wrote (it answers with the original
offset) from a new batch. Sequences are per partition, start at 0 and wrap after 2**31 - 1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from raftka.client.producer.batch import ProducerBatch
from raftka.client.types import TopicPartition

INT32_MAX = 2**31 - 1

InitProducerId = Callable[[], Awaitable[tuple[int, int]]]
"""Asks the cluster for a fresh (producer id, epoch)."""


class Sequences:
    def __init__(self) -> None:
        self.producer_id = -1
        self.producer_epoch = -1
        self._next: dict[TopicPartition, int] = {}
        self._unacked: dict[TopicPartition, list[ProducerBatch]] = {}

    @property
    def has_id(self) -> bool:
        return self.producer_id >= 0

    def set_id(self, producer_id: int, producer_epoch: int) -> None:
        self.producer_id, self.producer_epoch = producer_id, producer_epoch
        self._next.clear()
        self._unacked.clear()

    def stamp(self, batch: ProducerBatch) -> None:
        """Give a batch being sent for the first time the partition's next sequence."""
        seq = self._next.get(batch.tp, 0)
        batch.stamp(self.producer_id, self.producer_epoch, seq)
        self._next[batch.tp] = (seq + batch.record_count) % (INT32_MAX + 1)
        self._unacked.setdefault(batch.tp, []).append(batch)

    def acknowledged(self, batch: ProducerBatch) -> None:
        unacked = self._unacked.get(batch.tp)
        if unacked and batch in unacked:
            unacked.remove(batch)

    def is_first_unacked(self, batch: ProducerBatch) -> bool:
        unacked = self._unacked.get(batch.tp)
        return bool(unacked) and unacked[0] is batch  # type: ignore[index]

    def unacked(self) -> list[ProducerBatch]:
        return [b for batches in self._unacked.values() for b in batches]
