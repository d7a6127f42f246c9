"""The gRPC GroupService: FindCoordinator, member heartbeats (unary and stream), committed
offsets (plain and transactional) and group administration.

Transport only: every request is checked (group ids 1..249 bytes of UTF-8, at most 10,000
items) and routed to the :class:`~raftka.broker.groups.runtime.GroupCoordinator`, which runs it
on the shard of the group's ``__consumer_offsets`` partition. Coordinator errors
(NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE) fail a single-group
call as a whole; calls over many groups report them per group. Bad input is refused with a
per-item error where the answer has one, and changes nothing.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeAlias, TypeVar

import grpc
import structlog

from raftka.broker.clients import ClientLog
from raftka.broker.groups.api import GroupShard, Outcome, TopicsView
from raftka.broker.groups.coordinator_lookup import Located, coordinator_kind, locate
from raftka.broker.groups.placement import OFFSETS_TOPIC
from raftka.broker.groups.runtime import GroupCoordinator, Push
from raftka.broker.groups.validation import check_group_id
from raftka.common.errors import (
    CoordinatorLoadInProgressError,
    InvalidProducerEpochError,
    RaftkaError,
)
from raftka.common.group_errors import (
    CoordinatorNotAvailableError,
    InvalidGroupIdError,
    NotCoordinatorError,
)
from raftka.common.limits import require_items
from raftka.common.rpc.status import ERROR_KEY, rpc_errors, status_for, trailing_metadata_for
from raftka.common.security.guard import OPEN_GUARD, AccessGuard
from raftka.common.security.model import (
    OP_DELETE,
    OP_DESCRIBE,
    OP_READ,
    OP_WRITE,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
)
from raftka.common.security_errors import GroupAuthorizationFailedError
from raftka.common.txn_errors import ProducerFencedError
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceServicer

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

log = structlog.get_logger(__name__)

CommitRequest = TypeVar("CommitRequest", gpb.OffsetCommitRequest, gpb.TxnOffsetCommitRequest)

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


class OffsetsTopicView(Protocol):
    """What the servicer reads of ``__consumer_offsets`` (offsets_topic.OffsetsTopic)."""

    def ensure(self) -> int | None: ...

    def leader_of(self, partition: int) -> int: ...

    def client_endpoint(self, broker_id: int) -> tuple[str, int] | None: ...

    def topics(self) -> TopicsView: ...


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
        """One heartbeat, for both forms: checked, then run on the group's shard."""
        check_group_id(request.group_id)
        self._guard.require(OP_READ, RESOURCE_GROUP, request.group_id)
        require_items(
            len(request.subscribed_topic_names), "subscribed_topic_names", empty_means_all=True
        )
        owned = sum(len(t.partitions) for t in request.owned_partitions)
        require_items(owned, "owned_partitions[].partitions", empty_means_all=True)
        client_id = self._clients.saw(context, "ConsumerGroupHeartbeat")
        host = peer_host(str(context.peer()))
        topics = self._topic.topics()
        return await self._coordinator.write(
            request.group_id,
            lambda shard, now: shard.heartbeat(
                request, now_ms=now, topics=topics, client_id=client_id, client_host=host
            ),
        )

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
        require_items(sum(len(t.partitions) for t in request.topics), "topics[].partitions")
        try:
            check_group_id(request.group_id)
            self._guard.require(OP_READ, RESOURCE_GROUP, request.group_id)
        except (InvalidGroupIdError, GroupAuthorizationFailedError) as e:
            return _refused_everywhere(request.topics, e)
        allowed, refused = self._commit_topics(request)
        if not allowed.topics:
            return refused
        topics = self._topic.topics()
        response: gpb.OffsetCommitResponse = await self._coordinator.write(
            request.group_id,
            lambda shard, now: shard.commit_offsets(allowed, now_ms=now, topics=topics),
        )
        response.topics.extend(refused.topics)
        return response

    @rpc_errors
    async def TxnOffsetCommit(
        self, request: gpb.TxnOffsetCommitRequest, context: Context
    ) -> gpb.OffsetCommitResponse:
        """Checked like OffsetCommit; the offsets are written in the producer's transaction
        and stay pending until its marker (the shard checks the producer fields)."""
        require_items(sum(len(t.partitions) for t in request.topics), "topics[].partitions")
        self._guard.require(OP_WRITE, RESOURCE_TRANSACTIONAL_ID, request.transactional_id)
        try:
            check_group_id(request.group_id)
            self._guard.require(OP_READ, RESOURCE_GROUP, request.group_id)
        except (InvalidGroupIdError, GroupAuthorizationFailedError) as e:
            return _refused_everywhere(request.topics, e)
        allowed, refused = self._commit_topics(request)
        if not allowed.topics:
            return refused
        topics = self._topic.topics()
        try:
            response: gpb.OffsetCommitResponse = await self._coordinator.write(
                request.group_id,
                lambda shard, now: shard.txn_commit_offsets(allowed, now_ms=now, topics=topics),
            )
            response.topics.extend(refused.topics)
            return response
        except InvalidProducerEpochError as e:
            # The partition knows a newer epoch of this producer id (a marker or a newer
            # producer's write): this producer was fenced.
            raise ProducerFencedError(
                f"producer {request.producer_id} epoch {request.producer_epoch} is fenced on "
                f"the group's partition ({e.message}): close this producer"
            ) from e

    def _commit_topics(
        self, request: CommitRequest
    ) -> tuple[CommitRequest, gpb.OffsetCommitResponse]:
        """``request`` without the topics the caller may not READ, and the answer for those
        (TOPIC_AUTHORIZATION_FAILED on each of their partitions)."""
        if not self._guard.enabled:
            return request, gpb.OffsetCommitResponse()
        allowed = type(request)()
        allowed.CopyFrom(request)
        del allowed.topics[:]
        refused = gpb.OffsetCommitResponse()
        for t in request.topics:
            error = self._guard.denial(OP_READ, RESOURCE_TOPIC, t.name)
            if error is None:
                allowed.topics.append(t)
            else:
                refused.topics.extend(_refused_everywhere([t], error).topics)
        return allowed, refused

    def _describable(self, topic: str) -> bool:
        return self._guard.allowed_quietly(OP_DESCRIBE, RESOURCE_TOPIC, topic)

    @rpc_errors
    async def OffsetFetch(
        self, request: gpb.OffsetFetchRequest, context: Context
    ) -> gpb.OffsetFetchResponse:
        require_items(
            sum(len(t.partitions) for t in request.topics),
            "topics[].partitions",
            empty_means_all=True,
        )
        try:
            check_group_id(request.group_id)
            self._guard.require(OP_DESCRIBE, RESOURCE_GROUP, request.group_id)
        except (InvalidGroupIdError, GroupAuthorizationFailedError) as e:
            return gpb.OffsetFetchResponse(error_code=e.code, error_message=e.message)
        response: gpb.OffsetFetchResponse = await self._coordinator.read(
            request.group_id, lambda shard: shard.fetch_offsets(request)
        )
        if self._guard.enabled:  # the offsets of topics the caller may not describe are left out
            kept = [t for t in response.topics if self._describable(t.name)]
            del response.topics[:]
            response.topics.extend(kept)
        return response

    # ---- administration ----

    @rpc_errors
    async def ListGroups(
        self, request: gpb.ListGroupsRequest, context: Context
    ) -> gpb.ListGroupsResponse:
        require_items(len(request.states_filter), "states_filter", empty_means_all=True)
        groups = await self._coordinator.read_all(lambda shard: shard.list_groups(request))
        allowed = self._guard.allowed_quietly
        return gpb.ListGroupsResponse(
            groups=[g for g in groups if allowed(OP_DESCRIBE, RESOURCE_GROUP, g.group_id)]
        )

    @rpc_errors
    async def DescribeGroups(
        self, request: gpb.DescribeGroupsRequest, context: Context
    ) -> gpb.DescribeGroupsResponse:
        require_items(len(request.group_ids), "group_ids")
        response = gpb.DescribeGroupsResponse()
        for group_id in request.group_ids:
            try:
                check_group_id(group_id)
                self._guard.require(OP_DESCRIBE, RESOURCE_GROUP, group_id)
                described = await self._coordinator.read(
                    group_id, functools.partial(_describe, group_id=group_id)
                )
            except RaftkaError as e:
                described = gpb.DescribedGroup(
                    group_id=group_id, error_code=e.code, error_message=e.message
                )
            response.groups.append(described)
        return response

    @rpc_errors
    async def DeleteGroups(
        self, request: gpb.DeleteGroupsRequest, context: Context
    ) -> gpb.DeleteGroupsResponse:
        require_items(len(request.group_ids), "group_ids")
        results: dict[str, gpb.GroupResult] = {}
        by_partition: dict[int, list[str]] = {}
        for group_id in dict.fromkeys(request.group_ids):
            try:
                check_group_id(group_id)
                self._guard.require(OP_DELETE, RESOURCE_GROUP, group_id)
                partition = self._coordinator.partition_of(group_id)
            except RaftkaError as e:
                results[group_id] = _group_result(group_id, e)
                continue
            by_partition.setdefault(partition, []).append(group_id)
        for ids in by_partition.values():
            try:
                done = await self._coordinator.write(
                    ids[0], functools.partial(_delete_groups, group_ids=ids)
                )
            except RaftkaError as e:
                done = [_group_result(g, e) for g in ids]
            results.update((r.group_id, r) for r in done)
        return gpb.DeleteGroupsResponse(
            results=[results.get(g) or _group_result(g, _MISSING_RESULT) for g in request.group_ids]
        )

    @rpc_errors
    async def OffsetDelete(
        self, request: gpb.OffsetDeleteRequest, context: Context
    ) -> gpb.OffsetDeleteResponse:
        require_items(sum(len(t.partitions) for t in request.topics), "topics[].partitions")
        try:
            check_group_id(request.group_id)
            self._guard.require(OP_DELETE, RESOURCE_GROUP, request.group_id)
        except (InvalidGroupIdError, GroupAuthorizationFailedError) as e:
            return gpb.OffsetDeleteResponse(error_code=e.code, error_message=e.message)
        refused: list[gpb.OffsetCommitTopicResult] = []
        allowed = request
        if self._guard.enabled:
            allowed = gpb.OffsetDeleteRequest(group_id=request.group_id)
            for t in request.topics:
                error = self._guard.denial(OP_READ, RESOURCE_TOPIC, t.topic)
                if error is None:
                    allowed.topics.append(t)
                else:
                    refused.append(_refused_topic(t.topic, t.partitions, error))
        response: gpb.OffsetDeleteResponse = await self._coordinator.write(
            request.group_id, lambda shard, _now: shard.delete_offsets(allowed)
        )
        response.topics.extend(refused)
        return response


def _coordinator(found: Located) -> gpb.Coordinator:
    answer = gpb.Coordinator(key=found.key, node_id=found.node_id, partition=found.partition)
    if found.error is not None:
        answer.error_code = found.error.code
        answer.error_message = found.error.message
    elif found.endpoint is not None:
        answer.host, answer.port = found.endpoint
    return answer


def _refused_everywhere(
    topics: Iterable[gpb.OffsetCommitTopic], error: RaftkaError
) -> gpb.OffsetCommitResponse:
    """A commit answer with ``error`` on every requested partition."""
    return gpb.OffsetCommitResponse(
        topics=[_refused_topic(t.name, [p.partition for p in t.partitions], error) for t in topics]
    )


def _refused_topic(
    name: str, partitions: Iterable[int], error: RaftkaError
) -> gpb.OffsetCommitTopicResult:
    return gpb.OffsetCommitTopicResult(
        name=name,
        partitions=[
            gpb.GroupPartitionResult(
                partition=p, error_code=error.code, error_message=error.message
            )
            for p in partitions
        ],
    )


def _describe(shard: GroupShard, *, group_id: str) -> gpb.DescribedGroup:
    return shard.describe_group(group_id)


def _delete_groups(
    shard: GroupShard, _now_ms: int, *, group_ids: list[str]
) -> Outcome[list[gpb.GroupResult]]:
    return shard.delete_groups(group_ids)


_MISSING_RESULT = RaftkaError("the coordinator gave no result for this group; retry")


def _group_result(group_id: str, error: RaftkaError) -> gpb.GroupResult:
    return gpb.GroupResult(group_id=group_id, error_code=error.code, error_message=error.message)


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
