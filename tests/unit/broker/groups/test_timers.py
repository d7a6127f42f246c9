"""Session expiry, rebalance-timeout fencing, static leave and rejoin, reloading timers."""

from __future__ import annotations

from raftka.v1.common_pb2 import ErrorCode

from .support import ShardHarness, assignment, described_assignment


def _two_stable(h: ShardHarness) -> tuple[set[int], set[int]]:
    h.join(session_timeout_ms=3_000, rebalance_timeout_ms=2_000)
    h.join(session_timeout_ms=3_000, rebalance_timeout_ms=2_000)
    kept = assignment([p for p in h.pushes if p.member_id == "m1"][-1].response)
    h.beat("m1", 1, kept)
    r2 = h.beat("m2", 2, {})
    assert h.describe().state == "stable"
    return kept["t"], assignment(r2)["t"]


def test_a_silent_member_is_removed_after_its_session_timeout() -> None:
    h = ShardHarness({"t": 4})
    _, p2 = _two_stable(h)
    assert h.shard.next_deadline_ms() == h.now_ms + 3_000
    h.tick(2_000)
    h.beat("m1", 2, {"t": set(range(4)) - p2})  # m1 keeps heartbeating, m2 does not
    assert h.tick(999).records == ()
    h.tick(1)  # m2's session ends
    d = h.describe()
    assert [m.member_id for m in d.members] == ["m1"]
    assert d.group_epoch == 3
    push = [p for p in h.pushes if p.member_id == "m1"][-1].response
    assert assignment(push) == {"t": {0, 1, 2, 3}}
    r = h.beat("m2", 2, {"t": p2})
    assert r.error_code == ErrorCode.UNKNOWN_MEMBER_ID


def test_a_member_that_does_not_revoke_in_time_is_fenced() -> None:
    h = ShardHarness({"t": 4})
    h.join(rebalance_timeout_ms=2_000)
    h.join(rebalance_timeout_ms=2_000)
    assert h.describe().members[0].member_state == "unrevoked_partitions"
    h.tick(1_000)
    h.beat("m1", 1, {"t": {0, 1, 2, 3}})  # heartbeats, but never releases
    h.beat("m2", 2, {})
    h.tick(1_000)
    d = h.describe()
    assert [m.member_id for m in d.members] == ["m2"]
    assert described_assignment(d, "m2") == {"t": {0, 1, 2, 3}}
    assert h.beat("m1", 1, {"t": {0, 1}}).error_code == ErrorCode.UNKNOWN_MEMBER_ID


def test_static_member_keeps_its_partitions_across_a_quick_restart() -> None:
    h = ShardHarness({"t": 4})
    h.join(instance_id="i-1", session_timeout_ms=5_000)
    h.join()
    h.beat("m1", 1, assignment([p for p in h.pushes if p.member_id == "m1"][-1].response))
    h.beat("m2", 2, {})
    before = described_assignment(h.describe(), "m1")
    epoch_before = h.describe().group_epoch
    r = h.heartbeat(member_id="m1", member_epoch=-2, instance_id="i-1")
    assert r.member_epoch == -2
    assert described_assignment(h.describe(), "m1") == before  # kept for it
    h.tick(4_000)
    again = h.join(instance_id="i-1", session_timeout_ms=5_000)  # a new process: new id
    assert again.member_id == "m3"
    assert assignment(again) == before
    d = h.describe()
    assert sorted(m.member_id for m in d.members) == ["m2", "m3"]
    assert d.group_epoch == epoch_before  # nothing was reassigned


def test_static_instance_held_by_a_live_member_is_unreleased() -> None:
    h = ShardHarness({"t": 4})
    h.join(instance_id="i-1")
    r = h.join(instance_id="i-1")
    assert r.error_code == ErrorCode.UNRELEASED_INSTANCE_ID
    assert [m.member_id for m in h.describe().members] == ["m1"]


def test_static_member_away_past_its_session_is_removed() -> None:
    h = ShardHarness({"t": 4})
    h.join(instance_id="i-1", session_timeout_ms=2_000)
    h.heartbeat(member_id="m1", member_epoch=-2, instance_id="i-1")
    h.tick(2_000)
    assert h.describe().state == "empty"
    r = h.join(instance_id="i-1")
    assert r.error_code == ErrorCode.NONE
    assert assignment(r) == {"t": {0, 1, 2, 3}}


def test_reload_rearms_timers_from_the_load_time() -> None:
    h = ShardHarness({"t": 4})
    h.join(session_timeout_ms=3_000)
    h.join(session_timeout_ms=3_000, rebalance_timeout_ms=1_000)
    fresh = h.replayed()
    assert fresh.describe_group("g") == h.describe()
    assert fresh.next_deadline_ms() == h.now_ms + 3_000  # sessions, not the time of writing
    out = fresh.tick(now_ms=h.now_ms + 3_000, topics=h.topics)
    assert out.records  # both sessions ended
    assert fresh.describe_group("g").state == "empty"


def test_static_leave_while_revoking_frees_what_it_had_to_release() -> None:
    h = ShardHarness({"t": 4})
    h.join(instance_id="i-1")
    h.join()
    kept = described_assignment(h.describe(), "m1")
    assert h.describe().members[0].member_state == "unrevoked_partitions"
    h.heartbeat(member_id="m1", member_epoch=-2, instance_id="i-1")
    r2 = h.beat("m2", 2, {})
    assert assignment(r2) == {"t": {0, 1, 2, 3} - kept["t"]}  # no wait for m1's release
    assert described_assignment(h.describe(), "m1") == kept  # kept for the instance id


def test_static_member_that_left_while_waiting_for_partitions_gets_them_back() -> None:
    h = ShardHarness({"t": 4})
    h.join()  # m1 owns everything
    h.join(instance_id="i-2")  # m2 waits for m1's release
    assert h.describe().members[1].member_state == "unreleased_partitions"
    h.heartbeat(member_id="m2", member_epoch=-2, instance_id="i-2")
    kept = described_assignment(h.describe(), "m1")
    h.beat("m1", 1, kept)  # m1 releases while m2 is away
    again = h.join(instance_id="i-2")  # m3 takes over i-2's assignment
    assert assignment(again) == {"t": {0, 1, 2, 3} - kept["t"]}
    h.beat("m1", 2, kept)
    assert h.describe().state == "stable"


def test_a_short_session_gets_a_heartbeat_interval_that_fits_in_it() -> None:
    h = ShardHarness({"t": 2})
    assert h.join(session_timeout_ms=3_000).heartbeat_interval_ms == 1_000
    assert h.join().heartbeat_interval_ms == 5_000  # 45 s session: the configured interval
    push = [p for p in h.pushes if p.member_id == "m1"][-1].response
    assert push.heartbeat_interval_ms == 1_000
