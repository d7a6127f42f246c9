"""A transactional producer's calls to its transaction coordinator: AddPartitionsToTxn
(v0-v3), AddOffsetsToTxn (v0-v3) and EndTxn (v0-v5); TxnOffsetCommit is txn_offsets.py's.

Adapters only: :mod:`raftka.broker.transactions.requests`' calls (the gRPC
TransactionService's checks and authorization). What fails a call as a whole (a coordinator moved or loading, a
fenced producer, a refused transactional id, bad fields) is the answer's error code, put on
every partition where the answer only has per-partition codes.

Versions, as Kafka: PRODUCER_FENCED exists from AddPartitionsToTxn / AddOffsetsToTxn / EndTxn
v2 (older versions get INVALID_PRODUCER_EPOCH, which clients treat alike). EndTxn v5 bumps the producer's epoch on every
transaction and answers the new one (KIP-890's transaction version 2); before v5 the answer
cannot carry an epoch, so the producer keeps its own (version 1: what librdkafka uses).
"""

from __future__ import annotations

from collections.abc import Iterable
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
from raftka.broker.transactions.requests import TxnRequests
from raftka.common.errors import RaftkaError
from raftka.common.group_errors import CoordinatorNotAvailableError

ADD_PARTITIONS_TO_TXN_KEY = 24
ADD_OFFSETS_TO_TXN_KEY = 25
END_TXN_KEY = 26
PRODUCER_FENCED_FROM = 2
"""AddPartitionsToTxn, AddOffsetsToTxn and EndTxn answer PRODUCER_FENCED from this version."""
EPOCH_BUMP_FROM = 5
"""EndTxn from this version bumps the epoch and answers it (transaction version 2)."""


def txn_error(error: RaftkaError, version: int, fenced_from: int | None) -> ErrorCode:
    """Kafka's code for ``error`` at ``version``: PRODUCER_FENCED is INVALID_PRODUCER_EPOCH
    before ``fenced_from`` (None: in every version)."""
    code = error_of(error)
    if code is ErrorCode.producer_fenced and (fenced_from is None or version < fenced_from):
        return ErrorCode.invalid_producer_epoch
    return code


def transaction_requests(backend: KafkaBackend) -> TxnRequests:
    if backend.transactions is None:
        raise CoordinatorNotAvailableError(
            "this broker has no transaction coordinator; find the coordinator again and retry"
        )
    return TxnRequests(backend.transactions, backend.guard)


class AddPartitionsToTxnHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        version = context.api_version
        answer_type = response_type(ADD_PARTITIONS_TO_TXN_KEY, version)
        requested = [(t.name, int(p)) for t in request.v3_and_below_topics for p in t.partitions]
        codes: dict[tuple[str, int], ErrorCode]
        try:
            answers = await transaction_requests(self._backend).add_partitions(
                request.v3_and_below_transactional_id,
                int(request.v3_and_below_producer_id),
                int(request.v3_and_below_producer_epoch),
                requested,
            )
            codes = {(a.topic, a.partition): error_code(a.error_code) for a in answers}
        except RaftkaError as e:
            code = txn_error(e, version, PRODUCER_FENCED_FROM)
            codes = dict.fromkeys(requested, code)
        partition_type = nested(answer_type, "AddPartitionsToTxnPartitionResult")
        topic_type = nested(answer_type, "AddPartitionsToTxnTopicResult")
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            results_by_topic_v3_and_below=tuple(
                topic_type(
                    name=topic,
                    results_by_partition=tuple(
                        partition_type(partition_index=p, partition_error_code=codes[(topic, p)])
                        for p in partitions
                    ),
                )
                for topic, partitions in by_topic(codes).items()
            ),
        )


class AddOffsetsToTxnHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(ADD_OFFSETS_TO_TXN_KEY, context.api_version)
        code = ErrorCode.none
        try:
            await transaction_requests(self._backend).add_offsets(
                request.transactional_id,
                int(request.producer_id),
                int(request.producer_epoch),
                request.group_id,
            )
        except RaftkaError as e:
            code = txn_error(e, context.api_version, PRODUCER_FENCED_FROM)
        return build(answer_type, throttle_time=NO_THROTTLE, error_code=code)


class EndTxnHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        version = context.api_version
        answer_type = response_type(END_TXN_KEY, version)
        try:
            ended = await transaction_requests(self._backend).end_transaction(
                request.transactional_id,
                int(request.producer_id),
                int(request.producer_epoch),
                bool(request.committed),
                bump_epoch=version >= EPOCH_BUMP_FROM,
            )
        except RaftkaError as e:
            return build(
                answer_type,
                throttle_time=NO_THROTTLE,
                error_code=txn_error(e, version, PRODUCER_FENCED_FROM),
                producer_id=-1,
                producer_epoch=-1,
            )
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.none,
            producer_id=ended.producer_id,
            producer_epoch=ended.producer_epoch,
        )


def by_topic(pairs: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    """Partitions grouped by topic, each topic and partition once, in request order."""
    out: dict[str, list[int]] = {}
    for topic, partition in pairs:
        partitions = out.setdefault(topic, [])
        if partition not in partitions:
            partitions.append(partition)
    return out
