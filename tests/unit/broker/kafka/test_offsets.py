"""OffsetCommit and OffsetFetch over the Kafka listener, on a real shard: simple and member
commits, Kafka's codes per version, coordinator errors per partition or group, several groups
per fetch, require_stable, and the ACL checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from raftka.broker.kafka.offsets import (
    OFFSET_COMMIT_KEY,
    OFFSET_FETCH_KEY,
    OffsetCommitHandler,
    OffsetFetchHandler,
)
from raftka.broker.kafka.schema import nested, request_type
from raftka.common.group_errors import NotCoordinatorError
from raftka.common.security.model import OP_DESCRIBE, OP_READ, RESOURCE_GROUP, RESOURCE_TOPIC
from tests.unit.broker.groups.support import ShardHarness
from tests.unit.broker.kafka.support import ALICE, as_alice, call, denying_guard, group_backend

Offsets = Mapping[tuple[str, int], int]


def commit_request(
    version: int, group: str, offsets: Offsets, *, member: str = "", epoch: int = -1
) -> Any:
    kind = request_type(OFFSET_COMMIT_KEY, version)
    topic_type = nested(kind, "OffsetCommitRequestTopic")
    partition_type = nested(kind, "OffsetCommitRequestPartition")
    names = dict.fromkeys(t for t, _ in offsets)
    topics = tuple(
        topic_type(
            name=name,
            partitions=tuple(
                partition_type(partition_index=p, committed_offset=o, committed_metadata="m")
                for (t, p), o in offsets.items()
                if t == name
            ),
        )
        for name in names
    )
    fields: dict[str, Any] = {"group_id": group, "member_id": member, "topics": topics}
    fields["generation_id_or_member_epoch"] = epoch
    return kind(**fields)


def fetch_request(version: int, groups: Mapping[str, Mapping[str, list[int]] | None]) -> Any:
    kind = request_type(OFFSET_FETCH_KEY, version)
    if version < 8:
        ((group, topics),) = groups.items()
        topic_type = nested(kind, "OffsetFetchRequestTopic")
        shown = (
            None
            if topics is None
            else tuple(topic_type(name=t, partition_indexes=tuple(ps)) for t, ps in topics.items())
        )
        return kind(
            group_id=group, topics=shown, **({"require_stable": True} if version >= 7 else {})
        )
    group_type = nested(kind, "OffsetFetchRequestGroup")
    topic_type = nested(kind, "OffsetFetchRequestTopics")
    return kind(
        require_stable=True,
        groups=tuple(
            group_type(
                group_id=g,
                topics=None
                if ts is None
                else tuple(topic_type(name=t, partition_indexes=tuple(ps)) for t, ps in ts.items()),
            )
            for g, ts in groups.items()
        ),
    )


def codes(answer: Any) -> dict[tuple[str, int], ErrorCode]:
    return {(t.name, p.partition_index): p.error_code for t in answer.topics for p in t.partitions}


def offsets_of(topics: Any) -> dict[tuple[str, int], tuple[int, ErrorCode]]:
    return {
        (t.name, p.partition_index): (p.committed_offset, p.error_code)
        for t in topics
        for p in t.partitions
    }


class Kafka:
    def __init__(self, harness: ShardHarness | None = None, **guard: Any) -> None:
        self.harness = harness or ShardHarness({"t": 6, "u": 2})
        self.backend, self.coordinator = group_backend(self.harness, **guard)
        self.commit_handler = OffsetCommitHandler(self.backend)
        self.fetch_handler = OffsetFetchHandler(self.backend)

    def commit(self, version: int, group: str, offsets: Offsets, **member: Any) -> Any:
        entity = commit_request(version, group, offsets, **member)
        return as_alice(call(self.commit_handler, OFFSET_COMMIT_KEY, version, entity))

    def fetch(self, version: int, groups: Mapping[str, Mapping[str, list[int]] | None]) -> Any:
        entity = fetch_request(version, groups)
        return as_alice(call(self.fetch_handler, OFFSET_FETCH_KEY, version, entity))


@pytest.mark.parametrize("version", [2, 7, 9])
def test_a_simple_commit_is_fetched_back(version: int) -> None:
    kafka = Kafka()
    answer = kafka.commit(version, "g", {("t", 0): 10, ("t", 5): 20, ("nope", 0): 1, ("u", 2): 3})
    assert codes(answer) == {
        ("t", 0): ErrorCode.none,
        ("t", 5): ErrorCode.none,
        ("nope", 0): ErrorCode.unknown_topic_or_partition,
        ("u", 2): ErrorCode.unknown_topic_or_partition,
    }
    fetched = kafka.fetch(7, {"g": {"t": [0, 1, 5]}})
    assert fetched.error_code == ErrorCode.none
    assert offsets_of(fetched.topics) == {
        ("t", 0): (10, ErrorCode.none),
        ("t", 1): (-1, ErrorCode.none),
        ("t", 5): (20, ErrorCode.none),
    }


def test_fetch_v8_answers_several_groups_and_null_topics_means_all() -> None:
    kafka = Kafka()
    kafka.commit(8, "g1", {("t", 1): 5})
    kafka.commit(8, "g2", {("u", 0): 7, ("t", 2): 8})
    answer = kafka.fetch(9, {"g1": {"t": [1]}, "g2": None, "g3": None})
    by_group = {g.group_id: g for g in answer.groups}
    assert offsets_of(by_group["g1"].topics) == {("t", 1): (5, ErrorCode.none)}
    assert offsets_of(by_group["g2"].topics) == {
        ("t", 2): (8, ErrorCode.none),
        ("u", 0): (7, ErrorCode.none),
    }
    assert by_group["g3"].topics == () and by_group["g3"].error_code == ErrorCode.none


def test_a_member_commits_with_its_epoch_and_old_versions_get_illegal_generation() -> None:
    harness = ShardHarness({"t": 6})
    joined = harness.join("g", ("t",))
    kafka = Kafka(harness)
    member, epoch = joined.member_id, joined.member_epoch
    ok = kafka.commit(9, "g", {("t", 0): 4}, member=member, epoch=epoch)
    assert codes(ok) == {("t", 0): ErrorCode.none}
    stale = kafka.commit(9, "g", {("t", 0): 5}, member=member, epoch=epoch + 1)
    assert codes(stale) == {("t", 0): ErrorCode.stale_member_epoch}
    old = kafka.commit(8, "g", {("t", 0): 5}, member=member, epoch=epoch + 1)
    assert codes(old) == {("t", 0): ErrorCode.illegal_generation}
    simple = kafka.commit(9, "g", {("t", 0): 5})
    assert codes(simple) == {("t", 0): ErrorCode.unknown_member_id}
    assert harness.fetch("g").topics[0].partitions[0].offset == 4, "no refused commit landed"
    missing = kafka.commit(8, "no-such-group", {("t", 0): 5}, member="m", epoch=3)
    assert codes(missing) == {("t", 0): ErrorCode.illegal_generation}


def test_coordinator_errors_land_on_every_partition_or_on_the_group() -> None:
    kafka = Kafka()
    kafka.coordinator.error = NotCoordinatorError("not here")
    answer = kafka.commit(9, "g", {("t", 0): 1, ("t", 1): 2})
    assert set(codes(answer).values()) == {ErrorCode.not_coordinator}
    v7 = kafka.fetch(7, {"g": {"t": [0]}})
    assert v7.error_code == ErrorCode.not_coordinator and v7.topics == ()
    v1 = kafka.fetch(1, {"g": {"t": [0, 1]}})
    assert offsets_of(v1.topics) == {
        ("t", 0): (-1, ErrorCode.not_coordinator),
        ("t", 1): (-1, ErrorCode.not_coordinator),
    }
    v9 = kafka.fetch(9, {"g": None})
    assert v9.groups[0].error_code == ErrorCode.not_coordinator


def test_bad_group_ids_and_empty_requests_are_answered_not_dropped() -> None:
    kafka = Kafka()
    assert codes(kafka.commit(9, "", {("t", 0): 1})) == {("t", 0): ErrorCode.invalid_group_id}
    assert kafka.commit(9, "g", {}).topics == ()
    assert kafka.fetch(7, {"x" * 300: None}).error_code == ErrorCode.invalid_group_id
    assert kafka.fetch(1, {"g": {}}).topics == ()


def test_require_stable_answers_unstable_offset_commit_on_the_pending_partition() -> None:
    harness = ShardHarness({"t": 6})
    harness.txn_commit("g", {("t", 3): 9})
    kafka = Kafka(harness)
    answer = kafka.fetch(7, {"g": {"t": [3]}})
    assert answer.error_code == ErrorCode.none
    assert offsets_of(answer.topics) == {("t", 3): (-1, ErrorCode.unstable_offset_commit)}
    harness.marker(7, committed=True)
    assert offsets_of(kafka.fetch(9, {"g": {"t": [3]}}).groups[0].topics) == {
        ("t", 3): (9, ErrorCode.none)
    }


def test_commits_need_read_on_the_group_and_topic_and_fetches_describe() -> None:
    guard = denying_guard(
        {
            (ALICE, OP_READ, RESOURCE_GROUP, "billing"),
            (ALICE, OP_DESCRIBE, RESOURCE_GROUP, "billing"),
            (ALICE, OP_READ, RESOURCE_TOPIC, "t"),
            (ALICE, OP_DESCRIBE, RESOURCE_TOPIC, "t"),
        }
    )
    kafka = Kafka(guard=guard)
    refused = kafka.commit(9, "payroll", {("t", 0): 1})
    assert codes(refused) == {("t", 0): ErrorCode.group_authorization_failed}
    mixed = kafka.commit(9, "billing", {("t", 0): 1, ("u", 0): 1})
    assert codes(mixed) == {
        ("t", 0): ErrorCode.none,
        ("u", 0): ErrorCode.topic_authorization_failed,
    }
    assert kafka.fetch(7, {"payroll": None}).error_code == ErrorCode.group_authorization_failed
    fetched = kafka.fetch(7, {"billing": {"t": [0], "u": [0]}})
    assert offsets_of(fetched.topics) == {
        ("t", 0): (1, ErrorCode.none),
        ("u", 0): (-1, ErrorCode.topic_authorization_failed),
    }


def test_one_failing_group_of_a_fetch_does_not_fail_the_others() -> None:
    kafka = Kafka()
    kafka.commit(9, "g1", {("t", 0): 1})
    answer = kafka.fetch(9, {"g1": {"t": [0]}, "": None})
    assert [g.error_code for g in answer.groups] == [ErrorCode.none, ErrorCode.invalid_group_id]
    assert offsets_of(answer.groups[0].topics) == {("t", 0): (1, ErrorCode.none)}
