"""JoinGroup (v0-v9), SyncGroup (v0-v5), Heartbeat (v0-v4) and LeaveGroup (v0-v5): Kafka's
classic group protocol, mapped onto the consumer group coordinator.

The coordinator runs classic members as members of a consumer group (KIP-848's upgrade path;
:mod:`raftka.broker.groups.classic`): the group's server-side assignor computes every
assignment, so JoinGroup answers each member as a follower with no member list (no client-side
assignor runs) and SyncGroup hands back the member's assignment, whatever the leader sent.
These handlers only translate: the subscription blob in, the assignment blob out, the shard's
``classic_*`` calls through ``GroupOperations.classic_call`` (a heartbeat's checks: the group
id, READ on the group), and the coordinator's errors (NOT_COORDINATOR,
COORDINATOR_LOAD_IN_PROGRESS, ...) as Kafka's codes."""

from __future__ import annotations

from typing import Any, TypeVar

from kio.schema.errors import ErrorCode

from raftka.broker.coordinator.runtime import ShardCall
from raftka.broker.groups.api import GroupShard, TopicsView
from raftka.broker.groups.classic import (
    INCONSISTENT_GROUP_PROTOCOL,
    PROTOCOL_TYPE,
    ClassicJoin,
    ClassicLeaver,
    ClassicRefused,
    ClassicSync,
    JoinAnswer,
    LeaveAnswer,
    SyncAnswer,
)
from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.consumer_protocol import (
    SubscriptionError,
    decode_subscription,
    encode_assignment,
)
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.group_ops import group_operations
from raftka.broker.kafka.schema import NO_THROTTLE, build, error_code, millis, nested, response_type
from raftka.common.errors import RaftkaError

JOIN_GROUP_KEY = 11
HEARTBEAT_KEY = 12
LEAVE_GROUP_KEY = 13
SYNC_GROUP_KEY = 14
MEMBER_ID_REQUIRED_VERSION = 4
"""From this JoinGroup version a dynamic member first gets its id with MEMBER_ID_REQUIRED."""
LEAVE_MEMBERS_VERSION = 3
"""From this LeaveGroup version a request names several members (``members``)."""

R = TypeVar("R")


class _GroupCalls:
    """The four handlers' way to the shard: the group operations' checks, coordinator errors
    and refusals as Kafka's codes (ClassicRefused)."""

    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    def _topics(self) -> TopicsView:
        try:
            return group_operations(self._backend).topics()
        except RaftkaError:
            return {}

    async def _write(self, group_id: str, call: ShardCall[GroupShard, R]) -> R:
        try:
            return await group_operations(self._backend).classic_call(group_id, call)
        except RaftkaError as e:
            raise ClassicRefused(int(e.code), e.message) from None


class JoinGroupHandler(_GroupCalls):
    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(JOIN_GROUP_KEY, context.api_version)
        try:
            join = _join_of(request, context.api_version)
            topics = self._topics()
            host = context.peer.rpartition(":")[0] or context.peer
            answer: JoinAnswer = await self._write(
                request.group_id,
                lambda shard, now: shard.classic_join(
                    join, now_ms=now, topics=topics, client_id=context.client_id, client_host=host
                ),
            )
        except ClassicRefused as e:
            answer = JoinAnswer(e.code, e.message, request.member_id)
        ok = answer.error_code == 0
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=error_code(answer.error_code),
            generation_id=answer.generation if ok else -1,
            protocol_type=PROTOCOL_TYPE if ok else None,
            protocol_name=answer.protocol_name
            if ok
            else (None if context.api_version >= 7 else ""),
            leader="",  # every member is a follower: the coordinator assigns
            skip_assignment=False,
            member_id=answer.member_id,
            members=(),
        )


def _join_of(request: Any, version: int) -> ClassicJoin:
    protocols = tuple(p.name for p in request.protocols)
    subscription = None
    if request.protocol_type == PROTOCOL_TYPE and request.protocols:
        try:
            subscription = decode_subscription(request.protocols[0].metadata)
        except SubscriptionError as e:
            raise ClassicRefused(
                INCONSISTENT_GROUP_PROTOCOL,
                f"the subscription of protocol {protocols[0]!r} is not a consumer protocol "
                f"subscription: {e}",
            ) from None
    session_ms = millis(request.session_timeout)
    rebalance = getattr(request, "rebalance_timeout", None)
    return ClassicJoin(
        group_id=request.group_id,
        member_id=request.member_id,
        instance_id=getattr(request, "group_instance_id", None),
        protocol_type=request.protocol_type,
        protocols=protocols,
        topics=subscription.topics if subscription else (),
        owned=subscription.owned if subscription else None,
        rack_id=subscription.rack_id if subscription else None,
        session_timeout_ms=session_ms,
        # v0 has no rebalance timeout: the session timeout stands in for it (as in Kafka).
        rebalance_timeout_ms=millis(rebalance) if rebalance is not None else session_ms,
        member_id_required=version >= MEMBER_ID_REQUIRED_VERSION,
    )


class SyncGroupHandler(_GroupCalls):
    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(SYNC_GROUP_KEY, context.api_version)
        sync = ClassicSync(
            group_id=request.group_id,
            member_id=request.member_id,
            generation=int(request.generation_id),
            protocol_type=getattr(request, "protocol_type", None),
            protocol_name=getattr(request, "protocol_name", None),
        )
        try:
            answer: SyncAnswer = await self._write(
                request.group_id,
                lambda shard, now: shard.classic_sync(sync, now_ms=now),
            )
        except ClassicRefused as e:
            answer = SyncAnswer(e.code, e.message, {})
        ok = answer.error_code == 0
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=error_code(answer.error_code),
            protocol_type=PROTOCOL_TYPE if ok else None,
            protocol_name=answer.protocol_name if ok else None,
            assignment=encode_assignment(answer.assignment) if ok else b"",
        )


class HeartbeatHandler(_GroupCalls):
    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(HEARTBEAT_KEY, context.api_version)
        group_id, member_id = request.group_id, request.member_id
        generation = int(request.generation_id)
        try:
            code, _message = await self._write(
                group_id,
                lambda shard, now: shard.classic_heartbeat(
                    group_id, member_id, generation, now_ms=now
                ),
            )
        except ClassicRefused as e:
            code = e.code
        return build(answer_type, throttle_time=NO_THROTTLE, error_code=error_code(code))


class LeaveGroupHandler(_GroupCalls):
    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(LEAVE_GROUP_KEY, context.api_version)
        many = context.api_version >= LEAVE_MEMBERS_VERSION
        leavers = (
            tuple(ClassicLeaver(m.member_id, m.group_instance_id) for m in request.members)
            if many
            else (ClassicLeaver(request.member_id, None),)
        )
        group_id = request.group_id
        try:
            topics = self._topics()
            answers: list[LeaveAnswer] = await self._write(
                group_id,
                lambda shard, now: shard.classic_leave(
                    group_id, leavers, now_ms=now, topics=topics
                ),
            )
        except ClassicRefused as e:
            return build(
                answer_type,
                throttle_time=NO_THROTTLE,
                error_code=error_code(e.code),
                members=(),
            )
        if not many:
            return build(
                answer_type, throttle_time=NO_THROTTLE, error_code=error_code(answers[0].error_code)
            )
        entry = nested(answer_type, "MemberResponse")
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.none,
            members=tuple(
                entry(
                    member_id=a.member_id,
                    group_instance_id=a.instance_id,
                    error_code=error_code(a.error_code),
                )
                for a in answers
            ),
        )
