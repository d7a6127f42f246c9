"""Membership through the shard: join, reconcile, leave, and what the answers carry."""

from __future__ import annotations

import pytest

from raftka.broker.groups.api import GroupConfig
from raftka.broker.groups.shard import ConsumerGroupShard
from raftka.common.errors import InvalidConfigError
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode

from .support import ShardHarness, assignment, described_assignment


def test_first_member_gets_every_partition_at_epoch_one() -> None:
    h = ShardHarness({"t": 4})
    r = h.join()
    assert r.error_code == ErrorCode.NONE
    assert (r.member_id, r.member_epoch) == ("m1", 1)
    assert assignment(r) == {"t": {0, 1, 2, 3}}
    d = h.describe()
    assert (d.state, d.group_epoch, d.assignment_epoch, d.group_type) == (
        "stable",
        1,
        1,
        "consumer",
    )


def test_second_member_waits_for_the_revocation_before_it_gets_partitions() -> None:
    h = ShardHarness({"t": 4})
    h.join()
    r2 = h.join()
    assert (r2.member_id, r2.member_epoch) == ("m2", 2)
    assert assignment(r2) == {}  # m1 has not released anything yet
    # m1 is told by push to give up half, its epoch unchanged.
    push = [p for p in h.pushes if p.member_id == "m1"][-1].response
    assert push.member_epoch == 1
    kept = assignment(push)
    assert len(kept["t"]) == 2
    assert h.describe().state == "reconciling"
    # m1 still reports owning everything: nothing moves.
    r1 = h.beat("m1", 1, {"t": {0, 1, 2, 3}})
    assert r1.member_epoch == 1
    assert described_assignment(h.describe(), "m2") == {}
    # m1 releases: it moves to epoch 2; m2 then gets the rest at its next heartbeat.
    r1 = h.beat("m1", 1, kept)
    assert r1.member_epoch == 2
    r2 = h.beat("m2", 2, {})
    assert assignment(r2) == {"t": {0, 1, 2, 3} - kept["t"]}
    assert h.describe().state == "stable"


def test_an_unchanged_heartbeat_carries_no_assignment() -> None:
    h = ShardHarness({"t": 2})
    h.join()
    r = h.beat("m1", 1, {"t": {0, 1}})
    assert r.error_code == ErrorCode.NONE
    assert not r.has_assignment
    before = len(h.log)
    h.beat("m1", 1, {"t": {0, 1}})
    assert len(h.log) == before  # a plain heartbeat writes nothing


def test_leave_reassigns_at_once() -> None:
    h = ShardHarness({"t": 4})
    h.join()
    h.join()
    h.beat("m1", 1, {"t": {0, 1}})
    h.beat("m2", 2, {})
    r = h.heartbeat(member_id="m1", member_epoch=-1)
    assert r.member_epoch == -1
    d = h.describe()
    assert [m.member_id for m in d.members] == ["m2"]
    assert d.group_epoch == 3
    push = [p for p in h.pushes if p.member_id == "m2"][-1].response
    assert assignment(push) == {"t": {0, 1, 2, 3}}
    assert push.member_epoch == 3


def test_replay_rebuilds_the_same_state() -> None:
    h = ShardHarness({"t": 4})
    h.join()
    h.join()
    h.beat("m1", 1, {"t": {0, 1}})
    h.commit("g", "m1", 2, {("t", 0): 10})
    again = h.replayed()
    assert again.describe_group("g") == h.describe()
    assert again.fetch_offsets(gpb.OffsetFetchRequest(group_id="g")) == h.fetch()
    assert h.fetch().topics[0].partitions[0].offset == 10


def test_a_lost_answer_is_forgiven_once_and_older_epochs_are_fenced() -> None:
    h = ShardHarness({"t": 4})
    h.join()  # m1 at epoch 1, owns all
    h.topics["t"] = 6
    h.tick()  # m1 moves to epoch 2 by push; suppose the push was lost
    r = h.beat("m1", 1, {"t": {0, 1, 2, 3}})  # the previous epoch, a subset: accepted
    assert r.error_code == ErrorCode.NONE
    assert (r.member_epoch, assignment(r)) == (2, {"t": set(range(6))})
    h.topics["t"] = 8
    h.tick()  # epoch 3
    r = h.beat("m1", 1, {"t": {0, 1, 2, 3}})  # two epochs behind
    assert r.error_code == ErrorCode.FENCED_MEMBER_EPOCH
    r = h.beat("m1", 2, {"t": {0, 1, 2, 3, 9}})  # previous epoch, but owns what it was not given
    assert r.error_code == ErrorCode.FENCED_MEMBER_EPOCH


def test_a_report_kept_in_the_log_but_never_answered_is_retried_after_a_reload() -> None:
    """A write fails after its records reached the log; the coordinator reloads the shard from
    the log. The member whose report was in it never saw the answer (its move to the next
    epoch) and retries the report at its old epoch: it gets the new epoch and its assignment,
    and the partitions it released go to the other member, without waiting for a timeout."""
    h = ShardHarness({"t": 4})
    h.join()  # m1: epoch 1, everything
    r = h.join()  # m2: epoch 2, waits for m1 to release its half
    assert (r.member_id, r.member_epoch, assignment(r)) == ("m2", 2, {})
    r = h.beat("m1", 1, {"t": {0, 1, 2, 3}})
    keep = assignment(r)["t"]
    assert r.member_epoch == 1 and len(keep) == 2  # revoke the other two first
    r = h.beat("m1", 1, {"t": keep})  # released: this answer is lost with the write
    assert r.member_epoch == 2
    h.shard = h.replayed()  # the reload replays the write's records
    r = h.beat("m1", 1, {"t": keep})  # the retry, at the epoch m1 still has
    assert r.error_code == ErrorCode.NONE
    assert (r.member_epoch, assignment(r)) == (2, {"t": keep})
    r = h.beat("m2", 2, {})
    assert (r.member_epoch, assignment(r)) == (2, {"t": {0, 1, 2, 3} - keep})


def test_rejoining_with_epoch_zero_frees_what_the_member_had() -> None:
    h = ShardHarness({"t": 4})
    h.join()
    r = h.join(member_id="m1")  # after a fencing, the client dropped everything
    assert (r.member_id, r.member_epoch) == ("m1", 1)
    assert assignment(r) == {"t": {0, 1, 2, 3}}
    assert [m.member_id for m in h.describe().members] == ["m1"]


def test_an_unknown_default_assignor_is_refused_at_construction() -> None:
    with pytest.raises(InvalidConfigError, match="sticky"):
        ConsumerGroupShard(0, GroupConfig(default_assignor="sticky"))


def test_the_most_requested_assignor_is_the_groups() -> None:
    h = ShardHarness({"t": 4, "u": 4})
    h.join(topics=("t", "u"), server_assignor="range")
    assert h.describe().assignor == "range"
    h.join(topics=("t", "u"))
    h.join(topics=("t", "u"), server_assignor="uniform")
    h.join(topics=("t", "u"), server_assignor="uniform")
    assert h.describe().assignor == "uniform"


def test_partitions_released_by_one_member_are_pushed_to_the_one_waiting() -> None:
    h = ShardHarness({"t": 4})
    h.join()
    h.join()
    kept = assignment([p for p in h.pushes if p.member_id == "m1"][-1].response)
    h.beat("m1", 1, kept)  # m1 releases: m2 gets the rest by push, at its epoch
    push = [p for p in h.pushes if p.member_id == "m2"][-1].response
    assert (push.member_epoch, assignment(push)) == (2, {"t": {0, 1, 2, 3} - kept["t"]})


def test_a_heartbeat_sent_before_a_push_arrived_does_not_release_the_pushed_partitions() -> None:
    h = ShardHarness({"t": 4})
    h.join()
    h.join()
    kept = assignment([p for p in h.pushes if p.member_id == "m1"][-1].response)
    h.beat("m1", 1, kept)  # m2 is pushed the other two partitions
    pushed = assignment([p for p in h.pushes if p.member_id == "m2"][-1].response)["t"]
    h.join()  # m3: m2 is pushed a revocation of some of them
    revoked = pushed - assignment([p for p in h.pushes if p.member_id == "m2"][-1].response)["t"]
    assert revoked
    # m2's heartbeat left before both pushes arrived: it reports owning nothing.
    h.beat("m2", 2, {})
    d = h.describe()
    m2 = next(m for m in d.members if m.member_id == "m2")
    assert m2.member_state == "unrevoked_partitions"  # not taken as released
    for m in d.members:
        if m.member_id != "m2":
            owned = {p for tp in m.assignment.topic_partitions for p in tp.partitions}
            assert not owned & revoked, (m.member_id, owned, revoked)
    # Its next heartbeat (sent after the pushes) reports the release: now they move.
    h.beat("m2", 2, {"t": pushed - revoked})
    m2 = next(m for m in h.describe().members if m.member_id == "m2")
    assert m2.member_state != "unrevoked_partitions"
