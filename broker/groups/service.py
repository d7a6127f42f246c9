"""The gRPC GroupService: FindCoordinator, member heartbeats (unary and stream), committed
offsets (plain and transactional) and group administration.

Transport only: the checks, authorization and routing to the coordinator are
:mod:`raftka.broker.groups.operations` (shared with the Kafka listener), the coordinator lookup
:mod:`raftka.broker.groups.coordinator_lookup`. Coordinator errors (NOT_COORDINATOR,
COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE) fail a single-group call as a whole
with their gRPC status; the stream form answers member-level refusals on the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
import structlog

from raftka.broker.clients import ClientLog
from raftka.broker.groups.coordinator_lookup import Located, coordinator_kind, locate
from raftka.broker.groups.operations import GroupOperations, OffsetsTopicView
from raftka.broker.groups.placement import OFFSETS_TOPIC
from raftka.broker.groups.runtime import GroupCoordinator, Push
from raftka.common.errors import (
    CoordinatorLoadInProgressError,
    RaftkaError,
)
from raftka.common.group_errors import (
    CoordinatorNotAvailableError,
    NotCoordinatorError,
)
from raftka.common.limits import require_items
from raftka.common.rpc.status import ERROR_KEY, rpc_errors, status_for, trailing_metadata_for
from raftka.common.security.guard import OPEN_GUARD, AccessGuard
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceServicer

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

log = structlog.get_logger(__name__)

COORDINATOR_ERRORS = (
    NotCoordinatorError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
)
"""Errors that fail a whole call (or end a stream): the client finds the coordinator again."""


def peer_host(peer: str) -> str:
    """The host of a gRPC peer string ("ipv4:10.0.0.1:5000", "ipv6:[::1]:5000")."""
    address = peer.partition(":")[2]
    host = address.rpartition(":")[0] if ":" in address else address
    return host.strip("[]") or peer


class GroupServicer(GroupServiceServicer):
    def __init__(
        self,
        *,
        coordinator: GroupCoordinator,
        offsets_topic: OffsetsTopicView,
        transaction_topic: OffsetsTopicView | None = None,
        guard: AccessGuard = OPEN_GUARD,
    ) -> None:
        """``transaction_topic``: ``__transaction_state``, for FindCoordinator of
        transactional ids (None: COORDINATOR_TYPE_TRANSACTION is refused); ``guard``: the
        authorization checks (READ on a group to be a member or commit, DESCRIBE to look,
        DELETE to delete; READ / DESCRIBE on the topics of offsets)."""
        self._guard = guard
        self._coordinator = coordinator
        self._topic = offsets_topic
        self._transaction_topic = transaction_topic
        self._clients = ClientLog()
        self._ops = GroupOperations(
            coordinator=coordinator, offsets_topic=offsets_topic, guard=guard
        )

    # ---- finding the coordinator ----

    @rpc_errors
    async def FindCoordinator(
        self, request: gpb.FindCoordinatorRequest, context: Context
    ) -> gpb.FindCoordinatorResponse:
        self._clients.saw(context, "FindCoordinator")
        require_items(len(request.keys), "keys")
        kind = coordinator_kind(request.key_type, self._topic, self._transaction_topic)
        view = self._topic if kind.topic_name == OFFSETS_TOPIC else self._transaction_topic
        assert view is not None
        found = locate(request.keys, kind, self._guard, lambda b: view.client_endpoint(b))
        return gpb.FindCoordinatorResponse(coordinators=[_coordinator(f) for f in found])

    # ---- membership ----

    async def heartbeat(
        self, request: gpb.ConsumerGroupHeartbeatRequest, context: Context
    ) -> gpb.ConsumerGroupHeartbeatResponse:
        """One heartbeat, for both forms."""

        def client() -> tuple[str, str]:
            client_id = self._clients.saw(context, "ConsumerGroupHeartbeat")
            return client_id, peer_host(str(context.peer()))

        return await self._ops.heartbeat(request, client)

    @rpc_errors
    async def ConsumerGroupHeartbeat(
        self, request: gpb.ConsumerGroupHeartbeatRequest, context: Context
    ) -> gpb.ConsumerGroupHeartbeatResponse:
        return await self.heartbeat(request, context)

    async def ConsumerGroupStream(
        self,
        request_iterator: AsyncIterator[gpb.ConsumerGroupHeartbeatRequest],
        context: Context,
    ) -> AsyncIterator[gpb.ConsumerGroupHeartbeatResponse]:
        stream = _MemberStream(
            lambda request: self.heartbeat(request, context), self._coordinator, request_iterator
        )
        try:
            async for response in stream.responses():
                yield response
        except RaftkaError as e:
            context.set_trailing_metadata(trailing_metadata_for(e))
            await context.abort(status_for(e), e.message)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as e:
            log.exception("rpc_handler_failed", method="ConsumerGroupStream")
            context.set_trailing_metadata(((ERROR_KEY, "UNKNOWN_SERVER_ERROR"),))
            await context.abort(grpc.StatusCode.INTERNAL, f"ConsumerGroupStream failed: {e!r}")
        finally:
            stream.close()

    # ---- offsets ----

    @rpc_errors
    async def OffsetCommit(
        self, request: gpb.OffsetCommitRequest, context: Context
    ) -> gpb.OffsetCommitResponse:
        return await self._ops.commit_offsets(request)

    @rpc_errors
    async def TxnOffsetCommit(
        self, request: gpb.TxnOffsetCommitRequest, context: Context
    ) -> gpb.OffsetCommitResponse:
        return await self._ops.txn_commit_offsets(request)

    @rpc_errors
    async def OffsetFetch(
        self, request: gpb.OffsetFetchRequest, context: Context
    ) -> gpb.OffsetFetchResponse:
        return await self._ops.fetch_offsets(request)

    # ---- administration ----

    @rpc_errors
    async def ListGroups(
        self, request: gpb.ListGroupsRequest, context: Context
    ) -> gpb.ListGroupsResponse:
        return await self._ops.list_groups(request)

    @rpc_errors
    async def DescribeGroups(
        self, request: gpb.DescribeGroupsRequest, context: Context
    ) -> gpb.DescribeGroupsResponse:
        return await self._ops.describe_groups(request)

    @rpc_errors
    async def DeleteGroups(
        self, request: gpb.DeleteGroupsRequest, context: Context
    ) -> gpb.DeleteGroupsResponse:
        return await self._ops.delete_groups(request)

    @rpc_errors
    async def OffsetDelete(
        self, request: gpb.OffsetDeleteRequest, context: Context
    ) -> gpb.OffsetDeleteResponse:
        return await self._ops.delete_offsets(request)


def _coordinator(found: Located) -> gpb.Coordinator:
    answer = gpb.Coordinator(key=found.key, node_id=found.node_id, partition=found.partition)
    if found.error is not None:
        answer.error_code = found.error.code
        answer.error_message = found.error.message
    elif found.endpoint is not None:
        answer.host, answer.port = found.endpoint
    return answer


class _MemberStream:
    """One ConsumerGroupStream call: answers each heartbeat, and forwards what the coordinator
    pushes to the member (subscribed once the member has an id)."""

    def __init__(
        self,
        heartbeat: Callable[
            [gpb.ConsumerGroupHeartbeatRequest], Awaitable[gpb.ConsumerGroupHeartbeatResponse]
        ],
        coordinator: GroupCoordinator,
        requests: AsyncIterator[gpb.ConsumerGroupHeartbeatRequest],
    ) -> None:
        self._heartbeat = heartbeat
        self._coordinator = coordinator
        self._requests = requests
        self._member: tuple[str, str] | None = None
        self._queue: asyncio.Queue[Push] | None = None
        self._next_request: asyncio.Future[gpb.ConsumerGroupHeartbeatRequest | None] | None = None
        self._next_push: asyncio.Future[Push] | None = None

    async def responses(self) -> AsyncIterator[gpb.ConsumerGroupHeartbeatResponse]:
        self._next_request = asyncio.ensure_future(anext(self._requests, None))
        while True:
            waits: set[asyncio.Future[Any]] = {self._next_request}
            if self._next_push is not None:
                waits.add(self._next_push)
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if self._next_push is not None and self._next_push in done:
                item = self._next_push.result()
                self._next_push = None
                if isinstance(item, RaftkaError):
                    raise item
                yield item
                self._listen()
            if self._next_request in done:
                request = self._next_request.result()
                if request is None:
                    return
                yield await self._answer(request)
                self._next_request = asyncio.ensure_future(anext(self._requests, None))

    async def _answer(
        self, request: gpb.ConsumerGroupHeartbeatRequest
    ) -> gpb.ConsumerGroupHeartbeatResponse:
        try:
            response = await self._heartbeat(request)
        except COORDINATOR_ERRORS:
            raise
        except RaftkaError as e:
            # Bad input or a member-level refusal: answered on the stream, which stays open.
            return gpb.ConsumerGroupHeartbeatResponse(
                error_code=e.code,
                error_message=e.message,
                member_id=request.member_id,
                member_epoch=request.member_epoch,
            )
        if response.error_code == ErrorCode.NONE and response.member_id:
            if response.member_epoch < 0:
                self._unsubscribe()
            elif self._member != (request.group_id, response.member_id):
                self._unsubscribe()
                self._member = (request.group_id, response.member_id)
                self._queue = self._coordinator.subscribe(*self._member)
                self._listen()
        return response

    def _listen(self) -> None:
        if self._queue is not None and self._next_push is None:
            self._next_push = asyncio.ensure_future(self._queue.get())

    def _unsubscribe(self) -> None:
        if self._member is not None and self._queue is not None:
            self._coordinator.unsubscribe(*self._member, self._queue)
        self._member, self._queue = None, None
        if self._next_push is not None:
            self._next_push.cancel()
            self._next_push = None

    def close(self) -> None:
        self._unsubscribe()
        if self._next_request is not None:
            self._next_request.cancel()
