"""OffsetCommit / OffsetFetch / OffsetDelete through the shard."""

from __future__ import annotations

from raftka.broker.groups.api import GroupConfig
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode

from .support import ShardHarness

OK = ErrorCode.NONE


def _fetched(response: gpb.OffsetFetchResponse) -> dict[tuple[str, int], tuple[int, int, str]]:
    return {
        (t.name, p.partition): (p.offset, p.leader_epoch, p.metadata)
        for t in response.topics
        for p in t.partitions
    }


def test_member_commits_with_its_epoch_and_a_stale_epoch_is_refused() -> None:
    h = ShardHarness({"t": 2})
    h.join()
    assert h.commit("g", "m1", 1, {("t", 0): 5}) == [("t", 0, OK)]
    assert h.commit("g", "m1", 0, {("t", 0): 1}) == [("t", 0, ErrorCode.STALE_MEMBER_EPOCH)]
    assert h.commit("g", "zombie", 1, {("t", 0): 1}) == [("t", 0, ErrorCode.UNKNOWN_MEMBER_ID)]
    assert h.commit("g", "", -1, {("t", 0): 1}) == [("t", 0, ErrorCode.UNKNOWN_MEMBER_ID)]
    assert _fetched(h.fetch()) == {("t", 0): (5, 3, "")}


def test_a_fenced_member_cannot_move_the_group_back() -> None:
    h = ShardHarness({"t": 2})
    h.join(session_timeout_ms=2_000)
    assert h.commit("g", "m1", 1, {("t", 0): 50}) == [("t", 0, OK)]
    h.tick(2_000)  # m1 expires
    assert h.commit("g", "m1", 1, {("t", 0): 10}) == [("t", 0, ErrorCode.UNKNOWN_MEMBER_ID)]
    assert _fetched(h.fetch())[("t", 0)][0] == 50


def test_simple_group_and_offset_reset_on_an_empty_consumer_group() -> None:
    h = ShardHarness({"t": 2})
    assert h.commit("s", "", -1, {("t", 1): 7}) == [("t", 1, OK)]
    listed = h.shard.list_groups(gpb.ListGroupsRequest())
    assert [(g.group_id, g.group_type, g.state) for g in listed] == [("s", "simple", "empty")]
    assert h.commit("nope", "m", 3, {("t", 1): 7}) == [("t", 1, ErrorCode.GROUP_ID_NOT_FOUND)]
    # An empty consumer group accepts an admin's reset (member_epoch -1).
    h.join()
    h.heartbeat(member_id="m1", member_epoch=-1)
    assert h.describe().state == "empty"
    assert h.commit("g", "", -1, {("t", 0): 0}) == [("t", 0, OK)]


def test_per_partition_errors_leave_the_others_committed() -> None:
    h = ShardHarness({"t": 2}, GroupConfig(offset_metadata_max_bytes=10))
    request = gpb.OffsetCommitRequest(group_id="s", member_epoch=-1)
    t = request.topics.add(name="t")
    t.partitions.add(partition=0, offset=1)
    t.partitions.add(partition=2, offset=1)  # out of range
    t.partitions.add(partition=1, offset=1, metadata="x" * 11)
    request.topics.add(name="missing").partitions.add(partition=0, offset=1)
    request.topics[0].partitions.add(partition=-1, offset=1)
    bad_offset = request.topics.add(name="t")
    bad_offset.partitions.add(partition=1, offset=-5)
    outcome = h.shard.commit_offsets(request, now_ms=h.now_ms, topics=h.topics)
    codes = [
        (t.name, r.partition, r.error_code) for t in outcome.response.topics for r in t.partitions
    ]
    assert codes == [
        ("t", 0, OK),
        ("t", 2, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("t", 1, ErrorCode.OFFSET_METADATA_TOO_LARGE),
        ("t", -1, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("missing", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("t", 1, ErrorCode.INVALID_REQUEST),
    ]
    assert len(outcome.records) == 1


def test_invalid_group_id_is_refused_on_every_partition() -> None:
    h = ShardHarness({"t": 2})
    assert h.commit("", "", -1, {("t", 0): 1, ("t", 1): 1}) == [
        ("t", 0, ErrorCode.INVALID_GROUP_ID),
        ("t", 1, ErrorCode.INVALID_GROUP_ID),
    ]
    assert h.fetch("").error_code == ErrorCode.INVALID_GROUP_ID
    assert h.shard.group_ids() == []


def test_fetch_all_or_some() -> None:
    h = ShardHarness({"t": 3, "u": 1})
    h.commit("s", "", -1, {("t", 0): 4, ("u", 0): 9})
    assert _fetched(h.fetch("s")) == {("t", 0): (4, 3, ""), ("u", 0): (9, 3, "")}
    some = h.fetch("s", topics=[gpb.GroupTopicPartitions(topic="t", partitions=[0, 2])])
    assert _fetched(some) == {("t", 0): (4, 3, ""), ("t", 2): (-1, -1, "")}
    assert some.topics[0].partitions[0].commit_timestamp_ms == h.now_ms
    assert _fetched(h.fetch("unknown")) == {}


def test_fetch_with_a_member_check() -> None:
    h = ShardHarness({"t": 2})
    h.join()
    assert h.fetch(member_id="m1", member_epoch=1).error_code == OK
    assert h.fetch(member_id="m1", member_epoch=0).error_code == ErrorCode.STALE_MEMBER_EPOCH
    assert h.fetch(member_id="x", member_epoch=1).error_code == ErrorCode.UNKNOWN_MEMBER_ID


def test_offset_delete_is_refused_while_a_member_subscribes() -> None:
    h = ShardHarness({"t": 2, "old": 1})
    h.join(topics=("t",))
    h.commit("g", "m1", 1, {("t", 0): 3})
    h.commit("g", "m1", 1, {("t", 0): 3})
    request = gpb.OffsetDeleteRequest(
        group_id="g",
        topics=[
            gpb.GroupTopicPartitions(topic="t", partitions=[0]),
            gpb.GroupTopicPartitions(topic="old", partitions=[0]),
        ],
    )
    outcome = h.shard.delete_offsets(request)
    codes = [(t.name, r.error_code) for t in outcome.response.topics for r in t.partitions]
    assert codes == [("t", ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC), ("old", OK)]
    assert _fetched(h.fetch())[("t", 0)][0] == 3
    missing = h.shard.delete_offsets(gpb.OffsetDeleteRequest(group_id="nope"))
    assert missing.response.error_code == ErrorCode.GROUP_ID_NOT_FOUND


def test_deleting_the_last_offset_of_a_simple_group_removes_it() -> None:
    h = ShardHarness({"t": 2})
    h.commit("s", "", -1, {("t", 0): 1})
    outcome = h.shard.delete_offsets(
        gpb.OffsetDeleteRequest(
            group_id="s", topics=[gpb.GroupTopicPartitions(topic="t", partitions=[0])]
        )
    )
    assert [r.value for r in outcome.records] == [None]
    assert h.shard.group_ids() == []


def test_delete_groups_only_empty_ones() -> None:
    h = ShardHarness({"t": 2})
    h.join()
    h.commit("s", "", -1, {("t", 0): 1})
    outcome = h.shard.delete_groups(["g", "s", "nope", ""])
    codes = [(r.group_id, r.error_code) for r in outcome.response]
    assert codes == [
        ("g", ErrorCode.NON_EMPTY_GROUP),
        ("s", OK),
        ("nope", ErrorCode.GROUP_ID_NOT_FOUND),
        ("", ErrorCode.INVALID_GROUP_ID),
    ]
    assert h.shard.group_ids() == ["g"]
    h.log.extend(outcome.records)
    h.heartbeat(member_id="m1", member_epoch=-1)
    deleted = h.shard.delete_groups(["g"])
    h.log.extend(deleted.records)
    assert deleted.response[0].error_code == OK
    assert h.shard.group_ids() == []
    assert h.replayed().group_ids() == []


def test_fetch_of_too_many_partitions_is_refused() -> None:
    h = ShardHarness({"t": 2})
    response = h.fetch("s", topics=[gpb.GroupTopicPartitions(topic="t", partitions=range(10_001))])
    assert response.error_code == ErrorCode.INVALID_REQUEST
    assert "10000" in response.error_message
