"""AlterPartitionReassignments (v0) and ListPartitionReassignments (v0), forwarded to the
active controller's reassignment RPCs.

Both need the cluster permission the controller asks for (ALTER, DESCRIBE); a refusal is the
whole answer. A null replica list cancels a partition's reassignment; a partition named twice
gets INVALID_REQUEST. Listing with null topics lists every reassignment in progress; a topic
named with no partitions lists none of its own (Kafka's reading). An unknown topic or
partition fails the listing as a whole (UNKNOWN_TOPIC_OR_PARTITION at the top)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.bounds import items_refusal
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.schema import (
    NO_THROTTLE,
    build,
    error_code,
    error_of,
    nested,
    response_type,
)
from raftka.common.errors import RaftkaError
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    OP_ALTER,
    OP_DESCRIBE,
    RESOURCE_CLUSTER,
)

ALTER_PARTITION_REASSIGNMENTS_KEY = 45
LIST_PARTITION_REASSIGNMENTS_KEY = 46

Outcome = tuple[ErrorCode, str | None]


class AlterPartitionReassignmentsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(ALTER_PARTITION_REASSIGNMENTS_KEY, context.api_version)
        named = [
            ((t.name, p.partition_index), p.replicas) for t in request.topics for p in t.partitions
        ]
        refusal = items_refusal(len(named), "topics[].partitions")
        if refusal is not None:
            return self._answer(answer_type, (error_of(refusal), refusal.message), {})
        outcomes: dict[tuple[str, int], Outcome] = {}
        denial = self._backend.guard.denial(OP_ALTER, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)
        if denial is not None:
            outcome = (error_of(denial), denial.message)
            return self._answer(answer_type, outcome, dict.fromkeys((k for k, _ in named), outcome))
        times = Counter(key for key, _ in named)
        targets = {}
        for key, replicas in named:
            if times[key] > 1:
                outcomes[key] = (
                    ErrorCode.invalid_request,
                    f"partition {key[0]}-{key[1]} is named {times[key]} times: name it once",
                )
            else:
                targets[key] = None if replicas is None else [int(r) for r in replicas]
                outcomes[key] = (ErrorCode.none, None)
        if targets:
            try:
                for t in await self._backend.controller.alter_partition_reassignments(targets):
                    for p in t.partitions:
                        outcomes[(t.name, p.partition)] = (
                            error_code(p.error_code),
                            p.error_message or None,
                        )
            except RaftkaError as e:
                outcomes.update(dict.fromkeys(targets, (error_of(e), e.message)))
        return self._answer(answer_type, (ErrorCode.none, None), outcomes)

    @staticmethod
    def _answer(
        answer_type: type[Any], top: Outcome, outcomes: dict[tuple[str, int], Outcome]
    ) -> Any:
        by_topic: dict[str, list[Any]] = {}
        partition_type = nested(answer_type, "ReassignablePartitionResponse")
        for (topic, partition), (code, message) in outcomes.items():
            by_topic.setdefault(topic, []).append(
                build(
                    partition_type,
                    partition_index=partition,
                    error_code=code,
                    error_message=message,
                )
            )
        topic_type = nested(answer_type, "ReassignableTopicResponse")
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=top[0],
            error_message=top[1],
            responses=tuple(
                build(topic_type, name=name, partitions=tuple(parts))
                for name, parts in by_topic.items()
            ),
        )


class ListPartitionReassignmentsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(LIST_PARTITION_REASSIGNMENTS_KEY, context.api_version)
        wanted: dict[str, set[int]] | None = None
        if request.topics is not None:
            wanted = {}
            for t in request.topics:
                if t.partition_indexes:
                    wanted.setdefault(t.name, set()).update(t.partition_indexes)
        count = 0 if wanted is None else len(wanted) + sum(len(p) for p in wanted.values())
        refusal = items_refusal(count, "topics and partitions") or self._backend.guard.denial(
            OP_DESCRIBE, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME
        )
        if refusal is not None:
            return self._answer(answer_type, error_of(refusal), refusal.message, ())
        if wanted == {}:
            return self._answer(answer_type, ErrorCode.none, None, ())
        try:
            ongoing = await self._backend.controller.list_partition_reassignments(
                list(wanted or ())
            )
        except RaftkaError as e:
            return self._answer(answer_type, error_of(e), e.message, ())
        if wanted is not None:
            ongoing = [o for o in ongoing if o.partition in wanted.get(o.topic, ())]
        return self._answer(answer_type, ErrorCode.none, None, ongoing)

    @staticmethod
    def _answer(answer_type: type[Any], code: ErrorCode, message: str | None, ongoing: Any) -> Any:
        partition_type = nested(answer_type, "OngoingPartitionReassignment")
        by_topic: dict[str, list[Any]] = {}
        for o in ongoing:
            by_topic.setdefault(o.topic, []).append(
                build(
                    partition_type,
                    partition_index=o.partition,
                    replicas=tuple(o.replicas),
                    adding_replicas=tuple(o.adding_replicas),
                    removing_replicas=tuple(o.removing_replicas),
                )
            )
        topic_type = nested(answer_type, "OngoingTopicReassignment")
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=code,
            error_message=message,
            topics=tuple(
                build(topic_type, name=name, partitions=tuple(parts))
                for name, parts in by_topic.items()
            ),
        )
