"""AlterPartition on the active controller: a partition leader changes its ISR (KIP-497;
broker epochs as in KIP-903).

The request as a whole must come from a registered broker at its current broker epoch
(STALE_BROKER_EPOCH / BROKER_ID_NOT_REGISTERED otherwise). Each partition is then validated on
its own, in Kafka's order (``validateAlterPartitionData``), and gets an error or its new state:
  1. leader or partition epoch above the controller's -> NOT_CONTROLLER
  2. leader epoch below -> FENCED_LEADER_EPOCH
  3. sender is not the leader -> INVALID_REQUEST
  4. partition epoch below -> INVALID_UPDATE_VERSION
  5. ISR empty, with duplicates, not within the replicas, or without the leader -> INVALID_REQUEST
     (a leader that resigns, ``leader_resigns``, because its copy is damaged, must leave itself
     out instead; the new leader is elected from the rest)
  6. RECOVERING with ISR > 1, or RECOVERED -> RECOVERING (or an unknown state) -> INVALID_REQUEST
  7. a member unregistered, fenced, in controlled shutdown, or at another broker epoch (-1
     skips the epoch check) -> INELIGIBLE_REPLICA
A valid change becomes one PartitionChangeRecord (partition epoch + 1; the leader epoch stays
for an ISR change) built by PartitionChangeBuilder, which also completes a reassignment whose
target replicas are now all in sync.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftka.common.errors import InvalidRequestError, RaftkaError, UnknownTopicOrPartitionError
from raftka.common.ids import BrokerId
from raftka.common.metadata.image import MetadataImage, merge_partition_change
from raftka.common.metadata.model import LeaderRecoveryState, PartitionState
from raftka.controller.control.cluster import check_broker_epoch
from raftka.controller.control.errors import (
    ControllerBehindError,
    FencedLeaderEpochError,
    IneligibleReplicaError,
    InvalidUpdateVersionError,
    UnknownTopicIdError,
)
from raftka.controller.control.partition_change import PartitionChangeBuilder, acceptable_leaders
from raftka.controller.control.result import ControllerResult
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.controller_pb2 import (
    AlterPartitionData,
    AlterPartitionRequest,
    AlterPartitionResponse,
    AlterPartitionResult,
    AlterPartitionTopicResult,
    BrokerEpochPair,
)
from raftka.v1.metadata_pb2 import MetadataRecord

NO_EPOCH_CHECK = -1
"""A member's broker_epoch that skips the epoch check (KIP-903)."""


def alter_partition(
    image: MetadataImage, request: AlterPartitionRequest
) -> ControllerResult[AlterPartitionResponse]:
    """Validates every partition of ``request`` and plans one change per valid partition."""
    check_broker_epoch(image, request.broker_id, request.broker_epoch)
    sender = BrokerId(request.broker_id)
    is_acceptable = acceptable_leaders(image)
    records: list[MetadataRecord] = []
    response = AlterPartitionResponse()
    seen: set[tuple[str, int]] = set()
    for topic in request.topics:
        topic_result = AlterPartitionTopicResult(topic_id=topic.topic_id)
        for data in topic.partitions:
            key = (topic.topic_id, data.partition_index)
            try:
                if key in seen:
                    raise InvalidRequestError(
                        f"partition {data.partition_index} of topic id {topic.topic_id} "
                        "appears more than once in the request"
                    )
                seen.add(key)
                state = _partition(image, topic.topic_id, data.partition_index)
                isr = validate_alter_partition(image, sender, state, data)
                record = PartitionChangeBuilder(
                    topic.topic_id,
                    data.partition_index,
                    state,
                    is_acceptable,
                    target_isr=isr,
                    target_recovery_state=LeaderRecoveryState(data.leader_recovery_state),
                ).build()
            except RaftkaError as e:
                topic_result.partitions.append(
                    AlterPartitionResult(
                        partition_index=data.partition_index,
                        error_code=e.code,
                        error_message=e.message,
                    )
                )
                continue
            if record is not None:
                records.append(record)
                state = merge_partition_change(state, record.partition_change)
            topic_result.partitions.append(_success(data.partition_index, state))
        response.topics.append(topic_result)
    return ControllerResult(tuple(records), response)


def validate_alter_partition(
    image: MetadataImage, sender: BrokerId, state: PartitionState, data: AlterPartitionData
) -> tuple[BrokerId, ...]:
    """Checks one partition's change in the order of the module docstring; returns the new
    ISR or raises the error the partition's result gets."""
    where = f"partition {data.partition_index}"
    if data.leader_epoch > state.leader_epoch or data.partition_epoch > state.partition_epoch:
        raise ControllerBehindError(
            f"{where}: the request's leader epoch {data.leader_epoch} / partition epoch "
            f"{data.partition_epoch} are newer than this controller's ({state.leader_epoch} / "
            f"{state.partition_epoch}); retry against the active controller"
        )
    if data.leader_epoch < state.leader_epoch:
        raise FencedLeaderEpochError(
            f"{where}: leader epoch {data.leader_epoch} is older than the current "
            f"{state.leader_epoch}; the sender no longer leads at that epoch"
        )
    if sender != state.leader:
        raise InvalidRequestError(
            f"{where}: broker {sender} is not the leader (the leader is {state.leader})"
        )
    if data.partition_epoch < state.partition_epoch:
        raise InvalidUpdateVersionError(
            f"{where}: partition epoch {data.partition_epoch} is older than the current "
            f"{state.partition_epoch}; apply the newer metadata and retry if still needed"
        )
    isr = tuple(BrokerId(m.broker_id) for m in data.new_isr_with_epochs)
    _check_isr_shape(where, state, isr, leader_resigns=data.leader_resigns)
    _check_recovery_state(where, state, data.leader_recovery_state, len(isr))
    _check_members_eligible(where, image, data.new_isr_with_epochs)
    return isr


def _check_isr_shape(
    where: str, state: PartitionState, isr: Sequence[BrokerId], *, leader_resigns: bool = False
) -> None:
    if len(set(isr)) != len(isr):
        raise InvalidRequestError(f"{where}: the new ISR {list(isr)} has duplicates")
    outside = [b for b in isr if b not in state.replicas]
    if outside:
        raise InvalidRequestError(
            f"{where}: the new ISR {list(isr)} has brokers {outside} that are not replicas "
            f"{list(state.replicas)}"
        )
    if leader_resigns:
        if state.leader in isr or not isr:
            raise InvalidRequestError(
                f"{where}: a resigning leader {state.leader} must leave itself out of the new "
                f"ISR and name at least one other in-sync replica, not {list(isr)}"
            )
        return
    if state.leader not in isr:
        raise InvalidRequestError(
            f"{where}: the new ISR {list(isr)} does not contain the leader {state.leader}"
        )


def _check_recovery_state(where: str, state: PartitionState, value: int, isr_size: int) -> None:
    try:
        requested = LeaderRecoveryState(value)
    except ValueError:
        raise InvalidRequestError(
            f"{where}: leader_recovery_state {value} is not 0 (RECOVERED) or 1 (RECOVERING)"
        ) from None
    if requested is LeaderRecoveryState.RECOVERING and isr_size > 1:
        raise InvalidRequestError(
            f"{where}: a RECOVERING leader cannot have an ISR of {isr_size}; report RECOVERED first"
        )
    if (
        requested is LeaderRecoveryState.RECOVERING
        and state.leader_recovery_state is LeaderRecoveryState.RECOVERED
    ):
        raise InvalidRequestError(f"{where}: cannot go from RECOVERED back to RECOVERING")


def _check_members_eligible(
    where: str, image: MetadataImage, members: Sequence[BrokerEpochPair]
) -> None:
    problems = []
    for member in members:
        reg = image.broker(member.broker_id)
        if reg is None:
            problems.append(f"{member.broker_id} is not registered")
        elif reg.fenced:
            problems.append(f"{member.broker_id} is fenced")
        elif reg.in_controlled_shutdown:
            problems.append(f"{member.broker_id} is in controlled shutdown")
        elif member.broker_epoch != NO_EPOCH_CHECK and member.broker_epoch != reg.epoch:
            problems.append(
                f"{member.broker_id} has broker epoch {reg.epoch}, not {member.broker_epoch}"
            )
    if problems:
        raise IneligibleReplicaError(f"{where}: ineligible ISR members: {'; '.join(problems)}")


def _partition(image: MetadataImage, topic_id: str, partition_id: int) -> PartitionState:
    topic = image.topic_by_id(topic_id)
    if topic is None:
        raise UnknownTopicIdError(f"no topic has id {topic_id!r}")
    state = topic.partitions.get(partition_id)
    if state is None:
        raise UnknownTopicOrPartitionError(f"topic {topic.name!r} has no partition {partition_id}")
    return state


def _success(partition_index: int, state: PartitionState) -> AlterPartitionResult:
    return AlterPartitionResult(
        partition_index=partition_index,
        error_code=ErrorCode.NONE,
        leader_id=state.leader,
        leader_epoch=state.leader_epoch,
        isr=state.isr,
        leader_recovery_state=int(state.leader_recovery_state),
        partition_epoch=state.partition_epoch,
    )
