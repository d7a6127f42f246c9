"""The leader's replica state machine: high watermark, caught-up tracking, ISR proposals."""

from __future__ import annotations

import random

import pytest

from raftka.broker.replication.leader_state import LeaderReplicaState

LAG_MS = 10_000


def state(isr: tuple[int, ...] = (1, 2, 3), min_isr: int = 1, leo: int = 0) -> LeaderReplicaState:
    return LeaderReplicaState(
        leader_id=1,
        replicas=(1, 2, 3),
        isr=isr,
        leader_epoch=5,
        partition_epoch=7,
        epoch_start_offset=0,
        high_watermark=0,
        leader_log_end_offset=leo,
        lag_time_max_ms=LAG_MS,
        min_insync_replicas=min_isr,
    )


def test_high_watermark_is_min_leo_over_isr_and_never_moves_back() -> None:
    s = state()
    assert not s.on_leader_append(10)
    assert not s.on_follower_fetch(2, 10, now_ms=1)
    assert s.high_watermark == 0, "replica 3 has fetched nothing yet"
    assert s.on_follower_fetch(3, 4, now_ms=2)
    assert s.high_watermark == 4
    assert s.on_follower_fetch(3, 10, now_ms=3)
    assert s.high_watermark == 10
    # a follower truncated and fetches from lower: the high watermark stays
    assert not s.on_follower_fetch(3, 6, now_ms=4)
    assert s.high_watermark == 10


def test_single_member_isr_advances_on_leader_append() -> None:
    s = state(isr=(1,))
    assert s.on_leader_append(3)
    assert s.high_watermark == 3


def test_min_insync_replicas_holds_the_high_watermark() -> None:
    s = state(isr=(1,), min_isr=2)
    assert not s.has_enough_replicas()
    assert not s.on_leader_append(3)
    assert s.high_watermark == 0
    assert s.on_isr_committed((1, 2), partition_epoch=8) is False  # 2 has not fetched yet
    assert s.on_follower_fetch(2, 3, now_ms=1)
    assert s.high_watermark == 3 and s.has_enough_replicas()


def test_caught_up_rules_and_shrink() -> None:
    s = state()
    s.on_leader_append(10)
    s.on_follower_fetch(2, 10, now_ms=0)  # caught up at 0
    s.on_follower_fetch(3, 5, now_ms=0)  # never caught up
    assert s.is_caught_up(2, LAG_MS + 5)  # its LEO equals the leader's
    assert not s.is_caught_up(3, 1)
    s.on_leader_append(20)
    assert s.is_caught_up(2, LAG_MS), "within the lag time of its last catch-up"
    assert not s.is_caught_up(2, LAG_MS + 1)
    proposal = s.propose_shrink(now_ms=LAG_MS + 1)
    assert proposal is not None and proposal.new_isr == (1,) and proposal.partition_epoch == 7
    assert s.propose_shrink(now_ms=LAG_MS + 2) is None, "one change in flight at a time"
    s.on_isr_committed(proposal.new_isr, partition_epoch=8)
    assert s.isr == (1,) and s.partition_epoch == 8 and s.pending is None


def test_fetch_reaching_previous_leader_leo_counts_as_caught_up_then() -> None:
    s = state()
    s.on_leader_append(10)
    s.on_follower_fetch(2, 0, now_ms=100)  # the leader was at 10 at this fetch
    s.on_leader_append(20)
    s.on_follower_fetch(2, 10, now_ms=200)  # reached the LEO of its previous fetch
    assert s.progress[2].last_caught_up_ms == 100


def test_expand_needs_high_watermark_and_epoch_start() -> None:
    s = state(isr=(1, 2))
    s.epoch_start_offset = 8
    s.on_leader_append(10)
    s.on_follower_fetch(2, 10, now_ms=1)
    assert s.high_watermark == 10
    s.on_follower_fetch(3, 9, now_ms=1)
    assert s.propose_expand({2, 3}) is None, "3 is below the high watermark"
    s.on_follower_fetch(3, 10, now_ms=2)
    assert s.propose_expand({2}) is None, "3 is not eligible (fenced or shutting down)"
    proposal = s.propose_expand({2, 3})
    assert proposal is not None and proposal.new_isr == (1, 2, 3)
    # while the expansion is pending, the maximal ISR already counts 3 for the high watermark
    s.on_leader_append(15)
    s.on_follower_fetch(2, 15, now_ms=3)
    assert s.high_watermark == 10, "3 (pending) is still at 10"
    s.on_follower_fetch(3, 15, now_ms=3)
    assert s.high_watermark == 15


@pytest.mark.parametrize("seed", range(200))
def test_random_schedules_keep_the_high_watermark_safe(seed: int) -> None:
    """Under any order of appends, fetches and ISR changes: the high watermark never moves
    back, never passes the leader's LEO, and whenever it moves every member of the (maximal)
    ISR holds every offset below it — so an acknowledged acks=all write is on the whole ISR."""
    rng = random.Random(seed)
    s = state(isr=(1, 2, 3), min_isr=rng.choice((1, 2)))
    follower_leo = {2: 0, 3: 0}
    leo = 0
    now = 0
    for _ in range(300):
        before = s.high_watermark
        now += rng.randint(0, 3000)
        action = rng.random()
        if action < 0.3:
            leo += rng.randint(1, 5)
            s.on_leader_append(leo)
        elif action < 0.7:
            replica = rng.choice((2, 3))
            follower_leo[replica] = rng.randint(follower_leo[replica], leo)
            s.on_follower_fetch(replica, follower_leo[replica], now)
        else:
            proposal = s.propose_shrink(now) if action < 0.8 else s.propose_expand({2, 3})
            if proposal is not None and rng.random() < 0.8:
                s.on_isr_committed(proposal.new_isr, s.partition_epoch + 1)
            elif proposal is not None:
                s.on_isr_rejected()
        assert before <= s.high_watermark <= leo
        if s.high_watermark > before:
            assert len(s.isr) >= s.min_insync_replicas
            assert all(s.replica_leo(r) >= s.high_watermark for r in s.maximal_isr)
        assert 1 in s.isr


def test_a_new_leader_gives_isr_followers_a_full_lag_time_for_their_first_fetch() -> None:
    """A follower that has not fetched from the new leader yet is not dropped at once: it
    counts as caught up when the leadership began (else a partition created or failed over
    on a busy machine loses its followers from the ISR within a second)."""
    s = LeaderReplicaState(
        leader_id=1,
        replicas=(1, 2, 3),
        isr=(1, 2),
        leader_epoch=5,
        partition_epoch=7,
        epoch_start_offset=0,
        high_watermark=0,
        leader_log_end_offset=10,
        lag_time_max_ms=LAG_MS,
        min_insync_replicas=1,
        became_leader_ms=1_000,
    )
    assert s.propose_shrink(now_ms=1_000 + LAG_MS) is None, "still within the lag time"
    proposal = s.propose_shrink(now_ms=1_000 + LAG_MS + 1)
    assert proposal is not None and proposal.new_isr == (1,), "then it goes"
    assert s.progress[3].last_caught_up_ms == -1, "a replica outside the ISR gets no grace"


def test_a_new_incarnation_is_not_counted_on_its_predecessors_fetches() -> None:
    """KIP-903: replica 3 caught up under broker epoch 20, then restarted (epoch 30) and may
    have lost its tail. A proposal made before it fetches again names epoch 20, which the
    controller refuses; its first fetch under epoch 30 starts its progress afresh."""
    s = state(isr=(1, 2))
    s.on_leader_append(10)
    s.on_follower_fetch(2, 10, now_ms=1, broker_epoch=15)
    s.on_follower_fetch(3, 10, now_ms=1, broker_epoch=20)
    proposal = s.propose_expand({2, 3})
    assert proposal is not None and dict(proposal.broker_epochs) == {2: 15, 3: 20}
    s.on_isr_rejected()  # the controller: 3's current epoch is 30, not 20
    s.on_follower_fetch(3, 4, now_ms=2, broker_epoch=30)
    assert s.progress[3].broker_epoch == 30 and s.progress[3].last_caught_up_ms == -1
    assert s.propose_expand({2, 3}) is None, "the new incarnation is behind the high watermark"
    s.on_follower_fetch(3, 10, now_ms=3, broker_epoch=30)
    proposal = s.propose_expand({2, 3})
    assert proposal is not None and dict(proposal.broker_epochs)[3] == 30


def test_an_isr_member_fetching_below_the_high_watermark_is_proposed_out_at_once() -> None:
    """Replica 3 acknowledged up to 10 (the high watermark), then truncated its log at 6 to
    repair damage and fetches from there. Well within its lag time, it still leaves the ISR
    at once: were the leader to die before it caught up, it could be elected without records
    that were committed. It rejoins the normal way once it has caught up."""
    s = state()
    s.on_leader_append(10)
    s.on_follower_fetch(2, 10, now_ms=1)
    s.on_follower_fetch(3, 10, now_ms=1)
    assert s.high_watermark == 10 and not s.has_short_isr_member()
    assert s.propose_shrink(now_ms=2) is None
    s.on_follower_fetch(3, 6, now_ms=3)
    assert s.is_caught_up(3, 3), "within its lag time: the lag rule alone keeps it"
    assert s.is_short(3) and s.has_short_isr_member()
    proposal = s.propose_shrink(now_ms=3)
    assert proposal is not None and proposal.new_isr == (1, 2)
    s.on_isr_committed(proposal.new_isr, partition_epoch=8)
    assert s.propose_expand({2, 3}) is None, "still below the high watermark"
    s.on_follower_fetch(3, 10, now_ms=4)
    assert not s.is_short(3)
    proposal = s.propose_expand({2, 3})
    assert proposal is not None and proposal.new_isr == (1, 2, 3)


def test_isr_members_that_have_not_fetched_yet_are_not_short() -> None:
    """A new leader's ISR members have no recorded offset until their first fetch: that is
    not a short log (they keep the lag-time grace), and neither is the leader itself."""
    s = state(leo=10)
    s.high_watermark = 10
    for replica in (2, 3):
        s.progress[replica].last_caught_up_ms = 0  # as became_leader_ms sets it
    assert not s.is_short(1) and not s.is_short(2) and not s.has_short_isr_member()
    assert s.propose_shrink(now_ms=1) is None
