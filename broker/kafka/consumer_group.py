"""ConsumerGroupHeartbeat (v0-v1, KIP-848) onto the group coordinator's heartbeat, the one the
gRPC ConsumerGroupHeartbeat serves, through the same
:class:`~raftka.broker.groups.operations.GroupOperations`.

Kafka names topics in the heartbeat by id, Raftka's coordinator by name: owned partitions are
translated through the metadata image (a topic id the image does not know is left out, as a
deleted topic), and so is the assignment in the answer. Kafka's "null: unchanged" fields map
onto Raftka's optional / ``*_set`` fields. Every refusal, coordinator errors included, is the
answer's error code (the client finds the coordinator again on NOT_COORDINATOR)."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.group_admin import kafka_state
from raftka.broker.kafka.group_ops import group_operations
from raftka.broker.kafka.schema import (
    NO_THROTTLE,
    UNKNOWN_AUTHORIZED_OPERATIONS,
    build,
    error_code,
    error_of,
    millis,
    nested,
    raftka_topic_id,
    response_type,
    topic_uuid,
)
from raftka.common.errors import RaftkaError
from raftka.common.metadata.image import MetadataImage
from raftka.v1 import groups_pb2 as gpb

CONSUMER_GROUP_HEARTBEAT_KEY = 68
CONSUMER_GROUP_DESCRIBE_KEY = 69
CONSUMER_MEMBER_TYPE = 1
"""ConsumerGroupDescribe v1's member type of a KIP-848 member."""
CLASSIC_MEMBER_TYPE = 0
"""... and of a member of the classic protocol (JoinGroup) in the same group."""


def peer_host(peer: str) -> str:
    """The host of a connection's ``host:port`` peer."""
    return peer.rpartition(":")[0].strip("[]") or peer


def heartbeat_request(request: Any, image: MetadataImage) -> gpb.ConsumerGroupHeartbeatRequest:
    """Kafka's heartbeat as the coordinator's, topics by name."""
    asked = gpb.ConsumerGroupHeartbeatRequest(
        group_id=request.group_id,
        member_id=request.member_id or "",
        member_epoch=int(request.member_epoch),
    )
    if request.instance_id is not None:
        asked.instance_id = request.instance_id
    if request.rack_id is not None:
        asked.rack_id = request.rack_id
    rebalance_timeout_ms = millis(request.rebalance_timeout)
    if rebalance_timeout_ms >= 0:
        asked.rebalance_timeout_ms = rebalance_timeout_ms
    if request.subscribed_topic_names is not None:
        asked.subscription_set = True
        asked.subscribed_topic_names.extend(request.subscribed_topic_names)
    regex = getattr(request, "subscribed_topic_regex", None)
    if regex is not None:
        asked.subscribed_topic_regex = regex
    if request.server_assignor is not None:
        asked.server_assignor = request.server_assignor
    if request.topic_partitions is not None:
        asked.owned_partitions_set = True
        for owned in request.topic_partitions:
            topic = (
                None
                if owned.topic_id is None
                else image.topic_by_id(raftka_topic_id(owned.topic_id))
            )
            if topic is not None:
                asked.owned_partitions.add(topic=topic.name, partitions=list(owned.partitions))
    return asked


class ConsumerGroupHeartbeatHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(CONSUMER_GROUP_HEARTBEAT_KEY, context.api_version)
        image = self._backend.image()
        try:
            asked = heartbeat_request(request, image)
            answer = await group_operations(self._backend).heartbeat(
                asked, lambda: (context.client_id, peer_host(context.peer))
            )
        except RaftkaError as e:
            return build(
                answer_type,
                throttle_time=NO_THROTTLE,
                error_code=error_of(e),
                error_message=e.message,
                member_id=request.member_id or None,
                member_epoch=request.member_epoch,
                heartbeat_interval=_ms(0),
                assignment=None,
            )
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=error_code(answer.error_code),
            error_message=answer.error_message or None,
            member_id=answer.member_id or None,
            member_epoch=answer.member_epoch,
            heartbeat_interval=_ms(answer.heartbeat_interval_ms),
            assignment=self._assignment(answer_type, answer, image)
            if answer.has_assignment
            else None,
        )

    @staticmethod
    def _assignment(
        answer_type: type[Any], answer: gpb.ConsumerGroupHeartbeatResponse, image: MetadataImage
    ) -> Any:
        owned_type = nested(answer_type, "TopicPartitions")
        owned = []
        for tp in answer.assignment.topic_partitions:
            topic = image.topic(tp.topic)
            if topic is not None:
                owned.append(
                    build(
                        owned_type,
                        topic_id=topic_uuid(topic.topic_id),
                        partitions=tuple(tp.partitions),
                    )
                )
        return build(nested(answer_type, "Assignment"), topic_partitions=tuple(owned))


def _ms(value: int) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=value)


class ConsumerGroupDescribeHandler:
    """ConsumerGroupDescribe (v0-v1): KIP-848 groups with their epochs, assignor and members'
    current and target assignments (topics by id and name). A group with offsets only is not
    a consumer group: GROUP_ID_NOT_FOUND, as from Kafka (admin clients then use
    DescribeGroups)."""

    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(CONSUMER_GROUP_DESCRIBE_KEY, context.api_version)
        try:
            described = list(
                (
                    await group_operations(self._backend).describe_groups(
                        gpb.DescribeGroupsRequest(group_ids=list(request.group_ids))
                    )
                ).groups
            )
        except RaftkaError as e:
            described = [
                gpb.DescribedGroup(group_id=g, error_code=e.code, error_message=e.message)
                for g in request.group_ids
            ]
        image = self._backend.image()
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            groups=tuple(self._group(answer_type, g, image) for g in described),
        )

    def _group(self, answer_type: type[Any], g: gpb.DescribedGroup, image: MetadataImage) -> Any:
        group_type = nested(answer_type, "DescribedGroup")
        code, message = error_code(g.error_code), g.error_message or None
        if code == ErrorCode.none and g.group_type != "consumer":
            code = ErrorCode.group_id_not_found
            message = f"group {g.group_id!r} is not a consumer group (it has offsets only)"
        if code != ErrorCode.none:
            return build(
                group_type,
                error_code=code,
                error_message=message,
                group_id=g.group_id,
                group_state="Dead",
                group_epoch=-1,
                assignment_epoch=-1,
                assignor_name="",
                members=(),
                authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
            )
        member_type = nested(answer_type, "Member")
        members = tuple(
            build(
                member_type,
                member_id=m.member_id,
                instance_id=m.instance_id or None,
                rack_id=m.rack_id or None,
                member_epoch=m.member_epoch,
                client_id=m.client_id,
                client_host=m.client_host,
                subscribed_topic_names=tuple(m.subscribed_topic_names),
                subscribed_topic_regex=m.subscribed_topic_regex or None,
                assignment=_described_assignment(answer_type, m.assignment, image),
                target_assignment=_described_assignment(answer_type, m.target_assignment, image),
                member_type=CLASSIC_MEMBER_TYPE if m.classic else CONSUMER_MEMBER_TYPE,
            )
            for m in g.members
        )
        return build(
            group_type,
            error_code=ErrorCode.none,
            error_message=None,
            group_id=g.group_id,
            group_state=kafka_state(g.state),
            group_epoch=g.group_epoch,
            assignment_epoch=g.assignment_epoch,
            assignor_name=g.assignor,
            members=members,
            authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
        )


def _described_assignment(
    answer_type: type[Any], assignment: gpb.Assignment, image: MetadataImage
) -> Any:
    owned_type = nested(answer_type, "TopicPartitions")
    owned = []
    for tp in assignment.topic_partitions:
        topic = image.topic(tp.topic)
        owned.append(
            build(
                owned_type,
                topic_id=topic_uuid("" if topic is None else topic.topic_id),
                topic_name=tp.topic,
                partitions=tuple(tp.partitions),
            )
        )
    return build(nested(answer_type, "Assignment"), topic_partitions=tuple(owned))
