"""Partition reassignment on the active controller (KIP-455; Kafka's
PartitionReassignmentReplicas and PartitionReassignmentRevert).

Starting: with current replicas C (the original ones, ``Replicas - adding``, when a
reassignment is already in progress) and target T: removing = C - T, adding = T - C, and
Replicas = T ++ removing, written with AddingReplicas and RemovingReplicas. The ISR keeps its
members that stay replicas. The leader brings the adding replicas into the ISR through
AlterPartition; PartitionChangeBuilder completes the reassignment once the ISR minus removing
holds all of T (at once, if it already does): Replicas = T, ISR = ISR - removing, adding and
removing cleared, leader epoch bumped, a removed leader replaced from T.

Cancelling: no replica leaves the replica list before completion, so the original replicas
are always ``Replicas - adding``; the revert sets Replicas to them and ISR = ISR - adding. If
that ISR would be empty (only adding replicas are in sync) the cancel is refused with
INVALID_REPLICA_ASSIGNMENT rather than electing uncleanly.

Each partition of a request is validated on its own; a bad one gets an error result (and no
record) while the others proceed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from raftka.common.errors import InvalidRequestError, RaftkaError, UnknownTopicOrPartitionError
from raftka.common.ids import BrokerId
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.model import PartitionState, PartitionView
from raftka.controller.control.errors import (
    InvalidReplicaAssignmentError,
    NoReassignmentInProgressError,
)
from raftka.controller.control.partition_change import (
    AcceptableLeader,
    PartitionChangeBuilder,
    acceptable_leaders,
    find_partition,
)
from raftka.controller.control.result import ControllerResult
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.controller_pb2 import (
    AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
    OngoingReassignment,
    ReassignablePartition,
    ReassignablePartitionResult,
    ReassignableTopicResult,
)
from raftka.v1.metadata_pb2 import MetadataRecord


def is_reassigning(state: PartitionState) -> bool:
    return bool(state.adding_replicas or state.removing_replicas)


def original_replicas(state: PartitionState) -> tuple[BrokerId, ...]:
    """The replicas before the reassignment in progress (all replicas when none is)."""
    return tuple(r for r in state.replicas if r not in state.adding_replicas)


def alter_partition_reassignments(
    image: MetadataImage, request: AlterPartitionReassignmentsRequest
) -> ControllerResult[AlterPartitionReassignmentsResponse]:
    is_acceptable = acceptable_leaders(image)
    records: list[MetadataRecord] = []
    response = AlterPartitionReassignmentsResponse()
    seen: set[tuple[str, int]] = set()
    for topic in request.topics:
        topic_result = ReassignableTopicResult(name=topic.name)
        for target in topic.partitions:
            result = ReassignablePartitionResult(partition=target.partition)
            try:
                key = (topic.name, target.partition)
                if key in seen:
                    raise InvalidRequestError(
                        f"partition {topic.name}-{target.partition} appears more than once in "
                        "the request"
                    )
                seen.add(key)
                view = find_partition(image, topic.name, target.partition)
                record = _change(image, view, target, is_acceptable)
            except RaftkaError as e:
                result.error_code, result.error_message = e.code, e.message
            else:
                result.error_code = ErrorCode.NONE
                if record is not None:
                    records.append(record)
            topic_result.partitions.append(result)
        response.results.append(topic_result)
    return ControllerResult(tuple(records), response)


def _change(
    image: MetadataImage,
    view: PartitionView,
    target: ReassignablePartition,
    is_acceptable: AcceptableLeader,
) -> MetadataRecord | None:
    state, where = view.state, f"partition {view.topic_name}-{view.partition_id}"
    if target.cancel:
        if not is_reassigning(state):
            raise NoReassignmentInProgressError(f"{where} has no reassignment in progress")
        replicas = original_replicas(state)
        isr = tuple(b for b in state.isr if b not in state.adding_replicas)
        if not isr:
            raise InvalidReplicaAssignmentError(
                f"{where}: none of the original replicas {list(replicas)} is in the ISR "
                f"{list(state.isr)}; cancelling would need an unclean election"
            )
        adding: tuple[BrokerId, ...] = ()
        removing: tuple[BrokerId, ...] = ()
    else:
        wanted = _validate_target(image, where, target.replicas)
        current = original_replicas(state)
        removing = tuple(r for r in current if r not in wanted)
        adding = tuple(r for r in wanted if r not in current)
        replicas = wanted + removing
        isr = tuple(b for b in state.isr if b in replicas)
        if not isr:
            raise InvalidReplicaAssignmentError(
                f"{where}: no member of the ISR {list(state.isr)} would stay a replica"
            )
    return PartitionChangeBuilder(
        view.topic_id,
        view.partition_id,
        state,
        is_acceptable,
        target_isr=isr,
        target_replicas=replicas,
        target_adding=adding,
        target_removing=removing,
    ).build()


def _validate_target(
    image: MetadataImage, where: str, replicas: Sequence[int]
) -> tuple[BrokerId, ...]:
    if not replicas:
        raise InvalidReplicaAssignmentError(
            f"{where}: the target replica list is empty (to cancel, set cancel)"
        )
    if len(set(replicas)) != len(replicas):
        raise InvalidReplicaAssignmentError(
            f"{where}: the target replicas {list(replicas)} have duplicates"
        )
    unknown = [b for b in replicas if b < 0 or image.broker(b) is None]
    if unknown:
        raise InvalidReplicaAssignmentError(
            f"{where}: the target replicas name brokers {unknown} that are not registered"
        )
    return tuple(BrokerId(b) for b in replicas)


def list_partition_reassignments(
    image: MetadataImage, request: ListPartitionReassignmentsRequest
) -> ListPartitionReassignmentsResponse:
    """The reassignments in progress among the named partitions (every partition when none
    is named); an unknown topic or partition fails the request."""
    response = ListPartitionReassignmentsResponse()
    for view in _views(image, request):
        state = view.state
        if is_reassigning(state):
            response.reassignments.append(
                OngoingReassignment(
                    topic=view.topic_name,
                    partition=view.partition_id,
                    replicas=state.replicas,
                    adding_replicas=state.adding_replicas,
                    removing_replicas=state.removing_replicas,
                    isr=state.isr,
                    leader=state.leader,
                )
            )
    return response


def _views(
    image: MetadataImage, request: ListPartitionReassignmentsRequest
) -> Iterator[PartitionView]:
    if not request.topics:
        yield from image.partitions()
        return
    seen: set[tuple[str, int]] = set()
    for named in request.topics:
        topic = image.topic(named.topic)
        if topic is None:
            raise UnknownTopicOrPartitionError(f"topic {named.topic!r} does not exist")
        for partition_id in named.partitions or sorted(topic.partitions):
            if (named.topic, partition_id) not in seen:
                seen.add((named.topic, partition_id))
                yield find_partition(image, named.topic, partition_id)
