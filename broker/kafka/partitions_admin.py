"""CreatePartitions (v0-v3) and ElectLeaders (v0-v2), forwarded to the active controller.

CreatePartitions needs ALTER on each topic; a topic named twice gets INVALID_REQUEST, as does
one with manual replica assignments (not supported yet: the controller places new partitions).
ElectLeaders needs ALTER on the cluster; a refusal is the whole answer
(CLUSTER_AUTHORIZATION_FAILED at the top and for every partition named), as with Kafka. Its
preferred (0) and unclean (1) elections are the controller's, with Kafka's per-partition codes
(ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE, ...).
Null topic_partitions asks for every partition; the answer then leaves out those that needed
no election, as Kafka's does."""

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
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    OP_ALTER,
    RESOURCE_CLUSTER,
    RESOURCE_TOPIC,
)
from raftka.v1 import controller_pb2 as cpb

CREATE_PARTITIONS_KEY = 37
ELECT_LEADERS_KEY = 43

Outcome = tuple[ErrorCode, str | None]


class CreatePartitionsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(CREATE_PARTITIONS_KEY, context.api_version)
        topics = list(request.topics)
        times = Counter(t.name for t in topics)
        too_many = items_refusal(len(topics), "topics")
        refused = {} if too_many else self._backend.guard.refusals(OP_ALTER, RESOURCE_TOPIC, times)
        outcomes: dict[str, Outcome] = {}
        asked: dict[str, int] = {}
        for t in topics:
            if too_many is not None:
                outcomes[t.name] = (error_of(too_many), too_many.message)
            elif times[t.name] > 1:
                outcomes[t.name] = (
                    ErrorCode.invalid_request,
                    f"topic {t.name!r} is named {times[t.name]} times: name it once",
                )
            elif t.name in refused:
                outcomes[t.name] = (error_of(refused[t.name]), refused[t.name].message)
            elif t.assignments is not None:
                outcomes[t.name] = (
                    ErrorCode.invalid_request,
                    "manual replica assignments are not supported yet: leave them out and the "
                    "controller places the new partitions",
                )
            else:
                asked[t.name] = t.count
        if asked:
            try:
                for r in await self._backend.controller.create_partitions(
                    asked, validate_only=request.validate_only
                ):
                    outcomes[r.name] = (error_code(r.error_code), r.error_message or None)
            except RaftkaError as e:
                outcomes.update(dict.fromkeys(asked, (error_of(e), e.message)))
        result_type = nested(answer_type, "CreatePartitionsTopicResult")
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            results=tuple(
                build(result_type, name=name, error_code=code, error_message=message)
                for name, (code, message) in ((n, outcomes[n]) for n in times)
            ),
        )


class ElectLeadersHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(ELECT_LEADERS_KEY, context.api_version)
        everything = request.topic_partitions is None
        named = [(t.topic, p) for t in request.topic_partitions or () for p in t.partitions]
        refusal = items_refusal(len(named), "topic_partitions") or self._backend.guard.denial(
            OP_ALTER, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME
        )
        if refusal is not None:
            # Over the bound, naming each partition again would be as large as the request.
            each = () if isinstance(refusal, InvalidRequestError) else named
            return self._answer(answer_type, error_of(refusal), refusal.message, each)
        if not named and not everything:
            return self._answer(answer_type, ErrorCode.none, None, ())
        election = int(getattr(request, "election_type", cpb.ELECTION_TYPE_PREFERRED))
        try:
            results = await self._backend.controller.elect_leaders(election, named)  # type: ignore[arg-type]
        except RaftkaError as e:
            return self._answer(answer_type, error_of(e), e.message, named)
        result_type = nested(answer_type, "ReplicaElectionResult")
        partition_type = nested(answer_type, "PartitionResult")
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.none,
            replica_election_results=tuple(
                build(
                    result_type,
                    topic=t.topic,
                    partition_result=tuple(
                        build(
                            partition_type,
                            partition_id=p.partition,
                            error_code=error_code(p.error_code),
                            error_message=p.error_message or None,
                        )
                        for p in t.partitions
                    ),
                )
                for t in results
            ),
        )

    @staticmethod
    def _answer(
        answer_type: type[Any],
        code: ErrorCode,
        message: str | None,
        partitions: list[tuple[str, int]] | tuple[()],
    ) -> Any:
        """The same outcome for the whole request and for every partition it named."""
        by_topic: dict[str, list[int]] = {}
        for topic, partition in partitions:
            by_topic.setdefault(topic, []).append(partition)
        result_type = nested(answer_type, "ReplicaElectionResult")
        partition_type = nested(answer_type, "PartitionResult")
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=code,
            replica_election_results=tuple(
                build(
                    result_type,
                    topic=topic,
                    partition_result=tuple(
                        build(
                            partition_type, partition_id=p, error_code=code, error_message=message
                        )
                        for p in ids
                    ),
                )
                for topic, ids in by_topic.items()
            ),
        )
