"""The gRPC TransactionService: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
DescribeTransactions and ListTransactions on the transaction coordinator, and WriteTxnMarkers
(inter-broker) on the partition leader's marker writer.

Transport only: every request is checked first (transactional and group ids 1..249 bytes of
UTF-8, at most 10,000 items, no negative producer ids or epochs; INVALID_REQUEST otherwise,
with nothing changed), then handed on. Coordinator and transaction errors fail the call as a
whole (the client retries or gives up on the code); per-item answers are only where the
response has them: UNKNOWN_TOPIC_OR_PARTITION in AddPartitionsToTxn (nothing was added: the
other partitions answer OPERATION_NOT_ATTEMPTED), and each id of DescribeTransactions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, TypeAlias

import grpc

from raftka.broker.clients import ClientLog
from raftka.broker.groups.validation import check_group_id
from raftka.broker.transactions.api import TopicPartition
from raftka.broker.transactions.runtime import TransactionCoordinator
from raftka.broker.transactions.validation import check_partitions, check_transactional_id
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.limits import require_items
from raftka.common.rpc.status import rpc_errors
from raftka.common.security.guard import OPEN_GUARD, AccessGuard
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
from raftka.v1.transactions_pb2_grpc import TransactionServiceServicer

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

MAX_PRODUCER_EPOCH = 32767


class MarkerWriting(Protocol):
    """WriteTxnMarkers on this broker (marker_writer.MarkerWriter)."""

    async def write(self, request: tpb.WriteTxnMarkersRequest) -> tpb.WriteTxnMarkersResponse: ...


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


def requested_partitions(topics: Any) -> list[TopicPartition]:
    """The (topic, partition) pairs of ``TxnTopicPartitions`` entries, in request order."""
    return [(t.topic, p) for t in topics for p in t.partitions]


class TransactionServicer(TransactionServiceServicer):
    def __init__(
        self,
        *,
        coordinator: TransactionCoordinator,
        marker_writer: MarkerWriting,
        guard: AccessGuard = OPEN_GUARD,
    ) -> None:
        """``guard``: the authorization checks (WRITE on the transactional id for a
        producer's calls; WriteTxnMarkers is refused to non-nodes by the server's
        interceptor, AddPartitionsToTxn's verify_only here)."""
        self._guard = guard
        self._coordinator = coordinator
        self._markers = marker_writer
        self._clients = ClientLog()

    @rpc_errors
    async def AddPartitionsToTxn(
        self, request: tpb.AddPartitionsToTxnRequest, context: Context
    ) -> tpb.AddPartitionsToTxnResponse:
        self._clients.saw(context, "AddPartitionsToTxn")
        check_transactional_id(request.transactional_id)
        check_producer(request.producer_id, request.producer_epoch)
        requested = requested_partitions(request.topics)
        require_items(len(requested), "topics[].partitions")
        check_partitions(requested)
        if request.verify_only:  # inter-broker (KIP-890)
            self._guard.require_cluster_action()
            return await self._verify_partitions(request, requested)
        self._guard.require(OP_WRITE, RESOURCE_TRANSACTIONAL_ID, request.transactional_id)
        refused = self._refused_topics(t.topic for t in request.topics)
        if refused:
            return _not_added(requested, refused)
        unknown = set(
            await self._coordinator.add_partitions(
                request.transactional_id,
                request.producer_id,
                request.producer_epoch,
                list(dict.fromkeys(requested)),
            )
        )
        response = tpb.AddPartitionsToTxnResponse()
        for topic, partition in requested:
            result = response.results.add(topic=topic, partition=partition)
            if (topic, partition) in unknown:
                result.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                result.error_message = (
                    f"{topic}-{partition} does not exist: nothing in this request was added to "
                    "the transaction"
                )
            elif unknown:
                result.error_code = ErrorCode.OPERATION_NOT_ATTEMPTED
                result.error_message = (
                    "not added: other partitions of this request do not exist; send it again "
                    "without them"
                )
        return response

    async def _verify_partitions(
        self, request: tpb.AddPartitionsToTxnRequest, requested: list[TopicPartition]
    ) -> tpb.AddPartitionsToTxnResponse:
        """verify_only (inter-broker, KIP-890 part 1): NONE or TRANSACTION_ABORTABLE per
        partition; nothing is added."""
        missing = set(
            await self._coordinator.verify_partitions(
                request.transactional_id,
                request.producer_id,
                request.producer_epoch,
                list(dict.fromkeys(requested)),
            )
        )
        response = tpb.AddPartitionsToTxnResponse()
        for topic, partition in requested:
            result = response.results.add(topic=topic, partition=partition)
            if (topic, partition) in missing:
                result.error_code = ErrorCode.TRANSACTION_ABORTABLE
                result.error_message = (
                    f"{topic}-{partition} is not in the ongoing transaction of "
                    f"{request.transactional_id!r}: abort the transaction, then add the "
                    "partition (AddPartitionsToTxn) before writing to it"
                )
        return response

    @rpc_errors
    async def AddOffsetsToTxn(
        self, request: tpb.AddOffsetsToTxnRequest, context: Context
    ) -> tpb.AddOffsetsToTxnResponse:
        self._clients.saw(context, "AddOffsetsToTxn")
        check_transactional_id(request.transactional_id)
        check_producer(request.producer_id, request.producer_epoch)
        check_group_id(request.group_id)
        self._guard.require(OP_WRITE, RESOURCE_TRANSACTIONAL_ID, request.transactional_id)
        self._guard.require(OP_READ, RESOURCE_GROUP, request.group_id)
        await self._coordinator.add_offsets(
            request.transactional_id, request.producer_id, request.producer_epoch, request.group_id
        )
        return tpb.AddOffsetsToTxnResponse()

    @rpc_errors
    async def EndTxn(self, request: tpb.EndTxnRequest, context: Context) -> tpb.EndTxnResponse:
        self._clients.saw(context, "EndTxn")
        check_transactional_id(request.transactional_id)
        check_producer(request.producer_id, request.producer_epoch)
        self._guard.require(OP_WRITE, RESOURCE_TRANSACTIONAL_ID, request.transactional_id)
        ended = await self._coordinator.end_transaction(
            request.transactional_id,
            request.producer_id,
            request.producer_epoch,
            request.committed,
        )
        return tpb.EndTxnResponse(
            producer_id=ended.producer_id, producer_epoch=ended.producer_epoch
        )

    @rpc_errors
    async def WriteTxnMarkers(
        self, request: tpb.WriteTxnMarkersRequest, context: Context
    ) -> tpb.WriteTxnMarkersResponse:
        return await self._markers.write(request)

    @rpc_errors
    async def DescribeTransactions(
        self, request: tpb.DescribeTransactionsRequest, context: Context
    ) -> tpb.DescribeTransactionsResponse:
        self._clients.saw(context, "DescribeTransactions")
        require_items(len(request.transactional_ids), "transactional_ids")
        response = tpb.DescribeTransactionsResponse()
        for transactional_id in request.transactional_ids:
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
            response.transactions.append(described)
        return response

    @rpc_errors
    async def ListTransactions(
        self, request: tpb.ListTransactionsRequest, context: Context
    ) -> tpb.ListTransactionsResponse:
        self._clients.saw(context, "ListTransactions")
        require_items(len(request.state_filters), "state_filters", empty_means_all=True)
        require_items(len(request.producer_id_filters), "producer_id_filters", empty_means_all=True)
        listed = await self._coordinator.list_transactions(request)
        allowed = self._guard.allowed_quietly
        return tpb.ListTransactionsResponse(
            transactions=[
                t
                for t in listed
                if allowed(OP_DESCRIBE, RESOURCE_TRANSACTIONAL_ID, t.transactional_id)
            ]
        )

    def _refused_topics(self, topics: Iterable[str]) -> dict[str, RaftkaError]:
        """The topics the caller may not WRITE, with their errors."""
        if not self._guard.enabled:
            return {}
        refused = {t: self._guard.denial(OP_WRITE, RESOURCE_TOPIC, t) for t in set(topics)}
        return {t: e for t, e in refused.items() if e is not None}


def _not_added(
    requested: list[TopicPartition], refused: dict[str, RaftkaError]
) -> tpb.AddPartitionsToTxnResponse:
    """Nothing added: TOPIC_AUTHORIZATION_FAILED on the refused topics' partitions,
    OPERATION_NOT_ATTEMPTED on the others (Kafka's answer)."""
    response = tpb.AddPartitionsToTxnResponse()
    for topic, partition in requested:
        result = response.results.add(topic=topic, partition=partition)
        error = refused.get(topic)
        if error is not None:
            result.error_code, result.error_message = error.code, error.message
        else:
            result.error_code = ErrorCode.OPERATION_NOT_ATTEMPTED
            result.error_message = (
                "not added: the caller may not write other topics of this request; send it "
                "again without them"
            )
    return response
