"""DescribeTransactions and ListTransactions answers from a shard's state."""

from __future__ import annotations

from raftka.broker.transactions.state import TransactionMetadata, TxnState
from raftka.broker.transactions.store import TxnStore
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode


def _topics(meta: TransactionMetadata) -> list[tpb.TxnTopicPartitions]:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in meta.partitions:
        by_topic.setdefault(topic, []).append(partition)
    return [
        tpb.TxnTopicPartitions(topic=topic, partitions=sorted(ps))
        for topic, ps in sorted(by_topic.items())
    ]


def describe(store: TxnStore, transactional_id: str) -> tpb.TransactionDescription:
    meta = store.get(transactional_id)
    if meta is None:
        return tpb.TransactionDescription(
            transactional_id=transactional_id,
            error_code=ErrorCode.TRANSACTIONAL_ID_NOT_FOUND,
            error_message=(
                f"transactional id {transactional_id!r} is not known to its coordinator (never "
                f"initialised, or expired)"
            ),
            producer_id=-1,
            producer_epoch=-1,
            transaction_start_time_ms=-1,
        )
    open_ = meta.state is TxnState.ONGOING or meta.state.is_prepare
    return tpb.TransactionDescription(
        transactional_id=transactional_id,
        state=meta.state.display_name,
        producer_id=meta.producer_id,
        producer_epoch=meta.producer_epoch,
        transaction_timeout_ms=meta.timeout_ms,
        transaction_start_time_ms=meta.start_time_ms if open_ else -1,
        topics=_topics(meta),
    )


def list_transactions(
    store: TxnStore, request: tpb.ListTransactionsRequest
) -> list[tpb.ListedTransaction]:
    """Sorted by id. A state filter that names no state matches nothing (as Kafka does)."""
    states = set(request.state_filters)
    producer_ids = set(request.producer_id_filters)
    out: list[tpb.ListedTransaction] = []
    for transactional_id in sorted(store.ids):
        meta = store.ids[transactional_id]
        name = meta.state.display_name
        if states and name not in states:
            continue
        if producer_ids and meta.producer_id not in producer_ids:
            continue
        out.append(
            tpb.ListedTransaction(
                transactional_id=transactional_id, producer_id=meta.producer_id, state=name
            )
        )
    return out
