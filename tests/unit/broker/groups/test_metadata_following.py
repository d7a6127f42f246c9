"""Subscriptions follow the metadata: new partitions and new regex-matching topics are
assigned by tick() without any member doing anything."""

from __future__ import annotations

from .support import ShardHarness, assignment, described_assignment


def test_partition_growth_is_assigned_on_tick() -> None:
    h = ShardHarness({"t": 2})
    h.join()
    epoch = h.describe().group_epoch
    assert h.tick().records == ()  # nothing changed, nothing written
    h.topics["t"] = 4
    out = h.tick()
    assert out.records
    assert h.describe().group_epoch == epoch + 1
    (push,) = out.pushes
    assert assignment(push.response) == {"t": {0, 1, 2, 3}}
    assert push.response.member_epoch == epoch + 1


def test_new_topic_matching_the_regex_is_assigned_and_internal_topics_never_are() -> None:
    h = ShardHarness({"orders-eu": 1, "__consumer_offsets": 50, "other": 3})
    r = h.heartbeat(
        member_epoch=0, rebalance_timeout_ms=5_000, subscribed_topic_regex="orders-.*|__.*"
    )
    assert assignment(r) == {"orders-eu": {0}}
    h.topics["orders-us"] = 2
    h.tick()
    assert described_assignment(h.describe(), "m1") == {"orders-eu": {0}, "orders-us": {0, 1}}


def test_subscription_change_reassigns() -> None:
    h = ShardHarness({"t": 2, "u": 2})
    h.join(topics=("t",))
    r = h.beat("m1", 1, {"t": {0, 1}}, subscription_set=True, subscribed_topic_names=["u"])
    # t must be revoked first (epoch unchanged), then u comes with the next epoch.
    assert (r.member_epoch, assignment(r)) == (1, {})
    r = h.beat("m1", 1, {})
    assert (r.member_epoch, assignment(r)) == (2, {"u": {0, 1}})


def test_deleted_topic_is_revoked() -> None:
    h = ShardHarness({"t": 2, "u": 1})
    h.join(topics=("t", "u"))
    del h.topics["u"]
    out = h.tick()
    (push,) = out.pushes
    assert assignment(push.response) == {"t": {0, 1}}
    assert push.response.member_epoch == 1  # a revocation: the epoch waits for the release
