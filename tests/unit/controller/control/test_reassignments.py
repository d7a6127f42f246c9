"""Partition reassignment: start, completion, replacement, cancel, validation, listing
(KIP-455)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from raftka.common.errors import UnknownTopicOrPartitionError
from raftka.common.ids import BrokerId
from raftka.controller.control.alter_partition import alter_partition
from raftka.controller.control.reassignments import (
    alter_partition_reassignments,
    list_partition_reassignments,
)
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.controller_pb2 import (
    AlterPartitionData,
    AlterPartitionReassignmentsRequest,
    AlterPartitionRequest,
    AlterPartitionTopic,
    BrokerEpochPair,
    ListPartitionReassignmentsRequest,
    ReassignablePartition,
    ReassignableTopic,
    TopicPartitions,
)

from .harness import Harness


def _setup() -> Harness:
    h = Harness()
    h.add_brokers([1, 2, 3, 4, 5])
    h.add_topic("t", [((1, 2, 3), (1, 2, 3), 1), ((1, 2, 3), (1, 2, 3), 1)])
    return h


def _reassign(
    h: Harness, *targets: tuple[int, Sequence[int] | None], topic: str = "t"
) -> list[int]:
    """``targets``: (partition, replicas) or (partition, None) to cancel; returns the codes."""
    request = AlterPartitionReassignmentsRequest(
        topics=[
            ReassignableTopic(
                name=topic,
                partitions=[
                    ReassignablePartition(partition=p, replicas=r or [], cancel=r is None)
                    for p, r in targets
                ],
            )
        ]
    )
    response = h.commit(alter_partition_reassignments(h.image, request))
    return [p.error_code for p in response.results[0].partitions]


def _expand(h: Harness, isr: Sequence[int], partition: int = 0) -> int:
    """The leader of t-``partition`` sets the ISR through AlterPartition."""
    state = h.partition("t", partition)
    request = AlterPartitionRequest(
        broker_id=state.leader,
        broker_epoch=h.epoch(state.leader),
        topics=[
            AlterPartitionTopic(
                topic_id="id-t",
                partitions=[
                    AlterPartitionData(
                        partition_index=partition,
                        leader_epoch=state.leader_epoch,
                        partition_epoch=state.partition_epoch,
                        new_isr_with_epochs=[
                            BrokerEpochPair(broker_id=b, broker_epoch=-1) for b in isr
                        ],
                    )
                ],
            )
        ],
    )
    return h.commit(alter_partition(h.image, request)).topics[0].partitions[0].error_code


def _ids(*ids: int) -> tuple[BrokerId, ...]:
    return tuple(BrokerId(i) for i in ids)


def test_start_writes_target_then_removing_with_adding_and_removing() -> None:
    h = _setup()
    before = h.partition("t", 0)
    assert _reassign(h, (0, [4, 2, 1])) == [ErrorCode.NONE]
    state = h.partition("t", 0)
    assert state.replicas == _ids(4, 2, 1, 3)
    assert state.adding_replicas == _ids(4) and state.removing_replicas == _ids(3)
    assert state.isr == _ids(1, 2, 3) and state.leader == 1
    assert state.leader_epoch == before.leader_epoch  # nobody left the replicas yet
    assert h.partition("t", 1) == before  # untouched


def test_completes_once_the_isr_holds_every_target_replica() -> None:
    h = _setup()
    _reassign(h, (0, [4, 2, 1]))
    epoch = h.partition("t", 0).leader_epoch
    assert _expand(h, [1, 2, 3, 4]) == ErrorCode.NONE
    state = h.partition("t", 0)
    assert state.replicas == _ids(4, 2, 1) and state.isr == _ids(1, 2, 4)
    assert state.adding_replicas == () and state.removing_replicas == ()
    assert state.leader == 1 and state.leader_epoch == epoch + 1


def test_growing_the_replication_factor() -> None:
    h = _setup()
    _reassign(h, (0, [1, 2, 3, 4, 5]))
    assert h.partition("t", 0).adding_replicas == _ids(4, 5)
    _expand(h, [1, 2, 3, 4])
    assert h.partition("t", 0).adding_replicas == _ids(4, 5)  # 5 not in sync yet
    _expand(h, [1, 2, 3, 4, 5])
    state = h.partition("t", 0)
    assert state.replicas == _ids(1, 2, 3, 4, 5) and state.adding_replicas == ()
    assert state.leader_epoch == 0  # no replica left


def test_shrinking_within_the_isr_completes_at_once_and_moves_a_removed_leader() -> None:
    h = _setup()
    assert _reassign(h, (0, [2, 3])) == [ErrorCode.NONE]
    state = h.partition("t", 0)
    assert state.replicas == _ids(2, 3) and state.isr == _ids(2, 3)
    assert state.adding_replicas == () and state.removing_replicas == ()
    assert state.leader == 2 and state.leader_epoch == 1


def test_same_replicas_is_a_no_op() -> None:
    h = _setup()
    before = h.partition("t", 0)
    assert _reassign(h, (0, [1, 2, 3])) == [ErrorCode.NONE]
    assert h.partition("t", 0) == before


def test_new_target_replaces_the_one_in_progress() -> None:
    h = _setup()
    _reassign(h, (0, [4, 2, 1]))  # replicas [4, 2, 1, 3]
    _expand(h, [1, 2, 3])
    _reassign(h, (0, [5, 1, 2]))
    state = h.partition("t", 0)
    # computed from the original [1, 2, 3]; 4 is dropped (not in sync, not in the target)
    assert state.replicas == _ids(5, 1, 2, 3)
    assert state.adding_replicas == _ids(5) and state.removing_replicas == _ids(3)
    assert state.isr == _ids(1, 2, 3)
    assert state.leader_epoch == 1  # 4 left the replica list


def test_cancel_reverts_to_the_original_replicas() -> None:
    h = _setup()
    _reassign(h, (0, [4, 5, 1]))  # replicas [4, 5, 1, 2, 3], adding [4, 5]
    _expand(h, [1, 2, 3, 4])
    assert _reassign(h, (0, None)) == [ErrorCode.NONE]
    state = h.partition("t", 0)
    assert state.replicas == _ids(1, 2, 3) and state.isr == _ids(1, 2, 3)
    assert state.adding_replicas == () and state.removing_replicas == ()
    assert state.leader == 1 and state.leader_epoch == 1
    assert (
        list_partition_reassignments(h.image, ListPartitionReassignmentsRequest()).reassignments
        == []
    )


def test_cancel_elects_a_new_leader_when_an_adding_replica_leads() -> None:
    h = _setup()
    _reassign(h, (0, [4, 1, 2, 3]))  # replicas [4, 1, 2, 3], adding [4]
    _expand(h, [1, 2, 4])  # 3 fell behind; 4 caught up... but 3 is a target: not done
    h.heartbeat(1, want_fence=True)  # leadership moves to 4, first in replica order
    assert h.partition("t", 0).leader == 4
    assert _reassign(h, (0, None)) == [ErrorCode.NONE]
    state = h.partition("t", 0)
    assert state.replicas == _ids(1, 2, 3) and state.leader == 2 and state.isr == _ids(2)


def test_cancel_refused_when_only_adding_replicas_are_in_sync() -> None:
    h = Harness()
    h.add_brokers([1, 2, 3])
    h.add_topic("t", [((1,), (1,), 1)])
    _reassign(h, (0, [2, 3, 1]))  # replicas [2, 3, 1], adding [2, 3]
    _expand(h, [1, 2])  # 3 not in sync yet: still in progress
    h.heartbeat(1, want_fence=True)  # ISR [2], led by 2: only an adding replica is in sync
    state = h.partition("t", 0)
    assert state.isr == _ids(2) and state.adding_replicas == _ids(2, 3)
    assert _reassign(h, (0, None)) == [ErrorCode.INVALID_REPLICA_ASSIGNMENT]
    assert h.partition("t", 0) == state


def test_cancel_without_a_reassignment() -> None:
    h = _setup()
    _reassign(h, (0, [2, 1]))  # completes at once
    assert h.partition("t", 0).adding_replicas == ()
    assert _reassign(h, (0, None)) == [ErrorCode.NO_REASSIGNMENT_IN_PROGRESS]


def test_validation_errors_are_per_partition() -> None:
    h = _setup()
    codes = _reassign(h, (0, []), (1, [1, 1]), (7, [1]))
    assert codes == [
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    ]
    assert _reassign(h, (0, [1, 9])) == [ErrorCode.INVALID_REPLICA_ASSIGNMENT]
    assert _reassign(h, (0, [1, -2])) == [ErrorCode.INVALID_REPLICA_ASSIGNMENT]
    assert _reassign(h, (0, None)) == [ErrorCode.NO_REASSIGNMENT_IN_PROGRESS]
    assert _reassign(h, (0, [4]), (0, [5])) == [ErrorCode.NONE, ErrorCode.INVALID_REQUEST]
    assert _reassign(h, (0, [1]), topic="nope") == [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]


def test_fenced_but_registered_brokers_may_be_targets() -> None:
    h = _setup()
    h.heartbeat(5, want_fence=True)
    assert _reassign(h, (0, [1, 2, 5])) == [ErrorCode.NONE]


def test_list_shows_reassignments_in_progress_with_their_isr() -> None:
    h = _setup()
    h.add_topic("u", [((1,), (1,), 1)])
    _reassign(h, (1, [4, 1, 2]))
    listed = list_partition_reassignments(h.image, ListPartitionReassignmentsRequest())
    (ongoing,) = listed.reassignments
    assert (ongoing.topic, ongoing.partition) == ("t", 1)
    assert list(ongoing.replicas) == [4, 1, 2, 3]
    assert list(ongoing.adding_replicas) == [4] and list(ongoing.removing_replicas) == [3]
    assert list(ongoing.isr) == [1, 2, 3] and ongoing.leader == 1
    named = ListPartitionReassignmentsRequest(
        topics=[TopicPartitions(topic="t", partitions=[0]), TopicPartitions(topic="u")]
    )
    assert list_partition_reassignments(h.image, named).reassignments == []
    with pytest.raises(UnknownTopicOrPartitionError):
        list_partition_reassignments(
            h.image, ListPartitionReassignmentsRequest(topics=[TopicPartitions(topic="x")])
        )
    with pytest.raises(UnknownTopicOrPartitionError):
        list_partition_reassignments(
            h.image,
            ListPartitionReassignmentsRequest(topics=[TopicPartitions(topic="t", partitions=[5])]),
        )
