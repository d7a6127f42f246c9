"""Alter/ListPartitionReassignments over the Kafka listener."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.reassignments import (
    ALTER_PARTITION_REASSIGNMENTS_KEY,
    LIST_PARTITION_REASSIGNMENTS_KEY,
    AlterPartitionReassignmentsHandler,
    ListPartitionReassignmentsHandler,
)
from raftka.v1 import common_pb2 as cmn
from raftka.v1 import controller_pb2 as cpb
from tests.unit.broker.kafka.admin_fakes import (
    ALICE,
    FakeController,
    backend,
    context,
    denying_guard,
    encodes,
    part,
    request,
    run_as,
)

ALTER, LIST = ALTER_PARTITION_REASSIGNMENTS_KEY, LIST_PARTITION_REASSIGNMENTS_KEY


def reassign(*partitions: tuple[str, int, tuple[int, ...] | None]) -> Any:
    topics: dict[str, list[Any]] = {}
    for topic, index, replicas in partitions:
        topics.setdefault(topic, []).append(
            part(ALTER, 0, "ReassignablePartition", partition_index=index, replicas=replicas)
        )
    return request(
        ALTER,
        0,
        topics=tuple(
            part(ALTER, 0, "ReassignableTopic", name=n, partitions=tuple(p))
            for n, p in topics.items()
        ),
    )


def test_alter_reassignments_forwards_targets_and_cancels() -> None:
    controller = FakeController(
        alter_partition_reassignments=[
            cpb.ReassignableTopicResult(
                name="t",
                partitions=[
                    cpb.ReassignablePartitionResult(partition=0),
                    cpb.ReassignablePartitionResult(
                        partition=1, error_code=cmn.NO_REASSIGNMENT_IN_PROGRESS
                    ),
                ],
            )
        ]
    )
    answer = run_as(
        ALICE,
        AlterPartitionReassignmentsHandler(backend(controller))(
            reassign(("t", 0, (2, 3)), ("t", 1, None), ("t", 2, (1,)), ("t", 2, (2,))),
            context(ALTER, 0),
        ),
    )
    encodes(answer)
    ((_, (targets,), _),) = controller.calls
    assert targets == {("t", 0): [2, 3], ("t", 1): None}
    (topic,) = answer.responses
    assert [(p.partition_index, p.error_code) for p in topic.partitions] == [
        (0, ErrorCode.none),
        (1, ErrorCode.no_reassignment_in_progress),
        (2, ErrorCode.invalid_request),
    ]


def test_reassignments_need_cluster_permissions() -> None:
    controller = FakeController(alter_partition_reassignments=[], list_partition_reassignments=[])
    guard = denying_guard()
    answer = run_as(
        ALICE,
        AlterPartitionReassignmentsHandler(backend(controller, guard=guard))(
            reassign(("t", 0, (2,))), context(ALTER, 0)
        ),
    )
    assert answer.error_code == ErrorCode.cluster_authorization_failed
    assert answer.responses[0].partitions[0].error_code == ErrorCode.cluster_authorization_failed
    listed = run_as(
        ALICE,
        ListPartitionReassignmentsHandler(backend(controller, guard=guard))(
            request(LIST, 0, topics=None), context(LIST, 0)
        ),
    )
    assert listed.error_code == ErrorCode.cluster_authorization_failed
    assert controller.calls == []


def test_list_reassignments_keeps_the_partitions_asked_for() -> None:
    ongoing = [
        cpb.OngoingReassignment(
            topic="t", partition=p, replicas=[1, 2, 3], adding_replicas=[3], removing_replicas=[1]
        )
        for p in (0, 1)
    ]
    controller = FakeController(list_partition_reassignments=ongoing)
    handler = ListPartitionReassignmentsHandler(backend(controller))
    everything = run_as(ALICE, handler(request(LIST, 0, topics=None), context(LIST, 0)))
    encodes(everything)
    assert [p.partition_index for p in everything.topics[0].partitions] == [0, 1]
    asked = request(
        LIST,
        0,
        topics=(
            part(LIST, 0, "ListPartitionReassignmentsTopics", name="t", partition_indexes=(1,)),
            part(LIST, 0, "ListPartitionReassignmentsTopics", name="u", partition_indexes=()),
        ),
    )
    some = run_as(ALICE, handler(asked, context(LIST, 0)))
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in some.topics] == [
        ("t", [1])
    ]
    assert some.topics[0].partitions[0].adding_replicas == (3,)
    assert [c[1] for c in controller.calls] == [([],), (["t"],)]
