"""Topic management on the active controller: create, delete, add partitions, describe.

Each topic of a request is validated on its own; a bad topic gets an error result (and no
records) while the others proceed.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable

from raftka.common.errors import (
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidRequestError,
    InvalidTopicError,
    RaftkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from raftka.common.ids import BrokerId, random_resource_id
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.model import NO_LEADER, PartitionState, TopicImage
from raftka.common.metadata.records import (
    partition_record,
    remove_topic_record,
    topic_config_record,
    topic_record,
)
from raftka.common.metadata.topic_configs import (
    check_min_insync_replicas,
    validate_topic_configs,
)
from raftka.common.metadata.topic_names import collision_key, validate_topic_name
from raftka.controller.control.placement import StripedReplicaPlacer, usable_brokers
from raftka.controller.control.result import ControllerResult
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.controller_pb2 import (
    CreatePartitionsRequest,
    CreatePartitionsResponse,
    CreateTopicResult,
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteTopicsRequest,
    DeleteTopicsResponse,
    DescribeTopicsRequest,
    DescribeTopicsResponse,
    PartitionDescription,
    TopicDescription,
    TopicResult,
)
from raftka.v1.metadata_pb2 import MetadataRecord

DEFAULT_NUM_PARTITIONS = 1
DEFAULT_REPLICATION_FACTOR = 1
MAX_NEW_PARTITIONS = 10_000
"""Most partitions one topic may gain in one request (bounds the records of one entry)."""

_RESERVED_IDS = frozenset({"AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAQ"})  # Kafka's ZERO/ONE


class TopicManager:
    """Creates, deletes and grows topics. Deterministic given the injected rng."""

    def __init__(
        self,
        rng: random.Random,
        *,
        default_num_partitions: int = DEFAULT_NUM_PARTITIONS,
        default_replication_factor: int = DEFAULT_REPLICATION_FACTOR,
        max_new_partitions: int = MAX_NEW_PARTITIONS,
    ) -> None:
        self._rng = rng
        self._default_partitions = default_num_partitions
        self._default_rf = default_replication_factor
        self._max_new_partitions = max_new_partitions

    def create_topics(
        self, image: MetadataImage, request: CreateTopicsRequest
    ) -> ControllerResult[CreateTopicsResponse]:
        counts = Counter(topic.name for topic in request.topics)
        taken = {collision_key(name): name for name in image.topics}
        new_ids: set[str] = set()
        placer = StripedReplicaPlacer(self._rng)
        records: list[MetadataRecord] = []
        response = CreateTopicsResponse()
        for new in request.topics:
            name = new.name
            try:
                if counts[name] > 1:
                    raise InvalidRequestError(
                        f"topic {name!r} appears {counts[name]} times in the request"
                    )
                validate_topic_name(name)
                if image.topic(name) is not None:
                    raise TopicAlreadyExistsError(f"topic {name!r} already exists")
                other = taken.get(collision_key(name))
                if other is not None:
                    raise InvalidTopicError(
                        f"topic {name!r} collides with topic {other!r} ('.' and '_' are "
                        "interchangeable in metric names)"
                    )
                num_partitions = self._partition_count(new.num_partitions)
                rf = self._replication_factor(image, new.replication_factor)
                configs = validate_topic_configs(dict(new.configs))
                check_min_insync_replicas(configs, rf)
                assignments = placer.place(usable_brokers(image), num_partitions, rf)
                topic_id = self._new_topic_id(image, new_ids)
            except RaftkaError as e:
                response.results.append(
                    CreateTopicResult(name=name, error_code=e.code, error_message=e.message)
                )
                continue
            taken[collision_key(name)] = name
            new_ids.add(topic_id)
            response.results.append(
                CreateTopicResult(
                    name=name,
                    topic_id=topic_id,
                    error_code=ErrorCode.NONE,
                    num_partitions=num_partitions,
                    replication_factor=rf,
                )
            )
            records.append(topic_record(name, topic_id))
            records.extend(_partition_records(image, topic_id, 0, assignments))
            records.extend(topic_config_record(name, k, v) for k, v in configs.items())
        if request.validate_only:
            records = []
        return ControllerResult(tuple(records), response)

    def delete_topics(
        self, image: MetadataImage, request: DeleteTopicsRequest
    ) -> ControllerResult[DeleteTopicsResponse]:
        counts = Counter(request.names)
        records: list[MetadataRecord] = []
        response = DeleteTopicsResponse()
        for name in request.names:
            try:
                if counts[name] > 1:
                    raise InvalidRequestError(
                        f"topic {name!r} appears {counts[name]} times in the request"
                    )
                topic = _existing_topic(image, name)
            except RaftkaError as e:
                response.results.append(_error_result(name, e))
                continue
            records.append(remove_topic_record(topic.topic_id))
            response.results.append(TopicResult(name=name, error_code=ErrorCode.NONE))
        return ControllerResult(tuple(records), response)

    def create_partitions(
        self, image: MetadataImage, request: CreatePartitionsRequest
    ) -> ControllerResult[CreatePartitionsResponse]:
        counts = Counter(update.name for update in request.topics)
        placer = StripedReplicaPlacer(self._rng)
        records: list[MetadataRecord] = []
        response = CreatePartitionsResponse()
        for update in request.topics:
            name = update.name
            try:
                if counts[name] > 1:
                    raise InvalidRequestError(
                        f"topic {name!r} appears {counts[name]} times in the request"
                    )
                topic = _existing_topic(image, name)
                current = len(topic.partitions)
                if update.total_count <= current:
                    raise InvalidPartitionsError(
                        f"topic {name!r} has {current} partitions; the new total "
                        f"{update.total_count} must be larger (partitions cannot be removed)"
                    )
                added = update.total_count - current
                self._check_new_partitions(added)
                rf = topic.replication_factor
                self._check_enough_brokers(image, rf)
                assignments = placer.place(usable_brokers(image), added, rf)
            except RaftkaError as e:
                response.results.append(_error_result(name, e))
                continue
            records.extend(_partition_records(image, topic.topic_id, current, assignments))
            response.results.append(TopicResult(name=name, error_code=ErrorCode.NONE))
        if request.validate_only:
            records = []
        return ControllerResult(tuple(records), response)

    def _partition_count(self, requested: int) -> int:
        if requested < 0:
            raise InvalidPartitionsError(
                f"num_partitions must be >= 1 (or 0 for the default), got {requested}"
            )
        count = requested or self._default_partitions
        self._check_new_partitions(count)
        return count

    def _check_new_partitions(self, count: int) -> None:
        if count > self._max_new_partitions:
            raise InvalidPartitionsError(
                f"{count} new partitions exceed the limit of {self._max_new_partitions} "
                "per topic and request"
            )

    def _replication_factor(self, image: MetadataImage, requested: int) -> int:
        if requested < 0:
            raise InvalidReplicationFactorError(
                f"replication_factor must be >= 1 (or 0 for the default), got {requested}"
            )
        rf = requested or self._default_rf
        self._check_enough_brokers(image, rf)
        return rf

    @staticmethod
    def _check_enough_brokers(image: MetadataImage, rf: int) -> None:
        available = len(image.active_brokers())
        if rf > available:
            raise InvalidReplicationFactorError(
                f"replication factor {rf} is larger than the number of available brokers "
                f"({available} unfenced and not shutting down)"
            )

    def _new_topic_id(self, image: MetadataImage, taken: set[str]) -> str:
        while True:
            topic_id = random_resource_id(self._rng)
            if (
                not topic_id.startswith("-")
                and topic_id not in _RESERVED_IDS
                and topic_id not in taken
                and image.topic_by_id(topic_id) is None
            ):
                return topic_id


def describe_topics(image: MetadataImage, request: DescribeTopicsRequest) -> DescribeTopicsResponse:
    """Topics from the image; every topic when no names are given."""
    names = list(request.names) or image.topic_names()
    response = DescribeTopicsResponse()
    for name in names:
        topic = image.topic(name)
        if topic is None:
            response.topics.append(
                TopicDescription(
                    name=name,
                    error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    error_message=f"topic {name!r} does not exist",
                )
            )
            continue
        description = TopicDescription(
            name=name, topic_id=topic.topic_id, configs=dict(image.topic_configs(name))
        )
        for partition_id in sorted(topic.partitions):
            state = topic.partitions[partition_id]
            description.partitions.append(
                PartitionDescription(
                    partition=partition_id,
                    leader=state.leader,
                    leader_epoch=state.leader_epoch,
                    partition_epoch=state.partition_epoch,
                    replicas=state.replicas,
                    isr=state.isr,
                )
            )
        response.topics.append(description)
    return response


def _existing_topic(image: MetadataImage, name: str) -> TopicImage:
    topic = image.topic(name)
    if topic is None:
        raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
    return topic


def _error_result(name: str, error: RaftkaError) -> TopicResult:
    return TopicResult(name=name, error_code=error.code, error_message=error.message)


def _partition_records(
    image: MetadataImage,
    topic_id: str,
    first_partition_id: int,
    assignments: Iterable[tuple[BrokerId, ...]],
) -> list[MetadataRecord]:
    """PartitionRecords for new partitions: ISR = the active replicas, leader = ISR[0]."""
    records = []
    for offset, replicas in enumerate(assignments):
        isr = tuple(b for b in replicas if image.is_active(b))
        state = PartitionState(replicas=replicas, isr=isr, leader=isr[0] if isr else NO_LEADER)
        records.append(partition_record(topic_id, first_partition_id + offset, state))
    return records
