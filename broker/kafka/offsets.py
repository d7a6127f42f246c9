"""OffsetCommit (v2-v9) and OffsetFetch (v1-v9) onto the group coordinator, through the same
:class:`~raftka.broker.groups.operations.GroupOperations` as the gRPC GroupService.

A commit with generation -1 and no member id is a "simple" commit (a consumer that assigns its
partitions), accepted while the group has no members; otherwise the member id and its epoch
(``generation_id_or_member_epoch``) are checked. Clients before v9 get ILLEGAL_GENERATION where
a KIP-848 client gets STALE_MEMBER_EPOCH or GROUP_ID_NOT_FOUND, as from Kafka. Coordinator
errors (NOT_COORDINATOR, ...) land on every partition (OffsetCommit) or on the group
(OffsetFetch), so the client finds the coordinator again. OffsetFetch v8+ asks for several
groups at once; ``require_stable`` answers UNSTABLE_OFFSET_COMMIT while a transactional commit
of a requested partition is undecided."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.group_ops import group_operations, member_error
from raftka.broker.kafka.schema import NO_THROTTLE, build, nested, response_type
from raftka.common.errors import RaftkaError
from raftka.v1 import groups_pb2 as gpb

OFFSET_COMMIT_KEY = 8
OFFSET_FETCH_KEY = 9
MEMBER_EPOCH_VERSION = 9
"""From this version the coordinator's KIP-848 codes go to the client as they are."""
BATCHED_FETCH_VERSION = 8
"""From this version OffsetFetch carries a list of groups."""
NO_OFFSET = -1


class OffsetCommitHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        version = context.api_version
        asked = gpb.OffsetCommitRequest(
            group_id=request.group_id,
            member_id=request.member_id or "",
            member_epoch=int(request.generation_id_or_member_epoch),
            topics=[
                gpb.OffsetCommitTopic(
                    name=t.name,
                    partitions=[
                        gpb.OffsetCommitPartition(
                            partition=p.partition_index,
                            offset=p.committed_offset,
                            leader_epoch=getattr(p, "committed_leader_epoch", -1),
                            metadata=p.committed_metadata or "",
                        )
                        for p in t.partitions
                    ],
                )
                for t in request.topics
            ],
        )
        codes: dict[tuple[str, int], int] = {}
        if asked.topics and any(t.partitions for t in asked.topics):
            try:
                answer = await group_operations(self._backend).commit_offsets(asked)
                for t in answer.topics:
                    for p in t.partitions:
                        codes[(t.name, p.partition)] = p.error_code
            except RaftkaError as e:
                codes = {(t.name, p.partition): e.code for t in asked.topics for p in t.partitions}
        answer_type = response_type(OFFSET_COMMIT_KEY, version)
        topic_type = nested(answer_type, "OffsetCommitResponseTopic")
        partition_type = nested(answer_type, "OffsetCommitResponsePartition")
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            topics=tuple(
                build(
                    topic_type,
                    name=t.name,
                    partitions=tuple(
                        build(
                            partition_type,
                            partition_index=p.partition_index,
                            error_code=member_error(
                                codes.get(
                                    (t.name, p.partition_index), ErrorCode.unknown_server_error
                                ),
                                version,
                                MEMBER_EPOCH_VERSION,
                            ),
                        )
                        for p in t.partitions
                    ),
                )
                for t in request.topics
            ),
        )


class OffsetFetchHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        version = context.api_version
        answer_type = response_type(OFFSET_FETCH_KEY, version)
        stable = bool(getattr(request, "require_stable", False))
        if version < BATCHED_FETCH_VERSION:
            topics = request.topics
            fetched = await self._fetch(request.group_id, topics, "", -1, stable)
            shape = _GroupShape(
                answer_type, version, "OffsetFetchResponseTopic", "OffsetFetchResponsePartition"
            )
            error, answered = shape.answer(fetched, topics)
            return build(answer_type, throttle_time=NO_THROTTLE, error_code=error, topics=answered)
        shape = _GroupShape(
            answer_type, version, "OffsetFetchResponseTopics", "OffsetFetchResponsePartitions"
        )
        group_type = nested(answer_type, "OffsetFetchResponseGroup")
        jobs = [
            self._fetch(
                g.group_id,
                g.topics,
                getattr(g, "member_id", None) or "",
                int(getattr(g, "member_epoch", -1)),
                stable,
            )
            for g in request.groups
        ]
        groups = []
        for g, fetched in zip(request.groups, await asyncio.gather(*jobs), strict=True):
            error, answered = shape.answer(fetched, g.topics)
            groups.append(build(group_type, group_id=g.group_id, error_code=error, topics=answered))
        return build(answer_type, throttle_time=NO_THROTTLE, groups=tuple(groups))

    async def _fetch(
        self,
        group_id: str,
        topics: Sequence[Any] | None,
        member_id: str,
        member_epoch: int,
        require_stable: bool,
    ) -> gpb.OffsetFetchResponse:
        """The group's offsets for ``topics`` (None: every topic it has offsets for; empty:
        none), or its group-level error."""
        if topics is not None and not any(t.partition_indexes for t in topics):
            return gpb.OffsetFetchResponse()
        asked = gpb.OffsetFetchRequest(
            group_id=group_id,
            member_id=member_id,
            member_epoch=member_epoch,
            require_stable=require_stable,
            topics=[
                gpb.GroupTopicPartitions(topic=t.name, partitions=list(t.partition_indexes))
                for t in topics or ()
            ],
        )
        try:
            return await group_operations(self._backend).fetch_offsets(asked)
        except RaftkaError as e:
            return gpb.OffsetFetchResponse(error_code=e.code, error_message=e.message)


class _GroupShape:
    """One group's OffsetFetch answer in the types of one version."""

    def __init__(self, answer_type: type[Any], version: int, topic: str, partition: str) -> None:
        self._version = version
        self._topic = nested(answer_type, topic)
        self._partition = nested(answer_type, partition)

    def answer(
        self, fetched: gpb.OffsetFetchResponse, asked: Sequence[Any] | None
    ) -> tuple[ErrorCode, tuple[Any, ...]]:
        """The group's error and the committed offsets of ``asked`` (every fetched topic when
        None). A group error goes on every asked partition where the client reads it there:
        v1 (no group error) and UNSTABLE_OFFSET_COMMIT (a retriable per-partition error in
        Kafka); otherwise no partition is answered. A requested partition missing from the
        answer (a topic the caller may not describe) is TOPIC_AUTHORIZATION_FAILED."""
        error = member_error(fetched.error_code, self._version, MEMBER_EPOCH_VERSION)
        if error != ErrorCode.none:
            on_partitions = asked is not None and (
                self._version < 2 or error == ErrorCode.unstable_offset_commit
            )
            if not on_partitions:
                return error, ()
        found = {(t.name, p.partition): p for t in fetched.topics for p in t.partitions}
        if asked is None:
            wanted = [(t.name, [p.partition for p in t.partitions]) for t in fetched.topics]
        else:
            wanted = [(t.name, list(t.partition_indexes)) for t in asked]
        topics = tuple(
            build(
                self._topic,
                name=name,
                partitions=tuple(self._one(found.get((name, p)), p, error) for p in partitions),
            )
            for name, partitions in wanted
        )
        return ErrorCode.none if self._version >= 2 else error, topics

    def _one(self, p: gpb.OffsetFetchPartition | None, index: int, error: ErrorCode) -> Any:
        if p is None or error != ErrorCode.none:
            return build(
                self._partition,
                partition_index=index,
                committed_offset=NO_OFFSET,
                committed_leader_epoch=-1,
                metadata="",
                error_code=error
                if error != ErrorCode.none
                else ErrorCode.topic_authorization_failed,
            )
        return build(
            self._partition,
            partition_index=index,
            committed_offset=p.offset,
            committed_leader_epoch=p.leader_epoch,
            metadata=p.metadata,
            error_code=ErrorCode.none,
        )
