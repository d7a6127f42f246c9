"""FindCoordinator over the Kafka listener: the gRPC lookup, answered with Kafka listeners,
one key (v0-v3) or a batch (v4+), refusals per key."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from raftka.broker.groups.placement import partition_for
from raftka.broker.kafka.coordinators import FIND_COORDINATOR_KEY, FindCoordinatorHandler
from raftka.common.security.model import OP_DESCRIBE, RESOURCE_GROUP
from tests.unit.broker.kafka.support import (
    ALICE,
    FakeImage,
    as_alice,
    backend,
    call,
    denying_guard,
    registration,
    request,
)

PARTITIONS = 4


@dataclass
class FakeTopic:
    """An internal topic: ``count`` partitions (None: not created yet), led by ``leaders``."""

    count: int | None = PARTITIONS
    leaders: dict[int, int] = field(default_factory=dict)
    ensured: int = 0

    def ensure(self) -> int | None:
        self.ensured += 1
        return self.count

    def leader_of(self, partition: int) -> int:
        return self.leaders.get(partition, -1)


def every_partition_led_by(broker_id: int) -> dict[int, int]:
    return dict.fromkeys(range(PARTITIONS), broker_id)


IMAGE = FakeImage(
    {
        1: registration(1, kafka_port=9093),
        2: registration(2, kafka_port=None),
        3: registration(3, kafka_port=9095, fenced=True),
    }
)


def find(version: int, handler: FindCoordinatorHandler, **values: Any) -> Any:
    entity = request(FIND_COORDINATOR_KEY, version, **values)
    return asyncio.run(call(handler, FIND_COORDINATOR_KEY, version, entity))


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_one_group_key_finds_its_partition_leader_by_its_kafka_listener(version: int) -> None:
    handler = FindCoordinatorHandler(
        backend(image=IMAGE, offsets_topic=FakeTopic(leaders=every_partition_led_by(1)))
    )
    answer = find(version, handler, key="orders-app")
    assert (answer.error_code, answer.node_id, answer.host, answer.port) == (
        ErrorCode.none,
        1,
        "host-1",
        9093,
    )


def test_a_batch_of_transactional_ids_is_answered_key_by_key() -> None:
    txn_topic = FakeTopic(leaders={partition_for("t-a", PARTITIONS): 1})
    handler = FindCoordinatorHandler(
        backend(image=IMAGE, offsets_topic=FakeTopic(), transaction_topic=txn_topic)
    )
    keys = ("t-a", "t-b", "")
    other = partition_for("t-b", PARTITIONS)
    assert other != partition_for("t-a", PARTITIONS), "the test needs two partitions"
    answer = find(4, handler, key_type=1, coordinator_keys=keys)
    by_key = {c.key: c for c in answer.coordinators}
    assert [c.key for c in answer.coordinators] == list(keys)
    assert (by_key["t-a"].node_id, by_key["t-a"].host, by_key["t-a"].port) == (1, "host-1", 9093)
    assert by_key["t-b"].error_code == ErrorCode.coordinator_not_available
    assert by_key["t-b"].node_id == -1 and by_key["t-b"].port == -1
    assert by_key[""].error_code != ErrorCode.none
    assert txn_topic.ensured == 1


@pytest.mark.parametrize("leader", [2, 3, 9])
def test_a_leader_kafka_clients_cannot_reach_is_coordinator_not_available(leader: int) -> None:
    """No Kafka listener (2), fenced (3), unknown (9)."""
    handler = FindCoordinatorHandler(
        backend(image=IMAGE, offsets_topic=FakeTopic(leaders=every_partition_led_by(leader)))
    )
    answer = find(3, handler, key="g")
    assert answer.error_code == ErrorCode.coordinator_not_available
    assert "no reachable leader" in answer.error_message


def test_while_the_internal_topic_is_created_every_key_waits() -> None:
    topic = FakeTopic(count=None)
    handler = FindCoordinatorHandler(backend(image=IMAGE, offsets_topic=topic))
    answer = find(5, handler, key_type=0, coordinator_keys=("a", "b"))
    assert [c.error_code for c in answer.coordinators] == [ErrorCode.coordinator_not_available] * 2
    assert topic.ensured == 1, "creation was asked for"


def test_a_key_type_not_served_and_too_many_keys_are_refused_per_key() -> None:
    handler = FindCoordinatorHandler(backend(image=IMAGE, offsets_topic=FakeTopic()))
    answer = find(4, handler, key_type=1, coordinator_keys=("t",))  # no transaction topic
    assert answer.coordinators[0].error_code == ErrorCode.invalid_request
    answer = find(5, handler, key_type=2, coordinator_keys=("s",))
    assert answer.coordinators[0].error_code == ErrorCode.invalid_request
    keys = tuple(f"g{i}" for i in range(10_001))
    answer = find(4, handler, key_type=0, coordinator_keys=keys)
    assert len(answer.coordinators) == len(keys)
    assert {c.error_code for c in answer.coordinators} == {ErrorCode.invalid_request}


def test_describe_on_the_group_is_checked_per_key() -> None:
    guard = denying_guard({(ALICE, OP_DESCRIBE, RESOURCE_GROUP, "billing")})
    handler = FindCoordinatorHandler(
        backend(
            image=IMAGE,
            guard=guard,
            offsets_topic=FakeTopic(leaders=every_partition_led_by(1)),
        )
    )
    entity = request(FIND_COORDINATOR_KEY, 4, key_type=0, coordinator_keys=("billing", "payroll"))
    answer = as_alice(call(handler, FIND_COORDINATOR_KEY, 4, entity))
    billing, payroll = answer.coordinators
    assert billing.error_code == ErrorCode.none and billing.node_id == 1
    assert payroll.error_code == ErrorCode.group_authorization_failed
    assert "may not DESCRIBE group 'payroll'" in payroll.error_message
