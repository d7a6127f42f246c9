"""TxnOffsetCommit through the shard: pending offsets, their markers, require_stable, replay."""

from __future__ import annotations

from raftka.broker.groups.api import GroupConfig
from raftka.broker.groups.shard import ConsumerGroupShard
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode

from .support import ShardHarness

OK = ErrorCode.NONE


def _offsets(shard: ConsumerGroupShard, group_id: str = "g") -> dict[tuple[str, int], int]:
    response = shard.fetch_offsets(gpb.OffsetFetchRequest(group_id=group_id))
    assert response.error_code == OK, response.error_message
    return {(t.name, p.partition): p.offset for t in response.topics for p in t.partitions}


def _stable(h: ShardHarness, *partitions: tuple[str, int]) -> gpb.OffsetFetchResponse:
    topics = [gpb.GroupTopicPartitions(topic=t, partitions=[p]) for t, p in partitions]
    return h.fetch("s", topics=topics, require_stable=True)


def test_pending_offsets_are_invisible_until_the_commit_marker() -> None:
    h = ShardHarness({"t": 2})
    assert h.commit("s", "", -1, {("t", 0): 5}) == [("t", 0, OK)]
    assert h.txn_commit("s", {("t", 0): 9, ("t", 1): 4}) == [("t", 0, OK), ("t", 1, OK)]
    assert _offsets(h.shard, "s") == {("t", 0): 5}
    unstable = _stable(h, ("t", 1))
    assert unstable.error_code == ErrorCode.UNSTABLE_OFFSET_COMMIT
    assert "t-1" in unstable.error_message
    assert h.fetch("s", require_stable=True).error_code == ErrorCode.UNSTABLE_OFFSET_COMMIT
    h.marker(7, committed=True)
    assert _offsets(h.shard, "s") == {("t", 0): 9, ("t", 1): 4}
    assert _stable(h, ("t", 0), ("t", 1)).error_code == OK


def test_an_abort_marker_drops_them_and_keeps_what_was_committed() -> None:
    h = ShardHarness({"t": 2})
    h.commit("s", "", -1, {("t", 0): 5})
    h.txn_commit("s", {("t", 0): 9, ("t", 1): 4})
    h.marker(7, committed=False)
    assert _offsets(h.shard, "s") == {("t", 0): 5}
    assert _stable(h, ("t", 0), ("t", 1)).error_code == OK
    h.marker(7, committed=True)  # a retried marker with nothing pending changes nothing
    assert _offsets(h.shard, "s") == {("t", 0): 5}


def test_require_stable_only_fails_for_partitions_with_pending_offsets() -> None:
    h = ShardHarness({"t": 2})
    h.txn_commit("s", {("t", 1): 4})
    assert _stable(h, ("t", 0)).error_code == OK
    assert _stable(h, ("t", 1)).error_code == ErrorCode.UNSTABLE_OFFSET_COMMIT
    assert h.fetch("other", require_stable=True).error_code == OK
    assert h.fetch("s").error_code == OK  # without require_stable: the last committed (none)


def test_the_later_write_in_the_log_wins_at_commit() -> None:
    h = ShardHarness({"t": 2})
    h.txn_commit("s", {("t", 0): 9}, producer=(7, 0))
    h.txn_commit("s", {("t", 1): 3}, producer=(8, 0))
    h.commit("s", "", -1, {("t", 0): 20})  # a plain commit after the transactional one
    h.txn_commit("s", {("t", 1): 30}, producer=(7, 0))  # after producer 8's
    h.marker(7, committed=True)
    assert _offsets(h.shard, "s") == {("t", 0): 20, ("t", 1): 30}
    h.marker(8, committed=True)  # producer 8 wrote t-1 before producer 7 did: 7's stays
    assert _offsets(h.shard, "s") == {("t", 0): 20, ("t", 1): 30}


def test_checks_as_in_offset_commit_with_an_optional_member() -> None:
    h = ShardHarness({"t": 2}, GroupConfig(offset_metadata_max_bytes=10))
    h.join()
    # No member named: no check, even with members in the group.
    assert h.txn_commit("g", {("t", 0): 1}) == [("t", 0, OK)]
    assert h.txn_commit("g", {("t", 0): 2}, member_id="m1", member_epoch=1) == [("t", 0, OK)]
    assert h.txn_commit("g", {("t", 0): 2}, member_id="m1", member_epoch=0) == [
        ("t", 0, ErrorCode.STALE_MEMBER_EPOCH)
    ]
    assert h.txn_commit("g", {("t", 0): 2}, member_id="zombie", member_epoch=1) == [
        ("t", 0, ErrorCode.UNKNOWN_MEMBER_ID)
    ]
    assert h.txn_commit("s", {("t", 0): 2}, member_id="m1", member_epoch=1) == [
        ("t", 0, ErrorCode.GROUP_ID_NOT_FOUND)
    ]
    assert h.txn_commit("s", {("t", 5): 1, ("u", 0): 1}) == [
        ("t", 5, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("u", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]
    assert h.txn_commit("s", {("t", 0): -1}) == [("t", 0, ErrorCode.INVALID_REQUEST)]
    request = gpb.TxnOffsetCommitRequest(
        transactional_id="tx", group_id="s", producer_id=7, producer_epoch=0, member_epoch=-1
    )
    request.topics.add(name="t").partitions.add(partition=0, offset=1, metadata="x" * 11)
    outcome = h.shard.txn_commit_offsets(request, now_ms=h.now_ms, topics=h.topics)
    assert (
        outcome.response.topics[0].partitions[0].error_code == ErrorCode.OFFSET_METADATA_TOO_LARGE
    )
    assert not outcome.records and outcome.transactional_producer is None


def test_bad_producer_fields_and_an_older_epoch_are_refused_on_every_partition() -> None:
    h = ShardHarness({"t": 2})
    assert h.txn_commit("s", {("t", 0): 1}, producer=(-1, 0)) == [
        ("t", 0, ErrorCode.INVALID_REQUEST)
    ]
    assert h.txn_commit("s", {("t", 0): 1}, producer=(7, 2)) == [("t", 0, OK)]
    assert h.txn_commit("s", {("t", 0): 2, ("t", 1): 2}, producer=(7, 1)) == [
        ("t", 0, ErrorCode.PRODUCER_FENCED),
        ("t", 1, ErrorCode.PRODUCER_FENCED),
    ]
    request = gpb.TxnOffsetCommitRequest(group_id="s", producer_id=7, producer_epoch=2)
    request.topics.add(name="t").partitions.add(partition=0, offset=1)
    outcome = h.shard.txn_commit_offsets(request, now_ms=h.now_ms, topics=h.topics)
    assert outcome.response.topics[0].partitions[0].error_code == ErrorCode.INVALID_REQUEST
    assert "transactional_id" in outcome.response.topics[0].partitions[0].error_message


def test_replay_settles_pending_offsets_at_the_markers_place_in_the_log() -> None:
    h = ShardHarness({"t": 2})
    h.commit("s", "", -1, {("t", 0): 5})
    h.txn_commit("s", {("t", 0): 9}, producer=(7, 0))
    h.txn_commit("s", {("t", 1): 4}, producer=(8, 0))
    h.marker(7, committed=True)
    h.txn_commit("s", {("t", 0): 11}, producer=(9, 0))
    h.marker(9, committed=False)
    h.txn_commit("s", {("t", 1): 6}, producer=(10, 0))  # still open
    replayed = h.replayed_log()
    assert _offsets(replayed, "s") == _offsets(h.shard, "s") == {("t", 0): 9}
    assert replayed.store.pending.producers() == [8, 10]
    stable = replayed.fetch_offsets(
        gpb.OffsetFetchRequest(
            group_id="s",
            topics=[gpb.GroupTopicPartitions(topic="t", partitions=[1])],
            require_stable=True,
        )
    )
    assert stable.error_code == ErrorCode.UNSTABLE_OFFSET_COMMIT
    replayed.replay_marker(8, committed=True)
    replayed.complete_transaction(10, committed=True, now_ms=h.now_ms)
    assert _offsets(replayed, "s") == {("t", 0): 9, ("t", 1): 6}


def test_deleting_a_group_keeps_its_pending_offsets_for_their_marker() -> None:
    h = ShardHarness({"t": 2})
    h.commit("s", "", -1, {("t", 0): 5})
    h.txn_commit("s", {("t", 1): 4})
    deleted = h.shard.delete_groups(["s"])
    h.log.extend(deleted.records)
    assert deleted.response[0].error_code == OK
    assert h.shard.group_ids() == []
    assert _stable(h, ("t", 1)).error_code == ErrorCode.UNSTABLE_OFFSET_COMMIT
    h.marker(7, committed=True)
    assert h.shard.group_ids() == ["s"]
    assert _offsets(h.shard, "s") == {("t", 1): 4}
    assert _offsets(h.replayed_log(), "s") == {("t", 1): 4}
