"""ListGroups and DescribeGroups through the shard."""

from __future__ import annotations

from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode

from .support import ShardHarness


def test_list_groups_with_a_state_filter() -> None:
    h = ShardHarness({"t": 4})
    h.join("busy")
    h.join("busy")  # reconciling until m1 releases
    h.join("calm")
    h.commit("offsets-only", "", -1, {("t", 0): 1})

    def listed(*states: str) -> list[tuple[str, str, str]]:
        groups = h.shard.list_groups(gpb.ListGroupsRequest(states_filter=list(states)))
        return [(g.group_id, g.group_type, g.state) for g in groups]

    assert listed() == [
        ("busy", "consumer", "reconciling"),
        ("calm", "consumer", "stable"),
        ("offsets-only", "simple", "empty"),
    ]
    assert listed("stable", "empty") == [
        ("calm", "consumer", "stable"),
        ("offsets-only", "simple", "empty"),
    ]
    assert listed("dead") == []


def test_describe_reports_members_targets_and_errors() -> None:
    h = ShardHarness({"t": 4})
    h.join(instance_id="i-1", rack_id="r1", subscribed_topic_regex="t.*")
    d = h.describe()
    assert (d.error_code, d.group_type, d.assignor) == (ErrorCode.NONE, "consumer", "uniform")
    (m,) = d.members
    assert (m.member_id, m.instance_id, m.rack_id, m.client_id, m.client_host) == (
        "m1",
        "i-1",
        "r1",
        "cid",
        "h",
    )
    assert (list(m.subscribed_topic_names), m.subscribed_topic_regex) == (["t"], "t.*")
    assert m.assignment == m.target_assignment
    assert m.member_state == "stable"
    assert h.describe("nope").error_code == ErrorCode.GROUP_ID_NOT_FOUND
    assert h.describe("").error_code == ErrorCode.INVALID_GROUP_ID
