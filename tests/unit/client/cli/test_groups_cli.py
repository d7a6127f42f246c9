"""``raftka groups``: argument parsing, and each action's output against the fake
coordinator."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

import pytest

from raftka.client.admin import AsyncAdmin
from raftka.client.cli import groups as cli
from raftka.client.cli.app import build_parser
from raftka.client.group_admin import ResetSpec
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError
from tests.unit.client.fake_groups import FakeGroupCluster, Member, started

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


def printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What the command printed (structlog's lines, on stdout in tests, left out)."""
    return [line for line in capsys.readouterr().out.splitlines() if " [" not in line[:40]]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["groups", *argv])


def with_admin(
    test: Callable[[FakeGroupCluster, AsyncAdmin], Awaitable[None]],
) -> None:
    async def run() -> None:
        cluster = await started()
        cluster.create("t", 2)
        for p in range(2):
            cluster.append("t", p, [b"x"] * 10)
        admin = AsyncAdmin(bootstrap_servers=cluster.bootstrap, connections=cluster, timeout_s=2)
        try:
            await test(cluster, admin)
        finally:
            await cluster.stop()

    asyncio.run(run())


def test_parsing_of_reset_targets_and_topics() -> None:
    args = parse("reset-offsets", "g", "--topic", "t:0,1", "--topic", "u", "--shift-by", "-3")
    assert cli.reset_spec(args) == ResetSpec("shift", -3) and not args.execute
    assert cli.parse_topics(args.topic) == [T0, T1, "u"]
    args = parse("reset-offsets", "g", "--topic", "t", "--to-datetime", "1970-01-01T00:00:05")
    assert cli.reset_spec(args) == ResetSpec("timestamp", 5000)
    args = parse("reset-offsets", "g", "--topic", "t", "--to-offset", "7", "--execute")
    assert cli.reset_spec(args) == ResetSpec("offset", 7) and args.execute
    with pytest.raises(SystemExit):  # one target is required
        parse("reset-offsets", "g", "--topic", "t")
    with pytest.raises(SystemExit):  # and only one
        parse("reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest")


def test_bad_input_gets_a_clear_error_before_connecting() -> None:
    # No broker listens at the address: the errors come before any connection.
    where = ["--bootstrap-server", "127.0.0.1:1", "--timeout", "0.1"]
    args = parse("reset-offsets", "g", "--topic", "t:x", "--to-earliest", *where)
    with pytest.raises(RaftkaError, match="partitions are numbers separated by commas"):
        args.run(args)
    args = parse("reset-offsets", "g", "--topic", "t", "--to-datetime", "noon", *where)
    with pytest.raises(RaftkaError, match="is not an ISO date and time"):
        args.run(args)


def test_reset_offsets_prints_the_plan_and_commits_only_with_execute(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def test(cluster: FakeGroupCluster, admin: AsyncAdmin) -> None:
        cluster.groups.offsets[T0] = 8
        args = parse("reset-offsets", "g", "--topic", "t", "--to-earliest")
        assert await cli._reset(admin, args) == 0
        out = printed(capsys)
        assert out[0].split() == ["TOPIC", "PARTITION", "CURRENT", "NEW"]
        assert out[1].split() == ["t", "0", "8", "0"]
        assert out[2].split() == ["t", "1", "-", "0"]
        assert "dry run" in out[3]
        assert cluster.groups.offsets == {T0: 8}
        args = parse("reset-offsets", "g", "--topic", "t:1", "--to-latest", "--execute")
        assert await cli._reset(admin, args) == 0
        assert "committed 1 offset(s) for group g" in printed(capsys)
        assert cluster.groups.offsets == {T0: 8, T1: 10}

    with_admin(test)


def test_describe_and_list_print_tables(capsys: pytest.CaptureFixture[str]) -> None:
    async def test(cluster: FakeGroupCluster, admin: AsyncAdmin) -> None:
        cluster.groups.members["m1"] = Member("m1", 4, ["t"], owned={T0, T1})
        cluster.groups.offsets.update({T0: 6, T1: 10})
        assert await cli._describe(admin, parse("describe", "g")) == 0
        lines = printed(capsys)
        assert lines[0].startswith("group g: stable (consumer), group epoch 3")
        member = next(line for line in lines if line.startswith("m1"))
        assert member.split()[-1] == "t-0,t-1" and " 4 " in member
        lag = [line.split() for line in lines if line.startswith("t ")]
        assert lag == [["t", "0", "6", "10", "4", "m1"], ["t", "1", "10", "10", "0", "m1"]]
        assert await cli._list(admin, parse("list")) == 0
        assert printed(capsys)[1].split() == ["g", "consumer", "stable"]

    with_admin(test)


def test_delete_reports_each_group(capsys: pytest.CaptureFixture[str]) -> None:
    async def test(cluster: FakeGroupCluster, admin: AsyncAdmin) -> None:
        cluster.groups.offsets[T0] = 1
        assert await cli._delete(admin, parse("delete", "g", "nope")) == 1
        out = "\n".join(printed(capsys))
        assert "deleted group g" in out and "nope: " in out and "GROUP_ID_NOT_FOUND" in out
        cluster.groups.offsets[T0] = 1
        assert await cli._delete_offsets(admin, parse("delete-offsets", "g", "--topic", "t:0")) == 0
        assert printed(capsys) == ["deleted the committed offset of t-0"]

    with_admin(test)


def test_consume_takes_a_group() -> None:
    args = build_parser().parse_args(["consume", "t", "--group", "g", "--from-beginning"])
    assert args.group == "g"
    with pytest.raises(RaftkaError, match="leave out --partition and --offset"):
        args = build_parser().parse_args(["consume", "t", "--group", "g", "--partition", "0"])
        args.run(args)
