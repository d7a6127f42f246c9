"""Which producer instance a call comes from, judged against an id's state: the current one,
a retry of the last EndTxn, or a stale (fenced) or foreign one.

KIP-890 (TV2): every EndTxn bumps the epoch, so after a decision the producer holds the bumped
epoch (or a fresh producer id at epoch 0 after an overflow), and only the pre-bump epoch of
that very EndTxn is still recognised, as a retry. Any other epoch of a known producer id is
fenced, lower or higher (as Kafka answers); an unknown producer id is a mapping error.
"""

from __future__ import annotations

from raftka.broker.transactions.state import (
    MAX_CLIENT_EPOCH,
    NO_EPOCH,
    NO_PRODUCER_ID,
    TransactionMetadata,
    TxnState,
)
from raftka.common.errors import RaftkaError
from raftka.common.txn_errors import InvalidProducerIdMappingError, ProducerFencedError


def current_identity(meta: TransactionMetadata) -> tuple[int, int]:
    """The (producer id, epoch) the live producer instance holds: in Prepare* the one EndTxn
    answered with (the bumped epoch, or the next producer id)."""
    if meta.state.is_prepare:
        return meta.next_identity
    return meta.producer_id, meta.producer_epoch


def check_current(
    transactional_id: str, meta: TransactionMetadata, producer_id: int, producer_epoch: int
) -> None:
    """Raises unless the call comes from the current producer instance."""
    pid, epoch = current_identity(meta)
    if producer_id == pid and producer_epoch == epoch and epoch <= MAX_CLIENT_EPOCH:
        return
    raise refusal(transactional_id, meta, producer_id, producer_epoch)


def refusal(
    transactional_id: str, meta: TransactionMetadata, producer_id: int, producer_epoch: int
) -> RaftkaError:
    if producer_id not in meta.known_producer_ids:
        return InvalidProducerIdMappingError(
            f"transactional id {transactional_id!r} holds producer id {meta.producer_id}, not "
            f"{producer_id}: call InitProducerId (init_transactions) with this id first"
        )
    pid, epoch = current_identity(meta)
    return ProducerFencedError(
        f"producer id {producer_id} epoch {producer_epoch} of transactional id "
        f"{transactional_id!r} is fenced: the coordinator holds producer id {pid} epoch "
        f"{epoch} (a newer instance called InitProducerId, or the coordinator aborted the "
        f"transaction after its timeout): close this producer and create a new one"
    )


def is_end_retry(meta: TransactionMetadata, producer_id: int, producer_epoch: int) -> bool:
    """An EndTxn sent again with the epoch of the EndTxn that made the current decision (its
    answer was lost): only in Prepare* and Complete*, and never after an abort the coordinator
    started itself (timeout or fencing leave no last epoch)."""
    if meta.last_producer_epoch == NO_EPOCH or producer_epoch != meta.last_producer_epoch:
        return False
    if meta.state.is_prepare:
        return producer_id == meta.producer_id
    if meta.state in (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT):
        # An overflow moved the id to a fresh producer id; the retry carries the old one.
        if meta.previous_producer_id != NO_PRODUCER_ID:
            return producer_id == meta.previous_producer_id
        return producer_id == meta.producer_id
    return False


def is_init_retry(meta: TransactionMetadata, producer_id: int, producer_epoch: int) -> bool:
    """An InitProducerId sent again with the producer id and epoch it named the first time
    (KIP-360; its answer was lost): the id is still Empty from that call, which remembered
    the epoch it bumped from (the old producer id after an overflow)."""
    return (
        meta.state is TxnState.EMPTY
        and meta.last_producer_epoch != NO_EPOCH
        and producer_epoch == meta.last_producer_epoch
        and producer_id in (meta.producer_id, meta.previous_producer_id)
    )
