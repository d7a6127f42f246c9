"""Metadata (v1-v12): brokers' Kafka listeners, topics and partitions from the broker's image.

Brokers are listed with the address of their Kafka listener (the KAFKA endpoint they
register); a broker without one is left out, so its partitions show a leader clients cannot
reach: give every broker ``kafka_listen``. ``controller_id`` is this broker: Kafka's clients
send admin requests (CreateTopics, ...) there, and it forwards them to the active controller.
Topics are never created by a Metadata request (allow_auto_topic_creation is not honoured).
With ACLs, a listing leaves out the topics the caller may not DESCRIBE, and a named one is
answered TOPIC_AUTHORIZATION_FAILED, as the gRPC Metadata does."""

from __future__ import annotations

import uuid
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.schema import (
    NO_THROTTLE,
    UNKNOWN_AUTHORIZED_OPERATIONS,
    build,
    error_of,
    nested,
    raftka_topic_id,
    response_type,
    topic_uuid,
)
from raftka.broker.request_checks import topic_refusals
from raftka.common.errors import RaftkaError
from raftka.common.metadata.model import KAFKA_LISTENER
from raftka.common.metadata.topic_names import INTERNAL_TOPICS
from raftka.common.security.model import OP_DESCRIBE, RESOURCE_TOPIC

METADATA_KEY = 3


class MetadataHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(METADATA_KEY, context.api_version)
        broker_type = nested(answer_type, "MetadataResponseBroker")
        image = self._backend.image()
        brokers = []
        for reg in image.unfenced_brokers():
            endpoint = reg.endpoint(KAFKA_LISTENER)
            if endpoint is not None:
                brokers.append(
                    build(
                        broker_type,
                        node_id=reg.broker_id,
                        host=endpoint.host,
                        port=endpoint.port,
                        rack=reg.rack or None,
                    )
                )
        # As the gRPC Metadata: a listing leaves out the topics the caller may not
        # describe; a named one is answered TOPIC_AUTHORIZATION_FAILED.
        guard = self._backend.guard
        unknown_ids: list[uuid.UUID] = []
        if request.topics is None:
            allowed = guard.allowed_quietly
            names = [n for n in image.topic_names() if allowed(OP_DESCRIBE, RESOURCE_TOPIC, n)]
            refused: dict[str, RaftkaError] = {}
        else:
            names = []
            for t in request.topics:
                if t.name is not None:
                    names.append(t.name)
                elif getattr(t, "topic_id", None) is not None and t.topic_id.int:
                    # Topics asked for by id (v10+), as KIP-848 consumers do for assignments.
                    found = image.topic_by_id(raftka_topic_id(t.topic_id))
                    # A topic the caller may not describe is as unknown as a missing one:
                    # its id tells nothing of its name.
                    if found is None or not guard.allowed(OP_DESCRIBE, RESOURCE_TOPIC, found.name):
                        unknown_ids.append(t.topic_id)
                    else:
                        names.append(found.name)
            names = list(dict.fromkeys(names))
            refused = topic_refusals(guard, OP_DESCRIBE, names)
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            brokers=tuple(brokers),
            cluster_id=self._backend.cluster_id,
            controller_id=self._backend.broker_id,
            topics=tuple(
                self._refused(answer_type, name, refused[name])
                if name in refused
                else self._topic(answer_type, name)
                for name in names
            )
            + tuple(self._unknown_id(answer_type, topic_id) for topic_id in unknown_ids),
            cluster_authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
        )

    def _unknown_id(self, answer_type: type[Any], topic_id: uuid.UUID) -> Any:
        return build(
            nested(answer_type, "MetadataResponseTopic"),
            error_code=ErrorCode.unknown_topic_id,
            name=None,
            topic_id=topic_id,
            is_internal=False,
            partitions=(),
            topic_authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
        )

    @staticmethod
    def _refused(answer_type: type[Any], name: str, error: RaftkaError) -> Any:
        return build(
            nested(answer_type, "MetadataResponseTopic"),
            error_code=error_of(error),
            name=name,
            topic_id=topic_uuid(""),
            is_internal=name in INTERNAL_TOPICS,
            partitions=(),
            topic_authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
        )

    def _topic(self, answer_type: type[Any], name: str) -> Any:
        topic_type = nested(answer_type, "MetadataResponseTopic")
        partition_type = nested(answer_type, "MetadataResponsePartition")
        image = self._backend.image()
        topic = image.topic(name)
        common = {
            "name": name,
            "is_internal": name in INTERNAL_TOPICS,
            "topic_authorized_operations": UNKNOWN_AUTHORIZED_OPERATIONS,
        }
        if topic is None:
            return build(
                topic_type,
                error_code=ErrorCode.unknown_topic_or_partition,
                topic_id=topic_uuid(""),
                partitions=(),
                **common,
            )
        live = {b for b, reg in image.brokers.items() if not reg.fenced}
        partitions = []
        for index in sorted(topic.partitions):
            state = topic.partitions[index]
            partitions.append(
                build(
                    partition_type,
                    error_code=ErrorCode.none
                    if state.leader >= 0
                    else ErrorCode.leader_not_available,
                    partition_index=index,
                    leader_id=state.leader,
                    leader_epoch=state.leader_epoch,
                    replica_nodes=tuple(state.replicas),
                    isr_nodes=tuple(state.isr),
                    offline_replicas=tuple(r for r in state.replicas if r not in live),
                )
            )
        return build(
            topic_type,
            error_code=ErrorCode.none,
            topic_id=topic_uuid(topic.topic_id),
            partitions=tuple(partitions),
            **common,
        )
