"""Bad heartbeats: each gets its own error, and nothing changes (no record, same describe)."""

from __future__ import annotations

from typing import Any

import pytest

from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode

from .support import ShardHarness

JOIN: dict[str, Any] = {
    "member_epoch": 0,
    "rebalance_timeout_ms": 5000,
    "subscription_set": True,
    "subscribed_topic_names": ["t"],
}
OWNED = [gpb.GroupTopicPartitions(topic="t", partitions=[0])]

CASES: list[tuple[str, dict[str, Any], int, str]] = [
    ("empty group id", {**JOIN, "group_id": ""}, ErrorCode.INVALID_GROUP_ID, "group id"),
    ("long group id", {**JOIN, "group_id": "g" * 250}, ErrorCode.INVALID_GROUP_ID, "249"),
    (
        "epoch below -2",
        {"member_id": "m1", "member_epoch": -3},
        ErrorCode.INVALID_REQUEST,
        "member_epoch",
    ),
    ("epoch without id", {"member_epoch": 1}, ErrorCode.INVALID_REQUEST, "member_id"),
    ("leave without id", {"member_epoch": -1}, ErrorCode.INVALID_REQUEST, "member_id"),
    (
        "static leave without instance",
        {"member_id": "m1", "member_epoch": -2},
        ErrorCode.INVALID_REQUEST,
        "instance_id",
    ),
    ("empty instance id", {**JOIN, "instance_id": ""}, ErrorCode.INVALID_REQUEST, "instance_id"),
    ("empty rack", {**JOIN, "rack_id": ""}, ErrorCode.INVALID_REQUEST, "rack_id"),
    ("long member id", {**JOIN, "member_id": "m" * 250}, ErrorCode.INVALID_REQUEST, "member_id"),
    (
        "join without rebalance timeout",
        {**JOIN, "rebalance_timeout_ms": None},
        ErrorCode.INVALID_REQUEST,
        "rebalance_timeout_ms",
    ),
    (
        "zero rebalance timeout",
        {**JOIN, "rebalance_timeout_ms": 0},
        ErrorCode.INVALID_REQUEST,
        "rebalance_timeout_ms",
    ),
    (
        "join without subscription",
        {**JOIN, "subscription_set": False, "subscribed_topic_names": []},
        ErrorCode.INVALID_REQUEST,
        "subscribed_topic",
    ),
    (
        "names without subscription_set",
        {**JOIN, "subscription_set": False, "subscribed_topic_regex": "x"},
        ErrorCode.INVALID_REQUEST,
        "subscription_set",
    ),
    (
        "join with owned partitions",
        {**JOIN, "owned_partitions_set": True, "owned_partitions": OWNED},
        ErrorCode.INVALID_REQUEST,
        "owned_partitions",
    ),
    (
        "owned without the flag",
        {**JOIN, "owned_partitions": OWNED},
        ErrorCode.INVALID_REQUEST,
        "owned_partitions_set",
    ),
    (
        "session timeout too short",
        {**JOIN, "session_timeout_ms": 10},
        ErrorCode.INVALID_REQUEST,
        "session_timeout_ms",
    ),
    (
        "session timeout too long",
        {**JOIN, "session_timeout_ms": 4_000_000},
        ErrorCode.INVALID_REQUEST,
        "session_timeout_ms",
    ),
    (
        "too many topics",
        {**JOIN, "subscribed_topic_names": [f"t{i}" for i in range(10_001)]},
        ErrorCode.INVALID_REQUEST,
        "10000",
    ),
    (
        "empty topic name",
        {**JOIN, "subscribed_topic_names": [""]},
        ErrorCode.INVALID_REQUEST,
        "subscribed_topic_names",
    ),
    (
        "long topic name",
        {**JOIN, "subscribed_topic_names": ["t" * 250]},
        ErrorCode.INVALID_REQUEST,
        "subscribed_topic_names",
    ),
    (
        "bad regex",
        {**JOIN, "subscribed_topic_regex": "orders-(["},
        ErrorCode.INVALID_REGULAR_EXPRESSION,
        "does not compile",
    ),
    (
        "long regex",
        {**JOIN, "subscribed_topic_regex": "a" * 1001},
        ErrorCode.INVALID_REQUEST,
        "subscribed_topic_regex",
    ),
    (
        "unknown assignor",
        {**JOIN, "server_assignor": "cooperative-sticky"},
        ErrorCode.UNSUPPORTED_ASSIGNOR,
        "uniform",
    ),
    (
        "unknown member",
        {"member_id": "ghost", "member_epoch": 1},
        ErrorCode.UNKNOWN_MEMBER_ID,
        "ghost",
    ),
    (
        "epoch from the future",
        {"member_id": "m1", "member_epoch": 9},
        ErrorCode.FENCED_MEMBER_EPOCH,
        "epoch 9",
    ),
    (
        "someone else's instance id",
        {"member_id": "m1", "member_epoch": 1, "instance_id": "other"},
        ErrorCode.FENCED_INSTANCE_ID,
        "instance",
    ),
    (
        "negative owned partition",
        {
            "member_id": "m1",
            "member_epoch": 1,
            "owned_partitions_set": True,
            "owned_partitions": [gpb.GroupTopicPartitions(topic="t", partitions=[-1])],
        },
        ErrorCode.INVALID_REQUEST,
        "negative",
    ),
]


@pytest.mark.parametrize(
    ("request_fields", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_heartbeat_is_refused_and_changes_nothing(
    request_fields: dict[str, Any], code: int, words: str
) -> None:
    h = ShardHarness({"t": 2})
    h.join()  # m1, epoch 1
    before, records, groups = h.describe(), len(h.log), h.shard.group_ids()
    fields = {k: v for k, v in request_fields.items() if v is not None}
    group_id = fields.pop("group_id", "g")
    r = h.heartbeat(group_id, **fields)
    assert r.error_code == code, r
    assert words in r.error_message, r.error_message
    assert len(h.log) == records
    assert h.describe() == before
    assert h.shard.group_ids() == groups


def test_a_full_group_refuses_a_new_member() -> None:
    from raftka.broker.groups.api import GroupConfig

    h = ShardHarness({"t": 2}, GroupConfig(max_group_size=2))
    h.join()
    h.join()
    before = h.describe()
    r = h.join()
    assert r.error_code == ErrorCode.GROUP_MAX_SIZE_REACHED
    assert h.describe() == before
