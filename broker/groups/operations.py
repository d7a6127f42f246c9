"""What every transport does with the group coordinator: the checks, authorization and routing
of the gRPC GroupService and the Kafka listener's group APIs, written once.

Every request is checked (group ids 1..249 bytes of UTF-8, at most 10,000 items) and routed to
the :class:`~raftka.broker.groups.runtime.GroupCoordinator`, which runs it on the shard of the
group's ``__consumer_offsets`` partition. Requests and answers are the protobuf messages the
shard takes (a transport translates its own). Coordinator errors (NOT_COORDINATOR,
COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE) are raised for a single-group call;
calls over many groups report them per group. Bad input is refused with a per-item error
where the answer has one (else raised), and changes nothing. Authorization: READ on a group to
be a member or commit, DESCRIBE to look, DELETE to delete; READ / DESCRIBE on the topics of
offsets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from raftka.broker.coordinator.runtime import ShardCall
from raftka.broker.groups.api import GroupShard, Outcome, TopicsView
from raftka.broker.groups.runtime import GroupCoordinator
from raftka.broker.groups.validation import check_group_id
from raftka.common.errors import InvalidProducerEpochError, RaftkaError
from raftka.common.group_errors import InvalidGroupIdError
from raftka.common.limits import require_items
from raftka.common.security.guard import AccessGuard
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

R = TypeVar("R")
CommitRequest = TypeVar("CommitRequest", gpb.OffsetCommitRequest, gpb.TxnOffsetCommitRequest)


class OffsetsTopicView(Protocol):
    """What the group operations read of ``__consumer_offsets`` (offsets_topic.OffsetsTopic)."""

    def ensure(self) -> int | None: ...

    def leader_of(self, partition: int) -> int: ...

    def client_endpoint(self, broker_id: int) -> tuple[str, int] | None: ...

    def topics(self) -> TopicsView: ...


class GroupOperations:
    def __init__(
        self, *, coordinator: GroupCoordinator, offsets_topic: OffsetsTopicView, guard: AccessGuard
    ) -> None:
        self._guard = guard
        self._coordinator = coordinator
        self._topic = offsets_topic

    # ---- membership ----

    async def heartbeat(
        self,
        request: gpb.ConsumerGroupHeartbeatRequest,
        client: Callable[[], tuple[str, str]],
    ) -> gpb.ConsumerGroupHeartbeatResponse:
        """One KIP-848 heartbeat: checked, then run on the group's shard. ``client()``: the
        caller's client id and host, asked once the request passed its checks."""
        check_group_id(request.group_id)
        self._guard.require(OP_READ, RESOURCE_GROUP, request.group_id)
        require_items(
            len(request.subscribed_topic_names), "subscribed_topic_names", empty_means_all=True
        )
        owned = sum(len(t.partitions) for t in request.owned_partitions)
        require_items(owned, "owned_partitions[].partitions", empty_means_all=True)
        client_id, client_host = client()
        topics = self._topic.topics()
        return await self._coordinator.write(
            request.group_id,
            lambda shard, now: shard.heartbeat(
                request, now_ms=now, topics=topics, client_id=client_id, client_host=client_host
            ),
        )

    async def classic_call(self, group_id: str, call: ShardCall[GroupShard, R]) -> R:
        """A call of Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat,
        LeaveGroup: the shard's ``classic_*``), with a heartbeat's checks first."""
        check_group_id(group_id)
        self._guard.require(OP_READ, RESOURCE_GROUP, group_id)
        return await self._coordinator.write(group_id, call)

    def topics(self) -> TopicsView:
        return self._topic.topics()

    # ---- offsets ----

    async def commit_offsets(self, request: gpb.OffsetCommitRequest) -> gpb.OffsetCommitResponse:
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

    async def txn_commit_offsets(
        self, request: gpb.TxnOffsetCommitRequest
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

    async def fetch_offsets(self, request: gpb.OffsetFetchRequest) -> gpb.OffsetFetchResponse:
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

    async def list_groups(self, request: gpb.ListGroupsRequest) -> gpb.ListGroupsResponse:
        require_items(len(request.states_filter), "states_filter", empty_means_all=True)
        groups = await self._coordinator.read_all(lambda shard: shard.list_groups(request))
        allowed = self._guard.allowed_quietly
        return gpb.ListGroupsResponse(
            groups=[g for g in groups if allowed(OP_DESCRIBE, RESOURCE_GROUP, g.group_id)]
        )

    async def describe_groups(
        self, request: gpb.DescribeGroupsRequest
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

    async def delete_groups(self, request: gpb.DeleteGroupsRequest) -> gpb.DeleteGroupsResponse:
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

    async def delete_offsets(self, request: gpb.OffsetDeleteRequest) -> gpb.OffsetDeleteResponse:
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
