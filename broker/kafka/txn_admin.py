"""Looking at transactions and producers: DescribeTransactions (v0), ListTransactions (v0) and
DescribeProducers (v0).

DescribeTransactions and ListTransactions are :mod:`raftka.broker.transactions.requests`' (the
gRPC TransactionService's: DESCRIBE on each transactional id; a list leaves out the ids the
caller may not describe). DescribeProducers answers, for each partition this broker leads, the
producers its log's producer state holds (READ on the topic, as Kafka asks; a partition led
elsewhere answers NOT_LEADER_OR_FOLLOWER, so the admin client asks its leader).
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.schema import (
    NO_THROTTLE,
    build,
    error_code,
    error_of,
    nested,
    response_type,
)
from raftka.broker.kafka.txn import transaction_requests
from raftka.broker.producers.state import ProducerEntry
from raftka.broker.transactions.state import STATE_BY_DISPLAY_NAME
from raftka.common.errors import RaftkaError
from raftka.common.limits import require_items
from raftka.common.security.model import OP_READ, RESOURCE_TOPIC
from raftka.v1 import transactions_pb2 as tpb

DESCRIBE_PRODUCERS_KEY = 61
DESCRIBE_TRANSACTIONS_KEY = 65
LIST_TRANSACTIONS_KEY = 66


def _time_ms(ms: int) -> datetime.datetime:
    """Kafka's int64 time (-1: none) as kio's datetime field."""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)


class DescribeTransactionsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(DESCRIBE_TRANSACTIONS_KEY, context.api_version)
        ids = list(request.transactional_ids)
        try:
            described = await transaction_requests(self._backend).describe(ids)
        except RaftkaError as e:  # too many ids, or no coordinator here: on every id
            described = [
                tpb.TransactionDescription(
                    transactional_id=tid,
                    error_code=e.code,
                    producer_id=-1,
                    producer_epoch=-1,
                    transaction_start_time_ms=-1,
                )
                for tid in ids
            ]
        state_type = nested(answer_type, "TransactionState")
        topic_type = nested(answer_type, "TopicData")
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            transaction_states=tuple(
                state_type(
                    error_code=error_code(d.error_code),
                    transactional_id=d.transactional_id,
                    transaction_state=d.state,
                    transaction_timeout=datetime.timedelta(milliseconds=d.transaction_timeout_ms),
                    transaction_start_time=_time_ms(d.transaction_start_time_ms),
                    producer_id=d.producer_id,
                    producer_epoch=d.producer_epoch,
                    topics=tuple(
                        topic_type(topic=t.topic, partitions=tuple(t.partitions)) for t in d.topics
                    ),
                )
                for d in described
            ),
        )


class ListTransactionsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(LIST_TRANSACTIONS_KEY, context.api_version)
        filters = list(request.state_filters)
        unknown = tuple(f for f in filters if f not in STATE_BY_DISPLAY_NAME)
        try:
            listed = await transaction_requests(self._backend).list_transactions(
                tpb.ListTransactionsRequest(
                    state_filters=filters,
                    producer_id_filters=[int(p) for p in request.producer_id_filters],
                )
            )
            code = ErrorCode.none
        except RaftkaError as e:
            listed, code = [], error_of(e)
        entry = nested(answer_type, "TransactionState")
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=code,
            unknown_state_filters=unknown,
            transaction_states=tuple(
                entry(
                    transactional_id=t.transactional_id,
                    producer_id=t.producer_id,
                    transaction_state=t.state,
                )
                for t in listed
            ),
        )


class DescribeProducersHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(DESCRIBE_PRODUCERS_KEY, context.api_version)
        partition_type = nested(answer_type, "PartitionResponse")
        producer_type = nested(answer_type, "ProducerState")
        topic_type = nested(answer_type, "TopicResponse")
        too_many: RaftkaError | None = None
        try:
            require_items(sum(len(t.partition_indexes) for t in request.topics), "partitions")
        except RaftkaError as e:
            too_many = e

        def partition(topic: str, index: int) -> Any:
            try:
                if too_many is not None:
                    raise too_many
                producers = self._producers(topic, index)
            except RaftkaError as e:
                return partition_type(
                    partition_index=index,
                    error_code=error_of(e),
                    error_message=e.message,
                    active_producers=(),
                )
            return partition_type(
                partition_index=index,
                error_code=ErrorCode.none,
                error_message=None,
                active_producers=tuple(_producer(producer_type, p) for p in producers),
            )

        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            topics=tuple(
                topic_type(
                    name=t.name,
                    partitions=tuple(partition(t.name, int(i)) for i in t.partition_indexes),
                )
                for t in request.topics
            ),
        )

    def _producers(self, topic: str, index: int) -> list[ProducerEntry]:
        backend = self._backend
        backend.guard.require(OP_READ, RESOURCE_TOPIC, topic)
        return list(backend.leader_partition(topic, index, None).log.producer_state)


def _producer(producer_type: type[Any], entry: ProducerEntry) -> Any:
    last = entry.batches[-1] if entry.batches else None
    return producer_type(
        producer_id=entry.producer_id,
        producer_epoch=entry.epoch,
        last_sequence=-1 if last is None else last.last_seq,
        last_timestamp=-1 if last is None else last.timestamp,
        coordinator_epoch=entry.coordinator_epoch,
        current_txn_start_offset=-1 if entry.txn_first_offset is None else entry.txn_first_offset,
    )
