"""TxnOffsetCommit over the Kafka listener on a real group shard (pending until the marker,
a fenced producer, the ACL checks), and DescribeProducers on a partition's producer state."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.schema import nested, request_type
from raftka.broker.kafka.txn_admin import DESCRIBE_PRODUCERS_KEY, DescribeProducersHandler
from raftka.broker.kafka.txn_offsets import TXN_OFFSET_COMMIT_KEY, TxnOffsetCommitHandler
from raftka.broker.partition import NotLeaderOrFollowerError
from raftka.broker.producers.state import BatchMetadata, ProducerEntry, ProducerStateTable
from raftka.common.security.model import (
    OP_READ,
    OP_WRITE,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
)
from raftka.v1.common_pb2 import ErrorCode as WireCode
from tests.unit.broker.groups.support import ShardHarness
from tests.unit.broker.kafka.support import (
    ALICE,
    as_alice,
    backend,
    call,
    denying_guard,
    group_backend,
)

TXN = "tx"


def txn_commit(
    version: int, offsets: Mapping[tuple[str, int], int], *, producer: tuple[int, int] = (7, 0)
) -> Any:
    kind = request_type(TXN_OFFSET_COMMIT_KEY, version)
    topic_type = nested(kind, "TxnOffsetCommitRequestTopic")
    partition_type = nested(kind, "TxnOffsetCommitRequestPartition")
    names = dict.fromkeys(t for t, _ in offsets)
    return kind(
        transactional_id=TXN,
        group_id="g",
        producer_id=producer[0],
        producer_epoch=producer[1],
        topics=tuple(
            topic_type(
                name=name,
                partitions=tuple(
                    partition_type(partition_index=p, committed_offset=o, committed_metadata=None)
                    for (t, p), o in offsets.items()
                    if t == name
                ),
            )
            for name in names
        ),
    )


def codes(answer: Any) -> dict[tuple[str, int], ErrorCode]:
    return {(t.name, p.partition_index): p.error_code for t in answer.topics for p in t.partitions}


def commit(harness: ShardHarness, version: int, entity: Any, **guard: Any) -> Any:
    kafka, _ = group_backend(harness, **guard)
    return as_alice(call(TxnOffsetCommitHandler(kafka), TXN_OFFSET_COMMIT_KEY, version, entity))


def test_offsets_committed_in_a_transaction_wait_for_its_marker() -> None:
    harness = ShardHarness({"t": 4})
    answer = commit(harness, 3, txn_commit(3, {("t", 0): 11, ("t", 2): 12, ("nope", 0): 1}))
    assert codes(answer) == {
        ("t", 0): ErrorCode.none,
        ("t", 2): ErrorCode.none,
        ("nope", 0): ErrorCode.unknown_topic_or_partition,
    }
    assert harness.fetch("g", require_stable=True).error_code == WireCode.UNSTABLE_OFFSET_COMMIT
    harness.marker(7, committed=True)
    fetched = harness.fetch("g")
    assert {(t.name, p.partition): p.offset for t in fetched.topics for p in t.partitions} == {
        ("t", 0): 11,
        ("t", 2): 12,
    }


def test_a_fenced_producer_gets_invalid_producer_epoch_on_every_partition() -> None:
    harness = ShardHarness({"t": 4})
    assert codes(commit(harness, 0, txn_commit(0, {("t", 0): 1}, producer=(7, 1)))) == {
        ("t", 0): ErrorCode.none
    }
    stale = commit(harness, 3, txn_commit(3, {("t", 0): 2, ("t", 1): 2}, producer=(7, 0)))
    assert set(codes(stale).values()) == {ErrorCode.invalid_producer_epoch}


def test_a_member_commits_with_its_generation_and_a_stale_one_is_illegal() -> None:
    harness = ShardHarness({"t": 4})
    joined = harness.join("g", ("t",))
    entity = txn_commit(3, {("t", 0): 5})
    member = dataclasses.replace(
        entity, member_id=joined.member_id, generation_id=joined.member_epoch
    )
    assert codes(commit(harness, 3, member)) == {("t", 0): ErrorCode.none}
    stale = dataclasses.replace(member, generation_id=joined.member_epoch + 1)
    assert codes(commit(harness, 3, stale)) == {("t", 0): ErrorCode.illegal_generation}


def test_txn_offset_commit_needs_write_on_the_id_read_on_the_group_and_each_topic() -> None:
    harness = ShardHarness({"t": 4, "u": 2})
    entity = txn_commit(3, {("t", 0): 1, ("u", 1): 1})
    nothing = commit(harness, 3, entity, guard=denying_guard())
    assert set(codes(nothing).values()) == {ErrorCode.transactional_id_authorization_failed}
    write_id = (ALICE, OP_WRITE, RESOURCE_TRANSACTIONAL_ID, TXN)
    no_group = commit(harness, 3, entity, guard=denying_guard([write_id]))
    assert set(codes(no_group).values()) == {ErrorCode.group_authorization_failed}
    read_group = (ALICE, OP_READ, RESOURCE_GROUP, "g")
    read_t = (ALICE, OP_READ, RESOURCE_TOPIC, "t")
    one_topic = commit(harness, 3, entity, guard=denying_guard([write_id, read_group, read_t]))
    assert codes(one_topic) == {
        ("t", 0): ErrorCode.none,
        ("u", 1): ErrorCode.topic_authorization_failed,
    }


class FakeReplicas:
    """Leads ``t-0`` (with ``table``); ``t-1`` is led by broker 2."""

    def __init__(self, table: ProducerStateTable) -> None:
        self.partition = type("P", (), {"log": type("L", (), {"producer_state": table})()})()

    def leader_partition(self, topic: str, partition: int) -> Any:
        if (topic, partition) == ("t", 0):
            return self.partition
        raise NotLeaderOrFollowerError("led by broker 2", leader_id=2, leader_epoch=-1)


def describe_producers(**guard: Any) -> Any:
    table = ProducerStateTable(
        [
            ProducerEntry(
                5, 2, deque([BatchMetadata(0, 9, 100, 109, 1_700)]), txn_first_offset=100
            ),
            ProducerEntry(6, 0, coordinator_epoch=4),
        ]
    )
    kafka = dataclasses.replace(backend(**guard), replicas=FakeReplicas(table))  # type: ignore[arg-type]
    kind = request_type(DESCRIBE_PRODUCERS_KEY, 0)
    topic = nested(kind, "TopicRequest")
    entity = kind(topics=(topic(name="t", partition_indexes=(0, 1)),))
    return as_alice(call(DescribeProducersHandler(kafka), DESCRIBE_PRODUCERS_KEY, 0, entity))


def test_describe_producers_lists_the_leaders_producer_state() -> None:
    (topic,) = describe_producers().topics
    led, elsewhere = topic.partitions
    assert led.error_code == ErrorCode.none
    assert [
        (
            p.producer_id,
            p.producer_epoch,
            p.last_sequence,
            p.last_timestamp,
            p.coordinator_epoch,
            p.current_txn_start_offset,
        )
        for p in led.active_producers
    ] == [(5, 2, 9, 1_700, -1, 100), (6, 0, -1, -1, 4, -1)]
    assert elsewhere.error_code == ErrorCode.not_leader_or_follower
    assert elsewhere.active_producers == ()


def test_describe_producers_needs_read_on_the_topic() -> None:
    (topic,) = describe_producers(guard=denying_guard()).topics
    assert {p.error_code for p in topic.partitions} == {ErrorCode.topic_authorization_failed}
