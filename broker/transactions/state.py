"""The coordinator's state of one transactional id, as the latest ``__transaction_state`` value
holds it: everything here is rebuilt by replay (``store.TxnStore.apply`` is the only writer),
so the shard keeps nothing else that matters."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from raftka.broker.transactions.api import TopicPartition

#: No producer id / no epoch (Kafka's -1).
NO_PRODUCER_ID = -1
NO_EPOCH = -1
#: The highest epoch a producer may use; a bump past it moves to a fresh producer id. Markers
#: of a transaction run at that epoch carry MAX_CLIENT_EPOCH + 1 (Short.MAX_VALUE), which no
#: producer is ever given.
MAX_CLIENT_EPOCH = 32_766


class TxnState(enum.IntEnum):
    """Kafka's numbers, as in txn_records.proto's TxnState."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def display_name(self) -> str:
        """The name DescribeTransactions / ListTransactions use (Kafka's)."""
        return _DISPLAY[self]

    @property
    def is_prepare(self) -> bool:
        """Decided, markers being written."""
        return self in (
            TxnState.PREPARE_COMMIT,
            TxnState.PREPARE_ABORT,
            TxnState.PREPARE_EPOCH_FENCE,
        )

    @property
    def is_idle(self) -> bool:
        """No transaction open or completing: a new one may begin."""
        return self in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)


_DISPLAY = {
    TxnState.EMPTY: "Empty",
    TxnState.ONGOING: "Ongoing",
    TxnState.PREPARE_COMMIT: "PrepareCommit",
    TxnState.PREPARE_ABORT: "PrepareAbort",
    TxnState.COMPLETE_COMMIT: "CompleteCommit",
    TxnState.COMPLETE_ABORT: "CompleteAbort",
    TxnState.DEAD: "Dead",
    TxnState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
STATE_BY_DISPLAY_NAME = {name: state for state, name in _DISPLAY.items()}


@dataclass(frozen=True, slots=True)
class TransactionMetadata:
    """The whole state of a transactional id after one change.

    ``producer_epoch`` is the bumped epoch in Prepare* and Complete* (the markers' epoch);
    ``last_producer_epoch`` is the epoch the producer sent EndTxn with, so a retry of that
    EndTxn is recognised (-1 after a coordinator-initiated abort: the old epoch is fenced).
    ``next_producer_id`` is set in Prepare* when the bump overflowed: the id the producer
    continues with (epoch 0); Complete* then holds it, with the old one as
    ``previous_producer_id``."""

    producer_id: int
    producer_epoch: int
    state: TxnState
    timeout_ms: int
    partitions: frozenset[TopicPartition] = field(default_factory=frozenset)
    start_time_ms: int = -1
    last_update_ms: int = 0
    last_producer_epoch: int = NO_EPOCH
    previous_producer_id: int = NO_PRODUCER_ID
    next_producer_id: int = NO_PRODUCER_ID

    def evolve(self, **changes: object) -> TransactionMetadata:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def next_identity(self) -> tuple[int, int]:
        """(producer id, epoch) the producer uses once the current decision completes."""
        if self.next_producer_id != NO_PRODUCER_ID:
            return self.next_producer_id, 0
        return self.producer_id, self.producer_epoch

    @property
    def known_producer_ids(self) -> frozenset[int]:
        """This id's producer ids, current and adjacent: a stale epoch of one of them is
        fenced, any other id is a mapping error."""
        ids = {self.producer_id, self.previous_producer_id, self.next_producer_id}
        return frozenset(ids - {NO_PRODUCER_ID})
