"""The gRPC TransactionService: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
DescribeTransactions and ListTransactions on the transaction coordinator, and WriteTxnMarkers
(inter-broker) on the partition leader's marker writer.

Transport only: the producer's calls are requests.py's (checked, authorized, then handed to
the coordinator; the Kafka listener calls the same), translated to and from protobuf here.
Coordinator and transaction errors fail the call as a
whole (the client retries or gives up on the code); per-item answers are only where the
response has them: UNKNOWN_TOPIC_OR_PARTITION in AddPartitionsToTxn (nothing was added: the
other partitions answer OPERATION_NOT_ATTEMPTED), and each id of DescribeTransactions.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias

import grpc

from raftka.broker.clients import ClientLog
from raftka.broker.transactions.api import TopicPartition
from raftka.broker.transactions.requests import TxnRequests, check_add_partitions
from raftka.broker.transactions.runtime import TransactionCoordinator
from raftka.common.rpc.status import rpc_errors
from raftka.common.security.guard import OPEN_GUARD, AccessGuard
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.transactions_pb2_grpc import TransactionServiceServicer

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class MarkerWriting(Protocol):
    """WriteTxnMarkers on this broker (marker_writer.MarkerWriter)."""

    async def write(self, request: tpb.WriteTxnMarkersRequest) -> tpb.WriteTxnMarkersResponse: ...


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
        self._requests = TxnRequests(coordinator, guard)
        self._markers = marker_writer
        self._clients = ClientLog()

    @rpc_errors
    async def AddPartitionsToTxn(
        self, request: tpb.AddPartitionsToTxnRequest, context: Context
    ) -> tpb.AddPartitionsToTxnResponse:
        self._clients.saw(context, "AddPartitionsToTxn")
        requested = requested_partitions(request.topics)
        if request.verify_only:  # inter-broker (KIP-890)
            check_add_partitions(
                request.transactional_id, request.producer_id, request.producer_epoch, requested
            )
            self._guard.require_cluster_action()
            return await self._verify_partitions(request, requested)
        answers = await self._requests.add_partitions(
            request.transactional_id, request.producer_id, request.producer_epoch, requested
        )
        response = tpb.AddPartitionsToTxnResponse()
        for answer in answers:
            response.results.add(
                topic=answer.topic,
                partition=answer.partition,
                error_code=answer.error_code,
                error_message=answer.error_message,
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
        await self._requests.add_offsets(
            request.transactional_id, request.producer_id, request.producer_epoch, request.group_id
        )
        return tpb.AddOffsetsToTxnResponse()

    @rpc_errors
    async def EndTxn(self, request: tpb.EndTxnRequest, context: Context) -> tpb.EndTxnResponse:
        self._clients.saw(context, "EndTxn")
        ended = await self._requests.end_transaction(
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
        return tpb.DescribeTransactionsResponse(
            transactions=await self._requests.describe(request.transactional_ids)
        )

    @rpc_errors
    async def ListTransactions(
        self, request: tpb.ListTransactionsRequest, context: Context
    ) -> tpb.ListTransactionsResponse:
        self._clients.saw(context, "ListTransactions")
        return tpb.ListTransactionsResponse(
            transactions=await self._requests.list_transactions(request)
        )
