"""CreatePartitions and ElectLeaders over the Kafka listener: the forward to the controller,
per-topic and per-partition refusals, and the answers at every served version."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from raftka.broker.kafka.partitions_admin import (
    CREATE_PARTITIONS_KEY,
    ELECT_LEADERS_KEY,
    CreatePartitionsHandler,
    ElectLeadersHandler,
)
from raftka.common import limits
from raftka.common.errors import InvalidRequestError
from raftka.common.security.model import OP_ALTER, RESOURCE_TOPIC
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
    versions,
)


def grow(version: int, *topics: tuple[str, int, Any]) -> Any:
    return request(
        CREATE_PARTITIONS_KEY,
        version,
        topics=tuple(
            part(
                CREATE_PARTITIONS_KEY,
                version,
                "CreatePartitionsTopic",
                name=name,
                count=count,
                assignments=assignments,
            )
            for name, count, assignments in topics
        ),
        timeout=datetime.timedelta(seconds=30),
        validate_only=False,
    )


@pytest.mark.parametrize("version", versions(0, 3))
def test_create_partitions_forwards_each_topic_once(version: int) -> None:
    controller = FakeController(
        create_partitions=[
            cpb.TopicResult(name="a"),
            cpb.TopicResult(
                name="b", error_code=cmn.INVALID_PARTITIONS, error_message="must be larger than 4"
            ),
        ]
    )
    assignment = part(CREATE_PARTITIONS_KEY, version, "CreatePartitionsAssignment", broker_ids=(1,))
    answer = run_as(
        ALICE,
        CreatePartitionsHandler(backend(controller))(
            grow(
                version,
                ("a", 6, None),
                ("b", 2, None),
                ("dup", 3, None),
                ("dup", 4, None),
                ("manual", 2, (assignment,)),
            ),
            context(CREATE_PARTITIONS_KEY, version),
        ),
    )
    encodes(answer)
    ((_, (asked,), kwargs),) = controller.calls
    assert asked == {"a": 6, "b": 2} and kwargs == {"validate_only": False}
    results = {r.name: r for r in answer.results}
    assert list(results) == ["a", "b", "dup", "manual"]
    assert results["a"].error_code == ErrorCode.none
    assert results["b"].error_code == ErrorCode.invalid_partitions
    assert results["dup"].error_code == ErrorCode.invalid_request
    assert results["manual"].error_code == ErrorCode.invalid_request
    assert "assignments" in (results["manual"].error_message or "")


def test_create_partitions_needs_alter_on_the_topic() -> None:
    controller = FakeController(create_partitions=[cpb.TopicResult(name="mine")])
    guard = denying_guard((ALICE, OP_ALTER, RESOURCE_TOPIC, "mine"))
    answer = run_as(
        ALICE,
        CreatePartitionsHandler(backend(controller, guard=guard))(
            grow(3, ("mine", 2, None), ("theirs", 2, None)), context(CREATE_PARTITIONS_KEY, 3)
        ),
    )
    assert [(r.name, r.error_code) for r in answer.results] == [
        ("mine", ErrorCode.none),
        ("theirs", ErrorCode.topic_authorization_failed),
    ]
    assert controller.calls[0][1][0] == {"mine": 2}


def elect(version: int, topics: dict[str, tuple[int, ...]] | None, election: int = 0) -> Any:
    return request(
        ELECT_LEADERS_KEY,
        version,
        election_type=election,
        topic_partitions=None
        if topics is None
        else tuple(
            part(ELECT_LEADERS_KEY, version, "TopicPartitions", topic=t, partitions=p)
            for t, p in topics.items()
        ),
    )


@pytest.mark.parametrize("version", versions(0, 2))
def test_elect_leaders_forwards_the_partitions_and_maps_the_results(version: int) -> None:
    controller = FakeController(
        elect_leaders=[
            cpb.TopicElectionResult(
                topic="t",
                partitions=[
                    cpb.PartitionElectionResult(partition=0, leader=2),
                    cpb.PartitionElectionResult(
                        partition=1,
                        error_code=cmn.ELECTION_NOT_NEEDED,
                        error_message="already leads",
                    ),
                ],
            )
        ]
    )
    answer = run_as(
        ALICE,
        ElectLeadersHandler(backend(controller))(
            elect(version, {"t": (0, 1)}, election=1), context(ELECT_LEADERS_KEY, version)
        ),
    )
    encodes(answer)
    ((_, (election, named), _),) = controller.calls
    assert named == [("t", 0), ("t", 1)]
    assert election == (1 if version >= 1 else 0)  # v0 knows only preferred elections
    (topic,) = answer.replica_election_results
    assert [(p.partition_id, p.error_code) for p in topic.partition_result] == [
        (0, ErrorCode.none),
        (1, ErrorCode.election_not_needed),
    ]


def test_elect_leaders_for_every_partition_or_none() -> None:
    controller = FakeController(elect_leaders=[])
    handler = ElectLeadersHandler(backend(controller))
    run_as(ALICE, handler(elect(2, None), context(ELECT_LEADERS_KEY, 2)))
    # An empty list names no partition: nothing is elected (the controller reads empty as all).
    answer = run_as(ALICE, handler(elect(2, {}), context(ELECT_LEADERS_KEY, 2)))
    assert [c[1] for c in controller.calls] == [(0, [])]
    assert answer.error_code == ErrorCode.none and answer.replica_election_results == ()


def test_elect_leaders_needs_alter_on_the_cluster() -> None:
    controller = FakeController(elect_leaders=[])
    answer = run_as(
        ALICE,
        ElectLeadersHandler(backend(controller, guard=denying_guard()))(
            elect(2, {"t": (0, 1)}), context(ELECT_LEADERS_KEY, 2)
        ),
    )
    assert controller.calls == []
    assert answer.error_code == ErrorCode.cluster_authorization_failed
    assert [p.error_code for p in answer.replica_election_results[0].partition_result] == [
        ErrorCode.cluster_authorization_failed
    ] * 2


def test_elect_leaders_whole_request_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_ITEMS_PER_REQUEST", 3)
    failing = FakeController(elect_leaders=InvalidRequestError("election_type 5 is unknown"))
    answer = run_as(
        ALICE,
        ElectLeadersHandler(backend(failing))(
            elect(2, {"t": (0,)}, election=5), context(ELECT_LEADERS_KEY, 2)
        ),
    )
    assert answer.error_code == ErrorCode.invalid_request
    assert answer.replica_election_results[0].partition_result[0].error_code == (
        ErrorCode.invalid_request
    )
    idle = FakeController(elect_leaders=[])
    too_many = {"t": tuple(range(4))}
    answer = run_as(
        ALICE, ElectLeadersHandler(backend(idle))(elect(2, too_many), context(ELECT_LEADERS_KEY, 2))
    )
    assert idle.calls == [] and answer.error_code == ErrorCode.invalid_request
    assert answer.replica_election_results == ()
