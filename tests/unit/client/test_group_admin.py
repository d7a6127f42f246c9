"""Group administration (AsyncAdmin's group calls) against the fake coordinator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from raftka.client.admin import AsyncAdmin
from raftka.client.group_admin import OffsetReset, ResetSpec
from raftka.client.types import TopicPartition
from raftka.common import group_errors
from raftka.common.errors import InvalidRequestError
from raftka.v1.common_pb2 import ErrorCode
from tests.unit.client.fake_groups import FakeGroupCluster, Member, started

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


def run(test: Callable[[FakeGroupCluster, AsyncAdmin], Awaitable[None]]) -> None:
    async def main() -> None:
        cluster = await started()
        cluster.create("t", 2)
        for p in range(2):
            cluster.append("t", p, [b"x"] * 10, timestamp=1000)  # offsets 0-9, ts 1000-1009
            cluster.append("t", p, [b"y"] * 10, timestamp=5000)  # offsets 10-19, ts 5000-5009
        admin = AsyncAdmin(bootstrap_servers=cluster.bootstrap, connections=cluster, timeout_s=2.0)
        try:
            await test(cluster, admin)
        finally:
            await cluster.stop()

    asyncio.run(main())


def test_reset_offsets_dry_run_then_execute() -> None:
    async def test(cluster: FakeGroupCluster, admin: AsyncAdmin) -> None:
        cluster.groups.offsets[T0] = 4
        plan = await admin.reset_offsets("g", ResetSpec("earliest"), ["t"])
        assert plan == [OffsetReset(T0, 4, 0), OffsetReset(T1, None, 0)]
        assert cluster.groups.offsets == {T0: 4}  # a dry run commits nothing
        assert cluster.groups.commits() == []
        plan = await admin.reset_offsets("g", ResetSpec("shift", 100), [T0], dry_run=False)
        assert plan == [OffsetReset(T0, 4, 20)]  # clamped to the end
        assert cluster.groups.offsets == {T0: 20}
        (commit,) = cluster.groups.commits()
        assert (commit.member_id, commit.member_epoch) == ("", -1)
        by_time = await admin.reset_offsets("g", ResetSpec("timestamp", 4000), ["t"])
        assert [r.new for r in by_time] == [10, 10]  # the first record at or after 4000
        future = await admin.reset_offsets("g", ResetSpec("timestamp", 9000), [T0])
        assert future == [OffsetReset(T0, 20, 20)]  # no record that late: the end
        latest = await admin.reset_offsets("g", ResetSpec("latest"), [T1])
        assert latest == [OffsetReset(T1, None, 20)]
        exact = await admin.reset_offsets("g", ResetSpec("offset", 7), [T1], dry_run=False)
        assert exact == [OffsetReset(T1, None, 7)] and cluster.groups.offsets[T1] == 7
        with pytest.raises(InvalidRequestError, match="use one of earliest"):
            ResetSpec("sideways")  # type: ignore[arg-type]

    run(test)


def test_reset_offsets_is_refused_while_the_group_has_members() -> None:
    async def test(cluster: FakeGroupCluster, admin: AsyncAdmin) -> None:
        cluster.groups.members["m1"] = Member("m1", 3, ["t"], owned={T0, T1})
        with pytest.raises(group_errors.NonEmptyGroupError, match=r"1 active member.*m1"):
            await admin.reset_offsets("g", ResetSpec("earliest"), ["t"], dry_run=False)
        assert cluster.groups.commits() == []

    run(test)


def test_describe_group_shows_members_and_lag() -> None:
    async def test(cluster: FakeGroupCluster, admin: AsyncAdmin) -> None:
        cluster.groups.coordinator = 2  # found through FindCoordinator, not the first broker
        cluster.groups.members["m1"] = Member("m1", 3, ["t"], owned={T0}, target={T0})
        cluster.groups.offsets[T0] = 15
        cluster.groups.offsets[T1] = 2
        (d,) = await admin.describe_groups(["g"])
        assert (d.state, d.group_epoch, d.coordinator) == ("stable", 3, cluster.addresses[2])
        (m,) = d.members
        assert (m.member_id, m.member_epoch, m.assignment) == ("m1", 3, frozenset({T0}))
        lags = {o.partition: (o.committed, o.end_offset, o.lag, o.member_id) for o in d.offsets}
        assert lags == {T0: (15, 20, 5, "m1"), T1: (2, 20, 18, "")}
        with pytest.raises(group_errors.GroupIdNotFoundError, match="nope"):
            await admin.describe_groups(["nope"])

    run(test)


def test_list_groups_merges_every_broker() -> None:
    async def test(cluster: FakeGroupCluster, admin: AsyncAdmin) -> None:
        cluster.groups.offsets[T0] = 1
        cluster.groups.group_type = "simple"
        cluster.groups.extra_groups = {2: ["other"], 3: ["third"]}
        listed = await admin.list_groups()
        assert [(g.group_id, g.group_type, g.state) for g in listed] == [
            ("g", "simple", "empty"),
            ("other", "consumer", "empty"),
            ("third", "consumer", "empty"),
        ]

    run(test)


def test_delete_groups_and_offsets() -> None:
    async def test(cluster: FakeGroupCluster, admin: AsyncAdmin) -> None:
        cluster.groups.offsets.update({T0: 1, T1: 2})
        cluster.groups.members["m1"] = Member("m1", 3, ["t"])
        results = await admin.delete_groups(["g", "nope"])
        assert isinstance(results["g"], group_errors.NonEmptyGroupError)
        assert isinstance(results["nope"], group_errors.GroupIdNotFoundError)
        refused = await admin.delete_offsets("g", [T0])
        error = refused[T0]
        assert isinstance(error, group_errors.GroupSubscribedToTopicError)
        assert error.code == ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
        cluster.groups.members.clear()
        assert await admin.delete_offsets("g", [T0]) == {T0: None}
        assert cluster.groups.offsets == {T1: 2}
        assert await admin.delete_groups(["g"]) == {"g": None}
        assert cluster.groups.offsets == {}

    run(test)
