"""A producer's transaction calls, checked and authorized, for any transport: the gRPC
TransactionService and the Kafka listener's handlers both call these and only translate.

Every call checks its fields first (transactional and group ids 1..249 bytes of UTF-8, at
most 10,000 items, no negative producer ids or epochs; INVALID_REQUEST otherwise, with nothing
changed), then the caller's rights (WRITE on the transactional id; WRITE on each topic added,
READ on the group of offsets), then hands on to the transaction coordinator. What fails the
call as a whole is raised (a RaftkaError); per-item answers are returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from raftka.broker.groups.validation import check_group_id
from raftka.broker.transactions.api import InitProducerIdResult, TopicPartition
from raftka.broker.transactions.runtime import TransactionCoordinator
from raftka.broker.transactions.validation import check_partitions, check_transactional_id
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.limits import require_items
from raftka.common.security.guard import AccessGuard
from raftka.common.security.model import (
    OP_DESCRIBE,
    OP_READ,
    OP_WRITE,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
)
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode

MAX_PRODUCER_EPOCH = 32767


@dataclass(frozen=True, slots=True)
class PartitionAnswer:
    """One requested partition's answer to AddPartitionsToTxn (NONE: added)."""

    topic: str
    partition: int
    error_code: ErrorCode.ValueType = ErrorCode.NONE
    error_message: str = ""


def check_producer(producer_id: int, producer_epoch: int) -> None:
    if producer_id < 0:
        raise InvalidRequestError(
            f"producer_id {producer_id} is negative: use the id InitProducerId returned"
        )
    if not 0 <= producer_epoch <= MAX_PRODUCER_EPOCH:
        raise InvalidRequestError(
            f"producer_epoch {producer_epoch} is not in 0..{MAX_PRODUCER_EPOCH}: use the epoch "
            "InitProducerId (or the last EndTxn) returned"
        )


def check_add_partitions(
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    requested: Sequence[TopicPartition],
) -> None:
    """The fields of AddPartitionsToTxn (plain or verify-only)."""
    check_transactional_id(transactional_id)
    check_producer(producer_id, producer_epoch)
    require_items(len(requested), "topics[].partitions")
    check_partitions(requested)


class TxnRequests:
    def __init__(self, coordinator: TransactionCoordinator, guard: AccessGuard) -> None:
        self._coordinator = coordinator
        self._guard = guard

    async def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        requested: Sequence[TopicPartition],
    ) -> list[PartitionAnswer]:
        """One answer per requested partition, in request order. All or nothing, as Kafka:
        a topic the caller may not WRITE answers TOPIC_AUTHORIZATION_FAILED, a partition that
        does not exist UNKNOWN_TOPIC_OR_PARTITION, and then the others
        OPERATION_NOT_ATTEMPTED."""
        check_add_partitions(transactional_id, producer_id, producer_epoch, requested)
        self._guard.require(OP_WRITE, RESOURCE_TRANSACTIONAL_ID, transactional_id)
        refused = self._refused_topics({topic for topic, _ in requested})
        if refused:
            return [
                _refused(topic, partition, refused.get(topic)) for topic, partition in requested
            ]
        unknown = set(
            await self._coordinator.add_partitions(
                transactional_id, producer_id, producer_epoch, list(dict.fromkeys(requested))
            )
        )
        if not unknown:
            return [PartitionAnswer(topic, partition) for topic, partition in requested]
        return [
            _unknown(topic, partition, (topic, partition) in unknown)
            for topic, partition in requested
        ]

    async def add_offsets(
        self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str
    ) -> None:
        check_transactional_id(transactional_id)
        check_producer(producer_id, producer_epoch)
        check_group_id(group_id)
        self._guard.require(OP_WRITE, RESOURCE_TRANSACTIONAL_ID, transactional_id)
        self._guard.require(OP_READ, RESOURCE_GROUP, group_id)
        await self._coordinator.add_offsets(transactional_id, producer_id, producer_epoch, group_id)

    async def end_transaction(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        *,
        bump_epoch: bool = True,
    ) -> InitProducerIdResult:
        """``bump_epoch=False``: transaction version 1 (see TxnShard.end_transaction)."""
        check_transactional_id(transactional_id)
        check_producer(producer_id, producer_epoch)
        self._guard.require(OP_WRITE, RESOURCE_TRANSACTIONAL_ID, transactional_id)
        return await self._coordinator.end_transaction(
            transactional_id, producer_id, producer_epoch, committed, bump_epoch=bump_epoch
        )

    async def describe(self, transactional_ids: Sequence[str]) -> list[tpb.TransactionDescription]:
        """One description per id, in request order; an id's error is in its description."""
        require_items(len(transactional_ids), "transactional_ids")
        out: list[tpb.TransactionDescription] = []
        for transactional_id in transactional_ids:
            try:
                check_transactional_id(transactional_id)
                self._guard.require(OP_DESCRIBE, RESOURCE_TRANSACTIONAL_ID, transactional_id)
                described = await self._coordinator.describe(transactional_id)
            except RaftkaError as e:
                described = tpb.TransactionDescription(
                    transactional_id=transactional_id,
                    error_code=e.code,
                    error_message=e.message,
                    producer_id=-1,
                    producer_epoch=-1,
                    transaction_start_time_ms=-1,
                )
            out.append(described)
        return out

    async def list_transactions(
        self, request: tpb.ListTransactionsRequest
    ) -> list[tpb.ListedTransaction]:
        """The transactions of this broker's coordinator the caller may DESCRIBE."""
        require_items(len(request.state_filters), "state_filters", empty_means_all=True)
        require_items(len(request.producer_id_filters), "producer_id_filters", empty_means_all=True)
        listed = await self._coordinator.list_transactions(request)
        allowed = self._guard.allowed_quietly
        return [
            t for t in listed if allowed(OP_DESCRIBE, RESOURCE_TRANSACTIONAL_ID, t.transactional_id)
        ]

    def _refused_topics(self, topics: set[str]) -> dict[str, RaftkaError]:
        """The topics the caller may not WRITE, with their errors."""
        if not self._guard.enabled:
            return {}
        refused = {t: self._guard.denial(OP_WRITE, RESOURCE_TOPIC, t) for t in topics}
        return {t: e for t, e in refused.items() if e is not None}


def _refused(topic: str, partition: int, error: RaftkaError | None) -> PartitionAnswer:
    if error is not None:
        return PartitionAnswer(topic, partition, error.code, error.message)
    return PartitionAnswer(
        topic,
        partition,
        ErrorCode.OPERATION_NOT_ATTEMPTED,
        "not added: the caller may not write other topics of this request; send it again "
        "without them",
    )


def _unknown(topic: str, partition: int, missing: bool) -> PartitionAnswer:
    if missing:
        return PartitionAnswer(
            topic,
            partition,
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            f"{topic}-{partition} does not exist: nothing in this request was added to the "
            "transaction",
        )
    return PartitionAnswer(
        topic,
        partition,
        ErrorCode.OPERATION_NOT_ATTEMPTED,
        "not added: other partitions of this request do not exist; send it again without them",
    )
