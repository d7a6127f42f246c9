"""Transactions in the producer state (sans-I/O): opening and closing, the first unstable
offset, the leader's checks, marker fencing, and followers replaying markers."""

from __future__ import annotations

import pytest

from raftka.broker.producers.state import CompletedTxn, ProducerStateTable
from raftka.common.errors import InvalidProducerEpochError, OutOfOrderSequenceError
from raftka.common.records import BatchHeader, build_batch, build_end_txn_marker, validate
from raftka.common.records.batch import MAGIC
from raftka.common.storage.txn_index import AbortedTxn
from raftka.common.txn_errors import InvalidTxnStateError, TransactionCoordinatorFencedError

A, B, C = 100, 200, 300
T = 1_700_000_000_000


def header(
    producer_id: int,
    sequence: int,
    records: int = 1,
    *,
    epoch: int = 0,
    transactional: bool = True,
    base_offset: int = 0,
) -> BatchHeader:
    return BatchHeader(
        base_offset=base_offset,
        batch_length=0,
        partition_leader_epoch=-1,
        magic=MAGIC,
        crc=0,
        attributes=0x10 if transactional else 0,
        last_offset_delta=records - 1,
        base_timestamp=T,
        max_timestamp=T,
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=sequence,
        records_count=records,
    )


def unstable(table: ProducerStateTable) -> int | None:
    """The first unstable offset (read through a call: no type narrowing between reads)."""
    return table.first_unstable_offset


class Leader:
    """A leader's log as far as producer state goes."""

    def __init__(self) -> None:
        self.table = ProducerStateTable()
        self.log_end = 0

    def produce(self, *headers: BatchHeader) -> int:
        assert self.table.check_append(headers) is None
        base = self.log_end
        self.table.record_appended(headers, base, None)
        self.log_end += sum(h.last_offset_delta + 1 for h in headers)
        return base

    def marker(
        self, producer_id: int, epoch: int, committed: bool, coordinator_epoch: int = 0
    ) -> CompletedTxn | None:
        self.table.check_marker(producer_id, epoch, coordinator_epoch)
        offset = self.log_end
        self.log_end += 1
        return self.table.record_marker(producer_id, epoch, committed, coordinator_epoch, offset)


def test_a_transactional_batch_opens_a_transaction_a_marker_closes_it() -> None:
    leader = Leader()
    assert unstable(leader.table) is None
    leader.produce(header(A, 0, 3))  # offsets 0..2
    leader.produce(header(A, 3, 2))  # 3..4: the same transaction
    entry = leader.table.entry(A)
    assert entry is not None and entry.txn_first_offset == 0
    assert unstable(leader.table) == 0
    done = leader.marker(A, 1, committed=True, coordinator_epoch=3)  # offset 5
    assert done == CompletedTxn(A, 0, 5, True, 6)
    assert unstable(leader.table) is None
    closed = leader.table.entry(A)
    assert closed is entry and closed.txn_first_offset is None
    assert (closed.epoch, closed.coordinator_epoch, len(closed.batches)) == (1, 3, 0)


def test_first_unstable_offset_with_interleaved_producers() -> None:
    leader = Leader()
    leader.produce(header(A, 0))  # 0: A opens at 0
    leader.produce(header(B, 0))  # 1: B opens at 1
    leader.produce(header(C, 0, transactional=False))  # 2: idempotent only
    leader.produce(header(A, 1))  # 3
    assert leader.table.open_transactions == {A: 0, B: 1}
    assert unstable(leader.table) == 0
    aborted = leader.marker(A, 1, committed=False)  # 4
    assert aborted is not None
    # B is still open at 1: the LSO once A's abort completed is 1, not 5
    assert aborted.aborted() == AbortedTxn(A, 0, 4, 1)
    assert unstable(leader.table) == 1
    leader.produce(header(A, 0, epoch=1))  # 5: A's next transaction (new epoch, sequence 0)
    assert unstable(leader.table) == 1
    committed = leader.marker(B, 1, committed=True)  # 6
    assert committed == CompletedTxn(B, 1, 6, True, 5)  # A's new transaction opened at 5
    assert unstable(leader.table) == 5


def test_a_non_transactional_batch_during_an_open_transaction_is_refused() -> None:
    leader = Leader()
    leader.produce(header(A, 0))
    with pytest.raises(InvalidTxnStateError, match="transaction open"):
        leader.table.check_append([header(A, 1, transactional=False)])
    # within one request too
    other = Leader()
    with pytest.raises(InvalidTxnStateError):
        other.table.check_append([header(B, 0), header(B, 1, transactional=False)])
    # once the transaction is over, it may write idempotently again (in the new epoch)
    leader.marker(A, 1, committed=True)
    assert leader.table.check_append([header(A, 0, epoch=1, transactional=False)]) is None


def test_the_marker_epoch_fences_late_writes_and_restarts_sequences() -> None:
    leader = Leader()
    leader.produce(header(A, 0, 2))
    leader.marker(A, 1, committed=False)
    # a late write of the finished transaction, in the old epoch
    with pytest.raises(InvalidProducerEpochError):
        leader.table.check_append([header(A, 2)])
    with pytest.raises(OutOfOrderSequenceError):
        leader.table.check_append([header(A, 2, epoch=1)])
    leader.produce(header(A, 0, epoch=1))
    entry = leader.table.entry(A)
    assert entry is not None and entry.txn_first_offset == 3


def test_marker_fencing_checks() -> None:
    leader = Leader()
    leader.produce(header(A, 0, epoch=4))
    with pytest.raises(InvalidProducerEpochError, match="epoch 3"):
        leader.table.check_marker(A, 3, 0)
    leader.marker(A, 5, committed=True, coordinator_epoch=7)
    with pytest.raises(TransactionCoordinatorFencedError, match="coordinator epoch 6"):
        leader.table.check_marker(A, 5, 6)
    leader.table.check_marker(A, 5, 7)  # a retried marker: accepted
    leader.table.check_marker(B, 0, 0)  # a producer this partition never saw: accepted


def test_a_retried_marker_is_harmless() -> None:
    leader = Leader()
    leader.produce(header(A, 0))
    assert leader.marker(A, 1, committed=True) is not None
    leader.produce(header(A, 0, epoch=1))  # next transaction
    assert leader.marker(A, 1, committed=True) is not None  # closes the new one
    assert leader.marker(A, 1, committed=True) is None  # a retry: nothing open
    entry = leader.table.entry(A)
    assert entry is not None and [b.first_seq for b in entry.batches] == [0]  # kept


def test_a_marker_for_an_unknown_producer_creates_an_entry_with_its_epoch() -> None:
    table = ProducerStateTable()
    assert table.record_marker(A, 3, False, 2, 10) is None
    entry = table.entry(A)
    assert entry is not None and (entry.epoch, entry.coordinator_epoch) == (3, 2)
    with pytest.raises(InvalidProducerEpochError):
        table.check_append([header(A, 0, epoch=2)])
    assert table.check_append([header(A, 0, epoch=3)]) is None


def test_a_follower_replaying_the_leaders_batches_gets_the_same_state() -> None:
    leader = Leader()
    stored: list[bytes] = []

    def produce(producer_id: int, sequence: int, *, epoch: int = 0, txn: bool = True) -> None:
        data = build_batch(
            [(T, None, b"v", ())],
            base_offset=leader.log_end,
            producer_id=producer_id,
            producer_epoch=epoch,
            base_sequence=sequence,
            transactional=txn,
        )
        leader.produce(validate(data))
        stored.append(bytes(data))

    def marker(producer_id: int, epoch: int, committed: bool, coordinator_epoch: int) -> None:
        offset = leader.log_end
        leader.marker(producer_id, epoch, committed, coordinator_epoch)
        stored.append(
            bytes(
                build_end_txn_marker(
                    producer_id,
                    epoch,
                    committed,
                    coordinator_epoch,
                    timestamp=T,
                    base_offset=offset,
                )
            )
        )

    produce(A, 0)
    produce(B, 0)
    marker(A, 1, False, 4)
    produce(C, 0, txn=False)
    produce(B, 1)
    produce(A, 0, epoch=1)
    marker(B, 1, True, 4)

    follower = ProducerStateTable()
    completed = []
    for data in stored:
        done = follower.record_stored(validate(data), data)
        if done is not None:
            completed.append(done)
    assert [(c.producer_id, c.first_offset, c.last_offset, c.committed) for c in completed] == [
        (A, 0, 2, False),
        (B, 1, 6, True),
    ]

    def summary(table: ProducerStateTable) -> list[tuple[object, ...]]:
        return [
            (e.producer_id, e.epoch, e.txn_first_offset, e.coordinator_epoch, list(e.batches))
            for e in table
        ]

    assert summary(follower) == summary(leader.table)
    assert follower.first_unstable_offset == unstable(leader.table) == 5
    with pytest.raises(ValueError, match="needs its bytes"):
        ProducerStateTable().record_stored(validate(stored[2]))
