"""Create / delete / grow / describe topics."""

from __future__ import annotations

import random
import re

import pytest

from raftka.common.metadata.image import MetadataImage
from raftka.controller.control.result import ControllerResult
from raftka.controller.control.topics import TopicManager, describe_topics
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.controller_pb2 import (
    CreatePartitionsRequest,
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteTopicsRequest,
    DescribeTopicsRequest,
    NewTopic,
    PartitionCountUpdate,
)

from .harness import Harness

TOPIC_ID = re.compile(r"[A-Za-z0-9_-]{22}")


def _create(
    h: Harness, *topics: NewTopic, validate_only: bool = False
) -> ControllerResult[CreateTopicsResponse]:
    return h.topics.create_topics(
        h.image, CreateTopicsRequest(topics=topics, validate_only=validate_only)
    )


def test_create_topic_records_and_result() -> None:
    h = Harness()
    h.add_brokers([1, 2, 3])
    result = _create(
        h,
        NewTopic(
            name="orders",
            num_partitions=3,
            replication_factor=2,
            configs={"retention.ms": " 1000", "cleanup.policy": "delete"},
        ),
    )
    (topic_result,) = result.response.results
    assert topic_result.error_code == ErrorCode.NONE
    assert (topic_result.name, topic_result.num_partitions, topic_result.replication_factor) == (
        "orders",
        3,
        2,
    )
    assert TOPIC_ID.fullmatch(topic_result.topic_id)
    kinds = [r.WhichOneof("record") for r in result.records]
    assert kinds == ["topic", "partition", "partition", "partition", "config", "config"]
    assert result.records[0].topic.topic_id == topic_result.topic_id
    for record in result.records[1:4]:
        p = record.partition
        assert p.topic_id == topic_result.topic_id
        assert len(p.replicas) == 2 and list(p.isr) == list(p.replicas)
        assert p.leader == p.replicas[0]
        assert (p.leader_epoch, p.partition_epoch, p.leader_recovery_state) == (0, 0, 0)
    assert [r.partition.partition_id for r in result.records[1:4]] == [0, 1, 2]
    configs = {r.config.name: r.config.value for r in result.records[4:]}
    assert configs == {"retention.ms": "1000", "cleanup.policy": "delete"}
    h.commit(result)
    assert h.image.topic_configs("orders") == configs
    assert h.image.topic("orders") is not None


def test_defaults_for_zero_counts() -> None:
    h = Harness()
    h.add_brokers([1, 2])
    result = _create(h, NewTopic(name="t"))
    (r,) = result.response.results
    assert (r.error_code, r.num_partitions, r.replication_factor) == (ErrorCode.NONE, 1, 1)
    manager = TopicManager(random.Random(1), default_num_partitions=4, default_replication_factor=2)
    result = manager.create_topics(h.image, CreateTopicsRequest(topics=[NewTopic(name="u")]))
    (r,) = result.response.results
    assert (r.num_partitions, r.replication_factor) == (4, 2)


def test_validate_only_reports_but_writes_nothing() -> None:
    h = Harness()
    h.add_brokers([1])
    result = _create(h, NewTopic(name="t", num_partitions=2), validate_only=True)
    assert result.records == ()
    (r,) = result.response.results
    assert r.error_code == ErrorCode.NONE and TOPIC_ID.fullmatch(r.topic_id)


BAD_TOPICS = [
    (NewTopic(name=""), ErrorCode.INVALID_TOPIC_EXCEPTION, "empty"),
    (NewTopic(name="."), ErrorCode.INVALID_TOPIC_EXCEPTION, "cannot be '.'"),
    (NewTopic(name=".."), ErrorCode.INVALID_TOPIC_EXCEPTION, "cannot be '..'"),
    (NewTopic(name="x" * 250), ErrorCode.INVALID_TOPIC_EXCEPTION, "250 characters"),
    (NewTopic(name="a/b"), ErrorCode.INVALID_TOPIC_EXCEPTION, "'/'"),
    (NewTopic(name="existing"), ErrorCode.TOPIC_ALREADY_EXISTS, "already exists"),
    (
        NewTopic(name="exist.ing"),
        ErrorCode.INVALID_TOPIC_EXCEPTION,
        "collides with topic 'exist_ing'",
    ),
    (NewTopic(name="t", num_partitions=-1), ErrorCode.INVALID_PARTITIONS, "got -1"),
    (NewTopic(name="t", num_partitions=10_001), ErrorCode.INVALID_PARTITIONS, "limit of 10000"),
    (NewTopic(name="t", replication_factor=-2), ErrorCode.INVALID_REPLICATION_FACTOR, "got -2"),
    (
        NewTopic(name="t", replication_factor=3),
        ErrorCode.INVALID_REPLICATION_FACTOR,
        "replication factor 3 is larger than the number of available brokers (2 ",
    ),
    (NewTopic(name="t", configs={"retention.hours": "1"}), ErrorCode.INVALID_CONFIG, "unknown"),
    (NewTopic(name="t", configs={"segment.bytes": "1"}), ErrorCode.INVALID_CONFIG, ">= 14"),
    (
        NewTopic(name="t", replication_factor=2, configs={"min.insync.replicas": "3"}),
        ErrorCode.INVALID_CONFIG,
        "min.insync.replicas 3 is larger than the replication factor 2",
    ),
]


@pytest.mark.parametrize(("topic", "code", "fragment"), BAD_TOPICS)
def test_bad_topic_gets_an_error_and_no_records_while_others_proceed(
    topic: NewTopic, code: int, fragment: str
) -> None:
    h = Harness()
    h.add_brokers([1, 2])
    h.register(3)  # fenced: does not count towards the replication factor
    h.create_topic("existing", 1, 1)
    h.create_topic("exist_ing", 1, 1)
    before = h.image.copy()
    result = _create(h, NewTopic(name="good1"), topic, NewTopic(name="good2"))
    good1, bad, good2 = result.response.results
    assert (bad.name, bad.error_code) == (topic.name, code)
    assert fragment in bad.error_message and bad.topic_id == ""
    assert good1.error_code == good2.error_code == ErrorCode.NONE
    names = [r.topic.name for r in result.records if r.WhichOneof("record") == "topic"]
    assert names == ["good1", "good2"]
    touched = {
        r.partition.topic_id for r in result.records if r.WhichOneof("record") == "partition"
    }
    assert touched == {good1.topic_id, good2.topic_id}
    assert h.image == before


def test_duplicates_within_a_request_are_all_rejected() -> None:
    h = Harness()
    h.add_brokers([1])
    result = _create(h, NewTopic(name="d"), NewTopic(name="ok"), NewTopic(name="d"))
    codes = [(r.name, r.error_code) for r in result.response.results]
    assert codes == [
        ("d", ErrorCode.INVALID_REQUEST),
        ("ok", ErrorCode.NONE),
        ("d", ErrorCode.INVALID_REQUEST),
    ]
    assert "appears 2 times" in result.response.results[0].error_message
    assert [r.topic.name for r in result.records if r.WhichOneof("record") == "topic"] == ["ok"]


def test_colliding_names_within_a_request() -> None:
    h = Harness()
    h.add_brokers([1])
    result = _create(h, NewTopic(name="a.b"), NewTopic(name="a_b"))
    assert [r.error_code for r in result.response.results] == [
        ErrorCode.NONE,
        ErrorCode.INVALID_TOPIC_EXCEPTION,
    ]


def test_isr_holds_only_active_replicas_and_leader_is_first() -> None:
    h = Harness()
    h.add_brokers([1, 2, 3])
    h.create_topic("t", 6, 3)
    for view in h.image.partitions():
        assert view.state.isr == view.state.replicas
        assert view.state.leader == view.state.replicas[0]
    assert len(set(h.leaders("t"))) == 3


def test_topic_ids_are_unique_and_deterministic() -> None:
    def ids(seed: int) -> list[str]:
        h = Harness(seed)
        h.add_brokers([1])
        result = _create(h, *(NewTopic(name=f"t{i}") for i in range(50)))
        return [r.topic_id for r in result.response.results]

    assert ids(3) == ids(3)
    assert ids(3) != ids(4)
    assert len(set(ids(3))) == 50
    assert all(TOPIC_ID.fullmatch(i) and not i.startswith("-") for i in ids(3))


def test_delete_topics() -> None:
    h = Harness()
    h.add_brokers([1])
    topic_id = h.create_topic("a", 2, 1, {"retention.ms": "5"})
    h.create_topic("b", 1, 1)
    result = h.topics.delete_topics(h.image, DeleteTopicsRequest(names=["a", "missing", "b", "b"]))
    assert [(r.name, r.error_code) for r in result.response.results] == [
        ("a", ErrorCode.NONE),
        ("missing", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("b", ErrorCode.INVALID_REQUEST),
        ("b", ErrorCode.INVALID_REQUEST),
    ]
    assert [r.remove_topic.topic_id for r in result.records] == [topic_id]
    h.commit(result)
    assert h.image.topic_names() == ["b"]
    assert h.image.topic_configs("a") == {}


def test_create_partitions_grows_with_the_topic_replication_factor() -> None:
    h = Harness()
    h.add_brokers([1, 2, 3])
    topic_id = h.create_topic("t", 2, 2)
    result = h.topics.create_partitions(
        h.image, CreatePartitionsRequest(topics=[PartitionCountUpdate(name="t", total_count=5)])
    )
    assert result.response.results[0].error_code == ErrorCode.NONE
    assert [r.partition.partition_id for r in result.records] == [2, 3, 4]
    assert all(r.partition.topic_id == topic_id for r in result.records)
    h.commit(result)
    topic = h.image.topic("t")
    assert topic is not None and sorted(topic.partitions) == [0, 1, 2, 3, 4]
    assert all(
        len(p.replicas) == 2 and p.leader == p.replicas[0] for p in topic.partitions.values()
    )


@pytest.mark.parametrize(
    ("update", "code", "fragment"),
    [
        (
            PartitionCountUpdate(name="t", total_count=2),
            ErrorCode.INVALID_PARTITIONS,
            "must be larger",
        ),
        (
            PartitionCountUpdate(name="t", total_count=1),
            ErrorCode.INVALID_PARTITIONS,
            "cannot be removed",
        ),
        (PartitionCountUpdate(name="t", total_count=20_000), ErrorCode.INVALID_PARTITIONS, "limit"),
        (
            PartitionCountUpdate(name="nope", total_count=3),
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            "'nope'",
        ),
        (
            PartitionCountUpdate(name="wide", total_count=3),
            ErrorCode.INVALID_REPLICATION_FACTOR,
            "larger",
        ),
    ],
)
def test_create_partitions_errors_write_nothing(
    update: PartitionCountUpdate, code: int, fragment: str
) -> None:
    h = Harness()
    h.add_brokers([1, 2])
    h.create_topic("t", 2, 1)
    h.create_topic("wide", 1, 2)
    h.create_topic("other", 1, 1)
    h.heartbeat(2, want_fence=True)
    result = h.topics.create_partitions(
        h.image,
        CreatePartitionsRequest(topics=[update, PartitionCountUpdate(name="other", total_count=2)]),
    )
    bad, good = result.response.results
    assert bad.error_code == code and fragment in bad.error_message
    assert good.error_code == ErrorCode.NONE
    other = h.image.topic("other")
    assert other is not None
    assert [r.partition.topic_id for r in result.records] == [other.topic_id]


def test_create_partitions_validate_only_and_duplicates() -> None:
    h = Harness()
    h.add_brokers([1])
    h.create_topic("t", 1, 1)
    result = h.topics.create_partitions(
        h.image,
        CreatePartitionsRequest(
            topics=[PartitionCountUpdate(name="t", total_count=3)], validate_only=True
        ),
    )
    assert result.records == () and result.response.results[0].error_code == ErrorCode.NONE
    result = h.topics.create_partitions(
        h.image,
        CreatePartitionsRequest(
            topics=[
                PartitionCountUpdate(name="t", total_count=3),
                PartitionCountUpdate(name="t", total_count=4),
            ]
        ),
    )
    assert result.records == ()
    assert [r.error_code for r in result.response.results] == [ErrorCode.INVALID_REQUEST] * 2


def test_describe_topics() -> None:
    h = Harness()
    h.add_brokers([1, 2])
    topic_id = h.create_topic("b", 2, 2, {"retention.ms": "7"})
    h.create_topic("a", 1, 1)
    everything = describe_topics(h.image, DescribeTopicsRequest())
    assert [t.name for t in everything.topics] == ["a", "b"]
    response = describe_topics(h.image, DescribeTopicsRequest(names=["b", "zz"]))
    b, zz = response.topics
    assert (b.topic_id, b.error_code, dict(b.configs)) == (
        topic_id,
        ErrorCode.NONE,
        {"retention.ms": "7"},
    )
    assert [p.partition for p in b.partitions] == [0, 1]
    state = h.image.partition(topic_id, 1)
    assert state is not None
    p1 = b.partitions[1]
    assert (p1.leader, list(p1.replicas), list(p1.isr)) == (
        state.leader,
        list(state.replicas),
        list(state.isr),
    )
    assert zz.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and "'zz'" in zz.error_message
    assert describe_topics(MetadataImage(), DescribeTopicsRequest()).topics == []
