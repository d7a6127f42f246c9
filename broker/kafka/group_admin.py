"""ListGroups (v0-v5), DescribeGroups (v0-v6), DeleteGroups (v0-v2) and OffsetDelete (v0) onto
the group administration, through the same
:class:`~raftka.broker.groups.operations.GroupOperations` as the gRPC GroupService.

Raftka's groups are KIP-848 consumer groups (Kafka's group type "consumer", protocol type
"consumer") or simple groups with offsets only (type "classic" with an empty protocol type,
as Kafka shows them). States take Kafka's names (Empty, Assigning, Reconciling, Stable, Dead);
ListGroups' state filter is case-insensitive, as in Kafka. DescribeGroups answers a consumer
group's members with their subscriptions and assignments encoded as Kafka's
ConsumerProtocolSubscription / ConsumerProtocolAssignment (v0), the assignor as protocol data;
a group that does not exist is Dead (GROUP_ID_NOT_FOUND from v6, as from Kafka)."""

from __future__ import annotations

import io
from typing import Any

from kio.schema.consumer_protocol_assignment.v0.data import (
    ConsumerProtocolAssignment,
    TopicPartition,
)
from kio.schema.consumer_protocol_subscription.v0.data import ConsumerProtocolSubscription
from kio.schema.errors import ErrorCode
from kio.schema.types import TopicName
from kio.serial import entity_writer
from kio.serial.writers import write_int16
from kio.static.primitive import i16, i32

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.group_ops import group_operations
from raftka.broker.kafka.schema import (
    NO_THROTTLE,
    UNKNOWN_AUTHORIZED_OPERATIONS,
    build,
    error_code,
    error_of,
    nested,
    response_type,
)
from raftka.common.errors import RaftkaError
from raftka.v1 import groups_pb2 as gpb

LIST_GROUPS_KEY = 16
DESCRIBE_GROUPS_KEY = 15
DELETE_GROUPS_KEY = 42
OFFSET_DELETE_KEY = 47
GROUP_NOT_FOUND_VERSION = 6
"""From this version DescribeGroups answers GROUP_ID_NOT_FOUND for a group that does not exist
(before: state Dead and no error)."""
CONSUMER_PROTOCOL_VERSION = 0

KAFKA_STATES = {
    "empty": "Empty",
    "assigning": "Assigning",
    "reconciling": "Reconciling",
    "stable": "Stable",
    "dead": "Dead",
}


def kafka_state(state: str) -> str:
    return KAFKA_STATES.get(state, state.capitalize() or "Unknown")


def kafka_type(group_type: str) -> tuple[str, str]:
    """(group type, protocol type) of a Raftka group type, as Kafka names them."""
    return ("consumer", "consumer") if group_type == "consumer" else ("classic", "")


def _encoded(entity: Any) -> bytes:
    buffer = io.BytesIO()
    write_int16(buffer, i16(CONSUMER_PROTOCOL_VERSION))
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


def member_assignment(assignment: gpb.Assignment) -> bytes:
    """``assignment`` as Kafka's ConsumerProtocolAssignment bytes (version 0)."""
    return _encoded(
        ConsumerProtocolAssignment(
            assigned_partitions=tuple(
                TopicPartition(
                    topic=TopicName(tp.topic), partitions=tuple(i32(p) for p in tp.partitions)
                )
                for tp in assignment.topic_partitions
            )
        )
    )


def member_subscription(member: gpb.DescribedMember) -> bytes:
    """The member's subscribed topic names as Kafka's ConsumerProtocolSubscription bytes."""
    return _encoded(ConsumerProtocolSubscription(topics=tuple(member.subscribed_topic_names)))


class ListGroupsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(LIST_GROUPS_KEY, context.api_version)
        listed_type = nested(answer_type, "ListedGroup")
        states = [s.lower() for s in getattr(request, "states_filter", ())]
        types = {t.lower() for t in getattr(request, "types_filter", ())}
        try:
            listed = await group_operations(self._backend).list_groups(
                gpb.ListGroupsRequest(states_filter=states)
            )
        except RaftkaError as e:
            return build(answer_type, throttle_time=NO_THROTTLE, error_code=error_of(e), groups=())
        groups = []
        for g in listed.groups:
            group_type, protocol_type = kafka_type(g.group_type)
            if types and group_type not in types:
                continue
            groups.append(
                build(
                    listed_type,
                    group_id=g.group_id,
                    protocol_type=protocol_type,
                    group_state=kafka_state(g.state),
                    group_type=group_type,
                )
            )
        return build(
            answer_type, throttle_time=NO_THROTTLE, error_code=ErrorCode.none, groups=tuple(groups)
        )


class DescribeGroupsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        version = context.api_version
        answer_type = response_type(DESCRIBE_GROUPS_KEY, version)
        try:
            described = list(
                (
                    await group_operations(self._backend).describe_groups(
                        gpb.DescribeGroupsRequest(group_ids=list(request.groups))
                    )
                ).groups
            )
        except RaftkaError as e:
            described = [
                gpb.DescribedGroup(group_id=g, error_code=e.code, error_message=e.message)
                for g in request.groups
            ]
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            groups=tuple(self._group(answer_type, version, g) for g in described),
        )

    @staticmethod
    def _group(answer_type: type[Any], version: int, g: gpb.DescribedGroup) -> Any:
        group_type = nested(answer_type, "DescribedGroup")
        member_type = nested(answer_type, "DescribedGroupMember")
        code = error_code(g.error_code)
        common = {
            "group_id": g.group_id,
            "authorized_operations": UNKNOWN_AUTHORIZED_OPERATIONS,
        }
        if code != ErrorCode.none:
            if code == ErrorCode.group_id_not_found and version < GROUP_NOT_FOUND_VERSION:
                code, message = ErrorCode.none, None
            else:
                message = g.error_message or None
            return build(
                group_type,
                error_code=code,
                error_message=message,
                group_state="Dead",
                protocol_type="",
                protocol_data="",
                members=(),
                **common,
            )
        _, protocol_type = kafka_type(g.group_type)
        members = tuple(
            build(
                member_type,
                member_id=m.member_id,
                group_instance_id=m.instance_id or None,
                client_id=m.client_id,
                client_host=m.client_host,
                member_metadata=member_subscription(m),
                member_assignment=member_assignment(m.assignment),
            )
            for m in g.members
        )
        return build(
            group_type,
            error_code=ErrorCode.none,
            error_message=None,
            group_state=kafka_state(g.state),
            protocol_type=protocol_type,
            protocol_data=g.assignor,
            members=members,
            **common,
        )


class DeleteGroupsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(DELETE_GROUPS_KEY, context.api_version)
        result_type = nested(answer_type, "DeletableGroupResult")
        names = list(request.groups_names)
        try:
            deleted = await group_operations(self._backend).delete_groups(
                gpb.DeleteGroupsRequest(group_ids=names)
            )
            codes = {r.group_id: error_code(r.error_code) for r in deleted.results}
        except RaftkaError as e:
            codes = dict.fromkeys(names, error_of(e))
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            results=tuple(
                build(
                    result_type, group_id=g, error_code=codes.get(g, ErrorCode.unknown_server_error)
                )
                for g in dict.fromkeys(names)
            ),
        )


class OffsetDeleteHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(OFFSET_DELETE_KEY, context.api_version)
        topic_type = nested(answer_type, "OffsetDeleteResponseTopic")
        partition_type = nested(answer_type, "OffsetDeleteResponsePartition")
        asked = gpb.OffsetDeleteRequest(
            group_id=request.group_id,
            topics=[
                gpb.GroupTopicPartitions(
                    topic=t.name, partitions=[p.partition_index for p in t.partitions]
                )
                for t in request.topics
            ],
        )
        try:
            answer = await group_operations(self._backend).delete_offsets(asked)
        except RaftkaError as e:
            answer = gpb.OffsetDeleteResponse(error_code=e.code, error_message=e.message)
        group_error = error_code(answer.error_code)
        codes = {
            (t.name, p.partition): error_code(p.error_code)
            for t in answer.topics
            for p in t.partitions
        }
        topics: tuple[Any, ...] = ()
        if group_error == ErrorCode.none:
            topics = tuple(
                build(
                    topic_type,
                    name=t.name,
                    partitions=tuple(
                        build(
                            partition_type,
                            partition_index=p.partition_index,
                            error_code=codes.get(
                                (t.name, p.partition_index), ErrorCode.unknown_server_error
                            ),
                        )
                        for p in t.partitions
                    ),
                )
                for t in request.topics
            )
        return build(answer_type, throttle_time=NO_THROTTLE, error_code=group_error, topics=topics)
