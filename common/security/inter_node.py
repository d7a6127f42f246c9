"""Which RPCs are for nodes only, and the server interceptor that keeps everyone else out.

Design rule 7: every RPC meant for nodes (Raft, registration, heartbeats, AlterPartition,
producer-id blocks, transaction markers, fault injection) requires CLUSTER_ACTION on the
cluster, which node principals have (they are super users). :data:`CLUSTER_ACTION_METHODS`
lists them; :class:`ClusterActionInterceptor` refuses them before the handler runs, with
PERMISSION_DENIED and ``raftka-error: CLUSTER_AUTHORIZATION_FAILED``.

The security administration RPCs (ACLs, credentials, quotas) each need one operation on the
cluster for the whole call (:data:`CLUSTER_ADMIN_METHODS`): the same interceptor checks them.
Every other RPC is authorized by its handler, per resource (the table in
:data:`HANDLER_CHECKED_METHODS` says what each needs), because what it needs depends on the
request: a Fetch from a follower needs CLUSTER_ACTION but a consumer's needs READ on each
topic; AddPartitionsToTxn with ``verify_only`` is inter-broker. A test derives every method
of every service from the descriptors and checks it is in one table or the other, so a new
RPC cannot be left unclassified.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import grpc

from raftka.common.rpc.status import status_for, trailing_metadata_for
from raftka.common.security.caller import bind_caller, current_caller, reset_caller
from raftka.common.security.guard import AccessGuard, denial_message
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    OP_ALTER,
    OP_ALTER_CONFIGS,
    OP_CLUSTER_ACTION,
    OP_DESCRIBE,
    OP_DESCRIBE_CONFIGS,
    RESOURCE_CLUSTER,
)
from raftka.common.security_errors import ClusterAuthorizationFailedError

_V1 = "/raftka.v1."

CLUSTER_ACTION_METHODS: frozenset[str] = frozenset(
    _V1 + m
    for m in (
        "RaftService/Deliver",
        "ControllerService/RegisterBroker",
        "ControllerService/BrokerHeartbeat",
        "ControllerService/AllocateProducerIds",
        "ControllerService/AlterPartition",
        "TransactionService/WriteTxnMarkers",
        "BrokerService/ReplicaFetchStream",
        "FaultService/InjectFaults",
        "FaultService/ClearFaults",
        "FaultService/DescribeFaults",
    )
)
"""Inter-node RPCs: CLUSTER_ACTION on the cluster, checked by the interceptor."""

CLUSTER_ADMIN_METHODS: dict[str, int] = {
    _V1 + m: operation
    for m, operation in (
        ("AclService/CreateAcls", OP_ALTER),
        ("AclService/DescribeAcls", OP_DESCRIBE),
        ("AclService/DeleteAcls", OP_ALTER),
        ("UserService/AlterUserScramCredentials", OP_ALTER),
        ("UserService/DescribeUserScramCredentials", OP_DESCRIBE),
        ("QuotaService/AlterClientQuotas", OP_ALTER_CONFIGS),
        ("QuotaService/DescribeClientQuotas", OP_DESCRIBE_CONFIGS),
    )
}
"""Security administration: one operation on the cluster for the whole call, checked by the
interceptor too (security.proto says which)."""

CLUSTER_METHODS: dict[str, int] = {
    **{m: OP_CLUSTER_ACTION for m in CLUSTER_ACTION_METHODS},
    **CLUSTER_ADMIN_METHODS,
}
"""Every method the interceptor checks, and the cluster operation it needs."""

HANDLER_CHECKED_METHODS: dict[str, str] = {
    _V1 + m: need
    for m, need in (
        ("BrokerService/Metadata", "DESCRIBE on each topic (others left out or refused)"),
        ("BrokerService/Produce", "WRITE on each topic; transactional: WRITE on the id"),
        ("BrokerService/ProduceStream", "as Produce, for each request of the stream"),
        ("BrokerService/Fetch", "follower: CLUSTER_ACTION; consumer: READ on each topic"),
        ("BrokerService/ListOffsets", "DESCRIBE on each topic"),
        (
            "BrokerService/InitProducerId",
            "WRITE on the transactional id; without one IDEMPOTENT_WRITE on the cluster or "
            "WRITE on some topic",
        ),
        ("GroupService/FindCoordinator", "DESCRIBE on each key (group or transactional id)"),
        ("GroupService/ConsumerGroupHeartbeat", "READ on the group"),
        ("GroupService/ConsumerGroupStream", "READ on the group (each heartbeat)"),
        ("GroupService/OffsetCommit", "READ on the group and on each topic"),
        ("GroupService/OffsetFetch", "DESCRIBE on the group and on each topic"),
        (
            "GroupService/TxnOffsetCommit",
            "WRITE on the transactional id, READ on the group and on each topic",
        ),
        ("GroupService/ListGroups", "DESCRIBE on each group listed (others left out)"),
        ("GroupService/DescribeGroups", "DESCRIBE on each group"),
        ("GroupService/DeleteGroups", "DELETE on each group"),
        ("GroupService/OffsetDelete", "DELETE on the group and READ on each topic"),
        (
            "TransactionService/AddPartitionsToTxn",
            "WRITE on the transactional id and each topic; verify_only: CLUSTER_ACTION",
        ),
        ("TransactionService/AddOffsetsToTxn", "WRITE on the transactional id, READ on the group"),
        ("TransactionService/EndTxn", "WRITE on the transactional id"),
        ("TransactionService/DescribeTransactions", "DESCRIBE on each transactional id"),
        ("TransactionService/ListTransactions", "DESCRIBE on each id listed (others left out)"),
        ("ControllerService/CreateTopics", "CREATE on the cluster or on each topic"),
        ("ControllerService/DeleteTopics", "DELETE on each topic"),
        ("ControllerService/CreatePartitions", "ALTER on each topic"),
        ("ControllerService/DescribeTopics", "DESCRIBE on each topic (others left out)"),
        ("ControllerService/DescribeCluster", "DESCRIBE on the cluster"),
        ("ControllerService/DescribeQuorum", "DESCRIBE on the cluster"),
        (
            "ControllerService/DescribeConfigs",
            "DESCRIBE_CONFIGS on each topic (broker resources: on the cluster)",
        ),
        (
            "ControllerService/AlterConfigs",
            "ALTER_CONFIGS on each topic (broker resources: on the cluster)",
        ),
        ("ControllerService/TransferLeadership", "ALTER on the cluster"),
        ("ControllerService/ElectLeaders", "ALTER on the cluster"),
        ("ControllerService/AlterPartitionReassignments", "ALTER on the cluster"),
        ("ControllerService/ListPartitionReassignments", "DESCRIBE on the cluster"),
        (
            "ControllerService/WatchMetadata",
            "CLUSTER_ACTION for the whole log; otherwise DESCRIBE on the cluster, without "
            "ACL, credential and quota records",
        ),
    )
}
"""Client RPCs, authorized by their handlers per resource: what each requires."""


def _refusal(
    guard: AccessGuard, method: str, operation: int
) -> ClusterAuthorizationFailedError | None:
    """None when the caller may do ``operation`` on the cluster, else the error (the refusal
    is logged)."""
    caller = current_caller()
    if not caller.method:
        caller = replace(caller, method=method)
    token = bind_caller(caller)
    try:
        if guard.allowed(operation, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME):
            return None
    finally:
        reset_caller(token)
    what = "an inter-node RPC" if operation == OP_CLUSTER_ACTION else "a cluster administration RPC"
    return ClusterAuthorizationFailedError(
        f"{method} is {what}: "
        + denial_message(caller, operation, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)
    )


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], error: ClusterAuthorizationFailedError
) -> None:
    context.set_trailing_metadata(trailing_metadata_for(error))
    await context.abort(status_for(error), error.message)


def _guard_handler(
    handler: grpc.RpcMethodHandler, guard: AccessGuard, method: str, operation: int
) -> grpc.RpcMethodHandler:
    """``handler`` with the cluster check run first, inside the call (so it sees the
    caller bound by an authentication interceptor that wraps handlers too)."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None or handler.stream_unary is not None:
        inner: Callable[..., Awaitable[Any]] = handler.unary_unary or handler.stream_unary

        async def single(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            error = _refusal(guard, method, operation)
            if error is not None:
                await _abort(context, error)
            return await inner(request, context)

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(single, **kwargs)
        return grpc.stream_unary_rpc_method_handler(single, **kwargs)

    streaming: Callable[..., AsyncIterator[Any]] = handler.unary_stream or handler.stream_stream

    async def many(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        error = _refusal(guard, method, operation)
        if error is not None:
            await _abort(context, error)
        async for response in streaming(request, context):
            yield response

    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(many, **kwargs)
    return grpc.stream_stream_rpc_method_handler(many, **kwargs)


class ClusterActionInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses each method of ``methods`` to callers without its operation on the cluster
    (CLUSTER_ACTION for inter-node RPCs)."""

    def __init__(self, guard: AccessGuard, methods: Mapping[str, int] = CLUSTER_METHODS) -> None:
        self._guard = guard
        self._methods = methods

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        operation = self._methods.get(method)
        if handler is None or operation is None:
            return handler
        return _guard_handler(handler, self._guard, method, operation)


def inter_node_interceptors(guard: AccessGuard) -> tuple[grpc.aio.ServerInterceptor, ...]:
    """The interceptors a node's server needs for ``guard``: none when authorization is off
    (an RPC then costs nothing extra)."""
    return (ClusterActionInterceptor(guard),) if guard.enabled else ()
