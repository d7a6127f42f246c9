"""CreateTopics (v2-v7) and DeleteTopics (v1-v5), forwarded to the active controller.

The controller validates and commits as it does for Raftka's own admin client; its per-topic
results come back with Kafka's codes (the same numbers). Kafka's -1 for partitions or
replication factor means the default, as Raftka's 0 does. Manual replica assignments are not
supported yet (INVALID_REQUEST for that topic). The caller's permission is checked here, as
the controller checks a gRPC caller's (CREATE on the cluster or the topic; DELETE on the
topic): the controller sees this broker."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.schema import (
    NO_THROTTLE,
    build,
    error_code,
    error_of,
    nested,
    response_type,
    topic_uuid,
)
from raftka.broker.request_checks import topic_refusals
from raftka.common.errors import RaftkaError
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    OP_CREATE,
    OP_DELETE,
    RESOURCE_CLUSTER,
)
from raftka.v1 import controller_pb2 as cpb

CREATE_TOPICS_KEY = 19
DELETE_TOPICS_KEY = 20


class CreateTopicsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(CREATE_TOPICS_KEY, context.api_version)
        result_type = nested(answer_type, "CreatableTopicResult")

        def result(name: str, code: ErrorCode, message: str | None, **more: Any) -> Any:
            return build(
                result_type,
                name=name,
                topic_id=topic_uuid(more.pop("topic_id", "")),
                error_code=code,
                error_message=message,
                num_partitions=more.pop("num_partitions", -1),
                replication_factor=more.pop("replication_factor", -1),
                configs=None,
            )

        refused = {
            t.name: result(
                t.name,
                ErrorCode.invalid_request,
                "manual replica assignments are not supported yet: give a replication factor",
            )
            for t in request.topics
            if t.assignments
        }
        asked = [
            cpb.NewTopic(
                name=t.name,
                num_partitions=max(0, t.num_partitions),
                replication_factor=max(0, t.replication_factor),
                configs={c.name: c.value for c in t.configs if c.value is not None},
            )
            for t in request.topics
            if t.name not in refused
        ]
        answers = dict(refused)
        # The caller's permission, as the controller's CreateTopics asks it (the controller
        # sees this broker, a super user): CREATE on the cluster, or on each topic.
        guard = self._backend.guard
        if not guard.allowed_quietly(OP_CREATE, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME):
            denied = topic_refusals(guard, OP_CREATE, (t.name for t in asked))
            for name, error in denied.items():
                answers[name] = result(name, error_of(error), error.message)
            asked = [t for t in asked if t.name not in denied]
        if asked:
            try:
                created = await self._backend.controller.create_topics(
                    asked, validate_only=request.validate_only
                )
                for r in created:
                    answers[r.name] = result(
                        r.name,
                        error_code(r.error_code),
                        r.error_message or None,
                        topic_id=r.topic_id,
                        num_partitions=r.num_partitions if r.error_code == 0 else -1,
                        replication_factor=r.replication_factor if r.error_code == 0 else -1,
                    )
            except RaftkaError as e:
                for t in asked:
                    answers[t.name] = result(t.name, error_of(e), e.message)
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            topics=tuple(answers[t.name] for t in request.topics if t.name in answers),
        )


class DeleteTopicsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(DELETE_TOPICS_KEY, context.api_version)
        result_type = nested(answer_type, "DeletableTopicResult")
        names = list(dict.fromkeys(request.topic_names))
        # DELETE on each topic, as the controller's DeleteTopics asks it of the caller.
        denied = topic_refusals(self._backend.guard, OP_DELETE, names)
        results = [
            build(result_type, name=n, error_code=error_of(e), error_message=e.message)
            for n, e in denied.items()
        ]
        asked = [n for n in names if n not in denied]
        try:
            if asked:
                results += [
                    build(
                        result_type,
                        name=r.name,
                        error_code=error_code(r.error_code),
                        error_message=r.error_message or None,
                    )
                    for r in await self._backend.controller.delete_topics(asked)
                ]
        except RaftkaError as e:
            results += [
                build(result_type, name=n, error_code=error_of(e), error_message=e.message)
                for n in asked
            ]
        return build(answer_type, throttle_time=NO_THROTTLE, responses=tuple(results))
