"""Leader elections asked for by operators (ElectLeaders) and the periodic preferred-leader
rebalance, on the active controller.

PREFERRED elects ``Replicas[0]`` when it is in the ISR and active; the ISR is untouched.
UNCLEAN elects a leader for a partition that has none: the first in-sync active replica, else
the first active replica outside the ISR (whatever the topic's unclean.leader.election.enable),
which sets ISR = [leader] and the leader recovery state RECOVERING and is reported as unclean.

The rebalance follows Kafka's per-broker rule (``leader.imbalance.per.broker.percentage``): for
each broker, the share of the partitions it prefers to lead that another broker leads; when
that share exceeds the threshold, every such partition whose preferred replica can lead gets a
preferred election.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.ids import BrokerId
from raftka.common.metadata.image import MetadataImage, merge_partition_change
from raftka.common.metadata.model import NO_LEADER, PartitionView
from raftka.controller.control.errors import (
    ElectionNotNeededError,
    EligibleLeadersNotAvailableError,
    PreferredLeaderNotAvailableError,
)
from raftka.controller.control.partition_change import (
    AcceptableLeader,
    ElectionType,
    PartitionChangeBuilder,
    acceptable_leaders,
    find_partition,
)
from raftka.controller.control.result import ControllerResult
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.controller_pb2 import (
    ElectionType as WireElectionType,
)
from raftka.v1.controller_pb2 import (
    ElectLeadersRequest,
    ElectLeadersResponse,
    PartitionElectionResult,
    TopicElectionResult,
)
from raftka.v1.metadata_pb2 import MetadataRecord

DEFAULT_IMBALANCE_PERCENTAGE = 10
"""Kafka's leader.imbalance.per.broker.percentage."""
MAX_REBALANCE_ELECTIONS = 1000
"""Most partitions one rebalance pass moves (bounds the records of one entry)."""


def elect_leaders(
    image: MetadataImage, request: ElectLeadersRequest
) -> ControllerResult[ElectLeadersResponse]:
    """One result per named partition; with no names, every partition except those that
    needed no election."""
    if request.election_type not in WireElectionType.values():
        raise InvalidRequestError(
            f"election_type {request.election_type} is not PREFERRED (0) or UNCLEAN (1)"
        )
    unclean = request.election_type == WireElectionType.ELECTION_TYPE_UNCLEAN
    is_acceptable = acceptable_leaders(image)
    every = not request.topic_partitions
    records: list[MetadataRecord] = []
    results: dict[str, TopicElectionResult] = {}
    seen: set[tuple[str, int]] = set()
    for topic_name, partition_id in _named_partitions(image, request):
        result = PartitionElectionResult(partition=partition_id, leader=NO_LEADER, leader_epoch=-1)
        try:
            if (topic_name, partition_id) in seen:
                raise InvalidRequestError(
                    f"partition {topic_name}-{partition_id} appears more than once in the request"
                )
            seen.add((topic_name, partition_id))
            view = find_partition(image, topic_name, partition_id)
            result.leader, result.leader_epoch = view.state.leader, view.state.leader_epoch
            record = _elect(view, is_acceptable, unclean=unclean)
        except RaftkaError as e:
            if every and e.code == ErrorCode.ELECTION_NOT_NEEDED:
                continue
            result.error_code, result.error_message = e.code, e.message
        else:
            records.append(record)
            new = merge_partition_change(view.state, record.partition_change)
            result.leader, result.leader_epoch = new.leader, new.leader_epoch
            result.unclean = new.leader not in view.state.isr
        results.setdefault(topic_name, TopicElectionResult(topic=topic_name)).partitions.append(
            result
        )
    return ControllerResult(tuple(records), ElectLeadersResponse(results=list(results.values())))


def _elect(
    view: PartitionView, is_acceptable: AcceptableLeader, *, unclean: bool
) -> MetadataRecord:
    state, where = view.state, f"partition {view.topic_name}-{view.partition_id}"
    if not unclean:
        if state.leader == state.preferred_leader:
            raise ElectionNotNeededError(
                f"{where}: the preferred replica {state.preferred_leader} already leads"
            )
        record = preferred_election(view, is_acceptable)
        if record is None:
            raise PreferredLeaderNotAvailableError(
                f"{where}: the preferred replica {state.preferred_leader} is not in the ISR "
                f"{list(state.isr)} or not active"
            )
        return record
    if state.has_leader:
        raise ElectionNotNeededError(f"{where}: broker {state.leader} leads it")
    record = PartitionChangeBuilder(
        view.topic_id, view.partition_id, state, is_acceptable, unclean_allowed=True
    ).build()
    if record is None or record.partition_change.leader == NO_LEADER:
        raise EligibleLeadersNotAvailableError(
            f"{where}: none of the replicas {list(state.replicas)} is active"
        )
    return record


def preferred_election(
    view: PartitionView, is_acceptable: AcceptableLeader
) -> MetadataRecord | None:
    """The change that makes the preferred replica lead, or None when it cannot (or does)."""
    state = view.state
    record = PartitionChangeBuilder(
        view.topic_id, view.partition_id, state, is_acceptable, election=ElectionType.PREFERRED
    ).build()
    if record is None or record.partition_change.leader != state.preferred_leader:
        return None  # never a side effect other than the preferred leader
    return record


@dataclass(frozen=True, slots=True)
class LeaderMove:
    """One preferred election of a rebalance pass."""

    topic: str
    partition: int
    old_leader: BrokerId
    new_leader: BrokerId


def plan_leader_rebalance(
    image: MetadataImage,
    *,
    imbalance_percentage: int = DEFAULT_IMBALANCE_PERCENTAGE,
    max_elections: int = MAX_REBALANCE_ELECTIONS,
) -> ControllerResult[list[LeaderMove]]:
    """Preferred elections for the brokers whose leader imbalance exceeds the threshold."""
    preferred: dict[BrokerId, list[PartitionView]] = defaultdict(list)
    for view in image.partitions():
        preferred[view.state.preferred_leader].append(view)
    is_acceptable = acceptable_leaders(image)
    records: list[MetadataRecord] = []
    moves: list[LeaderMove] = []
    for broker_id in sorted(preferred):
        views = preferred[broker_id]
        imbalanced = [v for v in views if v.state.leader != broker_id]
        if not imbalanced or len(imbalanced) * 100 <= imbalance_percentage * len(views):
            continue
        for view in imbalanced:
            if len(records) >= max_elections:
                break
            record = preferred_election(view, is_acceptable)
            if record is not None:
                records.append(record)
                moves.append(
                    LeaderMove(view.topic_name, view.partition_id, view.state.leader, broker_id)
                )
    return ControllerResult(tuple(records), moves)


def _named_partitions(
    image: MetadataImage, request: ElectLeadersRequest
) -> Iterator[tuple[str, int]]:
    if not request.topic_partitions:
        for view in image.partitions():
            yield view.topic_name, view.partition_id
        return
    for named in request.topic_partitions:
        if named.partitions:
            for partition_id in named.partitions:
                yield named.topic, partition_id
            continue
        topic = image.topic(named.topic)
        if topic is None:
            yield named.topic, -1  # reported as unknown
            continue
        for partition_id in sorted(topic.partitions):
            yield named.topic, partition_id
