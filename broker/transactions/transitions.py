"""The state changes of one transactional id, as pure functions of its metadata: each returns
the next value to write (the shard writes it as a record and applies it through replay)."""

from __future__ import annotations

from collections.abc import Callable

from raftka.broker.transactions.api import TopicPartition
from raftka.broker.transactions.state import (
    MAX_CLIENT_EPOCH,
    NO_EPOCH,
    NO_PRODUCER_ID,
    TransactionMetadata,
    TxnState,
)


def is_commit(state: TxnState) -> bool:
    """The outcome a Prepare* or Complete* state stands for."""
    return state in (TxnState.PREPARE_COMMIT, TxnState.COMPLETE_COMMIT)


def new_id(producer_id: int, timeout_ms: int, now_ms: int) -> TransactionMetadata:
    return TransactionMetadata(
        producer_id=producer_id,
        producer_epoch=0,
        state=TxnState.EMPTY,
        timeout_ms=timeout_ms,
        last_update_ms=now_ms,
    )


def reinitialised(
    meta: TransactionMetadata,
    timeout_ms: int,
    now_ms: int,
    fresh_producer_id: Callable[[], int],
    *,
    remember_epoch: bool = False,
) -> TransactionMetadata:
    """InitProducerId on an idle id: the next epoch, or a fresh producer id past the last.
    ``remember_epoch``: the producer named its epoch (KIP-360), kept as the last epoch so a
    retry of this very call is recognised."""
    if meta.producer_epoch + 1 > MAX_CLIENT_EPOCH:
        producer_id, epoch, previous = fresh_producer_id(), 0, meta.producer_id
    else:
        producer_id, epoch, previous = (
            meta.producer_id,
            meta.producer_epoch + 1,
            meta.previous_producer_id,
        )
    return TransactionMetadata(
        producer_id=producer_id,
        producer_epoch=epoch,
        state=TxnState.EMPTY,
        timeout_ms=timeout_ms,
        last_update_ms=now_ms,
        previous_producer_id=previous,
        last_producer_epoch=meta.producer_epoch if remember_epoch else NO_EPOCH,
    )


def begun_or_extended(
    meta: TransactionMetadata, partitions: frozenset[TopicPartition], now_ms: int
) -> TransactionMetadata:
    """Idle -> Ongoing (started now) with ``partitions``; Ongoing: ``partitions`` added."""
    if meta.state is TxnState.ONGOING:
        return meta.evolve(partitions=meta.partitions | partitions, last_update_ms=now_ms)
    return meta.evolve(
        state=TxnState.ONGOING, partitions=partitions, start_time_ms=now_ms, last_update_ms=now_ms
    )


def prepared(
    meta: TransactionMetadata,
    committed: bool,
    now_ms: int,
    fresh_producer_id: Callable[[], int],
    *,
    bump_epoch: bool = True,
) -> TransactionMetadata:
    """EndTxn on an Ongoing transaction: decided, with the bumped epoch (the markers' epoch);
    past the last epoch the producer continues with a fresh producer id. Without
    ``bump_epoch`` (transaction version 1: EndTxn before v5, whose answer carries no epoch)
    the producer keeps its epoch, which the markers carry."""
    if not bump_epoch:
        return meta.evolve(
            state=TxnState.PREPARE_COMMIT if committed else TxnState.PREPARE_ABORT,
            last_producer_epoch=meta.producer_epoch,
            next_producer_id=NO_PRODUCER_ID,
            last_update_ms=now_ms,
        )
    bumped = meta.producer_epoch + 1
    next_id = fresh_producer_id() if bumped > MAX_CLIENT_EPOCH else NO_PRODUCER_ID
    return meta.evolve(
        state=TxnState.PREPARE_COMMIT if committed else TxnState.PREPARE_ABORT,
        producer_epoch=bumped,
        last_producer_epoch=meta.producer_epoch,
        next_producer_id=next_id,
        last_update_ms=now_ms,
    )


def abort_started(meta: TransactionMetadata, now_ms: int) -> TransactionMetadata:
    """The coordinator aborts an Ongoing transaction itself (timeout, or a new instance's
    InitProducerId): the bumped epoch fences the old one, and no EndTxn retry matches."""
    return meta.evolve(
        state=TxnState.PREPARE_ABORT,
        producer_epoch=meta.producer_epoch + 1,
        last_producer_epoch=NO_EPOCH,
        next_producer_id=NO_PRODUCER_ID,
        last_update_ms=now_ms,
    )


def completed(meta: TransactionMetadata, now_ms: int) -> TransactionMetadata:
    """Every marker is written: Prepare* -> Complete*, on the identity the producer continues
    with (the old producer id kept as previous after an overflow, for EndTxn retries)."""
    producer_id, epoch = meta.next_identity
    overflowed = meta.next_producer_id != NO_PRODUCER_ID
    return meta.evolve(
        state=TxnState.COMPLETE_COMMIT if is_commit(meta.state) else TxnState.COMPLETE_ABORT,
        producer_id=producer_id,
        producer_epoch=epoch,
        previous_producer_id=meta.producer_id if overflowed else NO_PRODUCER_ID,
        next_producer_id=NO_PRODUCER_ID,
        partitions=frozenset(),
        last_update_ms=now_ms,
    )


def aborted_at_once(
    meta: TransactionMetadata, now_ms: int, fresh_producer_id: Callable[[], int]
) -> TransactionMetadata:
    """EndTxn(abort) with nothing open: nothing to mark, so the bump completes at once."""
    bumped = meta.producer_epoch + 1
    if bumped > MAX_CLIENT_EPOCH:
        producer_id, epoch, previous = fresh_producer_id(), 0, meta.producer_id
    else:
        producer_id, epoch, previous = meta.producer_id, bumped, NO_PRODUCER_ID
    return meta.evolve(
        state=TxnState.COMPLETE_ABORT,
        producer_id=producer_id,
        producer_epoch=epoch,
        last_producer_epoch=meta.producer_epoch,
        previous_producer_id=previous,
        next_producer_id=NO_PRODUCER_ID,
        partitions=frozenset(),
        last_update_ms=now_ms,
    )
