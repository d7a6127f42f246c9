"""Consumer groups end to end: real brokers (the GroupService coordinator) and the Python
consumer's membership. Two members share a 4-partition topic; when one closes, the other gets
every partition; committed offsets carry a restarted consumer on from where the group was."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from raftka.client import AsyncConsumer, ConsumerRecord, TopicPartition
from raftka.client.admin import AsyncAdmin
from raftka.client.cli.app import build_parser
from raftka.common.records.builder import build_batch
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import common_pb2 as cpb
from tests.integration.support.broker_rpc import produce
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
)
from tests.integration.support.quorum import client_for, create_topic

pytestmark = pytest.mark.integration

TOPIC = "orders"
OFFSETS_PARTITIONS = 3
RESTART_TOPIC = "restart"
LEADERS: dict[str, dict[int, int]] = {}
PARTITIONS = 4
ALL = {TopicPartition(TOPIC, p) for p in range(PARTITIONS)}
FAST: dict[str, Any] = {
    "fetch_max_wait_ms": 100,
    "retry_backoff_ms": 20,
    "request_timeout_ms": 10_000,
    "auto_offset_reset": "earliest",
    "auto_commit_interval_ms": 200,
}


@pytest.fixture(scope="module")
def groups_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("consumer-groups"),
        broker_settings={
            "offsets_topic_num_partitions": OFFSETS_PARTITIONS,
            "group_consumer_heartbeat_interval_ms": 500,
        },
    )
    try:
        # No settling: the first consumer's FindCoordinator creates __consumer_offsets, and
        # the group's first writes may meet followers that are not fetching yet (if the ISR
        # shrinks below min.insync.replicas, such a write waits until it is committed).
        LEADERS.update({t: asyncio.run(new_topic(c, t)) for t in (TOPIC, RESTART_TOPIC)})
        yield c
    finally:
        stop_broker_cluster(c)


async def new_topic(cluster: LocalCluster, name: str) -> dict[int, int]:
    async with client_for(cluster) as client:
        await create_topic(client, name, partitions=PARTITIONS, rf=3)
    return await wait_partition_leaders(cluster, name, PARTITIONS)


async def fill(cluster: LocalCluster, leaders: dict[int, int], topic: str, tag: str) -> None:
    for p, leader in leaders.items():
        batch = build_batch([(0, None, f"{tag}-{p}-{i}".encode(), ()) for i in range(5)])
        result = await produce(cluster.brokers[leader].address, topic, p, batches=bytes(batch))
        assert result.error_code == cpb.NONE, result.error_message


async def poll_until(
    consumers: list[AsyncConsumer],
    done: Callable[[], bool],
    what: str,
    into: list[ConsumerRecord],
    timeout_s: float = 30.0,
) -> None:
    """Poll every consumer (concurrently: each must keep polling to stay a member), adding
    what they return to ``into``, until ``done()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what} did not happen within {timeout_s}s: "
                + "; ".join(str(sorted(map(str, c.assignment()))) for c in consumers)
            )
        for batch in await asyncio.gather(*(c.poll(timeout_ms=100) for c in consumers)):
            into += batch


def test_two_members_share_a_topic_and_one_takes_over(
    groups_cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> None:
        await fill(groups_cluster, LEADERS[TOPIC], TOPIC, "a")
        servers = groups_cluster.bootstrap_servers
        a = AsyncConsumer(bootstrap_servers=servers, group_id="share", **FAST)
        b = AsyncConsumer(bootstrap_servers=servers, group_id="share", **FAST)
        a.subscribe([TOPIC])
        b.subscribe([TOPIC])
        try:

            def shared() -> bool:
                mine, theirs = a.assignment(), b.assignment()
                return bool(mine) and bool(theirs) and mine | theirs == ALL and not mine & theirs

            records: list[ConsumerRecord] = []
            await poll_until([a, b], shared, "the two members sharing the partitions", records)
            assert len(a.assignment()) == len(b.assignment()) == 2
            await a.close()  # commits what it read and leaves the group
            await poll_until([b], lambda: b.assignment() == ALL, "b taking over", records)
            wanted = {(p, i) for p in range(PARTITIONS) for i in range(5)}

            def everything_read() -> bool:
                return {(r.partition, r.offset) for r in records} >= wanted

            await poll_until([b], everything_read, "every record read", records)
            assert {(r.partition, r.offset) for r in records} == wanted
            # Records a returned before a revocation it had not processed yet (it had not
            # polled again) were not committed: b reads them again. Read to the end.
            deadline = time.monotonic() + 30
            while [await b.position(tp) for tp in sorted(ALL)] != [5] * PARTITIONS:
                assert time.monotonic() < deadline, "b did not reach the end"
                records += await b.poll(timeout_ms=100)
        finally:
            await a.close()
            await b.close()
        async with AsyncAdmin(bootstrap_servers=servers, timeout_s=10) as admin:
            (described,) = await admin.describe_groups(["share"])
            assert described.members == ()
            assert {o.partition: o.committed for o in described.offsets} == dict.fromkeys(ALL, 5)

    asyncio.run(main())
    # The command line on the same group: describe, then reset (dry run, then for real).
    where = ["--bootstrap-server", ",".join(groups_cluster.bootstrap_servers)]

    def raftka_groups(*argv: str) -> list[list[str]]:
        capsys.readouterr()
        args = build_parser().parse_args(["groups", *argv, *where])
        assert args.run(args) == 0
        out = capsys.readouterr().out.splitlines()
        return [line.split() for line in out if " [" not in line[:40]]  # not structlog's

    assert ["share", "consumer", "empty"] in raftka_groups("list")
    lines = raftka_groups("describe", "share")
    assert lines[0][:3] == ["group", "share:", "empty"]
    assert [line for line in lines if line[:1] == [TOPIC]] == [
        [TOPIC, str(p), "5", "5", "0", "-"] for p in range(PARTITIONS)
    ]
    plan = raftka_groups("reset-offsets", "share", "--topic", f"{TOPIC}:1", "--to-earliest")
    assert [TOPIC, "1", "5", "0"] in plan and plan[-1][:2] == ["dry", "run:"]
    raftka_groups("reset-offsets", "share", "--topic", f"{TOPIC}:1", "--to-earliest", "--execute")
    lines = raftka_groups("describe", "share")
    assert [TOPIC, "1", "0", "5", "5", "-"] in lines


async def read(consumer: AsyncConsumer, n: int, timeout_s: float = 30.0) -> list[ConsumerRecord]:
    out: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out += await consumer.poll(timeout_ms=200, max_records=n - len(out))
    assert len(out) == n, f"expected {n} records, got {len(out)}"
    return out


def test_committed_offsets_survive_a_consumer_restart(groups_cluster: LocalCluster) -> None:
    async def main() -> None:
        topic = RESTART_TOPIC
        leaders = LEADERS[topic]
        await fill(groups_cluster, leaders, topic, "old")
        servers = groups_cluster.bootstrap_servers
        settings = {**FAST, "group_id": "restart", "enable_auto_commit": False}
        async with AsyncConsumer(bootstrap_servers=servers, **settings) as first:
            first.subscribe([topic])
            assert {r.value for r in await read(first, 20)} == {
                f"old-{p}-{i}".encode() for p in range(PARTITIONS) for i in range(5)
            }
            await first.commit()
            committed = await first.committed(TopicPartition(topic, 0))
            assert committed is not None and committed.offset == 5
        await fill(groups_cluster, leaders, topic, "new")
        async with AsyncConsumer(bootstrap_servers=servers, **settings) as second:
            second.subscribe([topic])
            seen = await read(second, 20)
            assert {r.value for r in seen} == {
                f"new-{p}-{i}".encode() for p in range(PARTITIONS) for i in range(5)
            }
            assert {r.offset for r in seen} == set(range(5, 10))

    asyncio.run(main())


def test_subscriptions_follow_new_topics_and_partitions(groups_cluster: LocalCluster) -> None:
    """A regex member gets a topic created after it joined, and both members get the partitions
    added to a topic they subscribe to, without either doing anything but poll()."""

    async def main() -> None:
        settings = {**FAST, "bootstrap_servers": groups_cluster.bootstrap_servers}
        async with (
            AsyncConsumer(group_id="follow", **settings) as by_name,
            AsyncConsumer(group_id="follow-regex", **settings) as by_regex,
        ):
            async with client_for(groups_cluster) as client:
                await create_topic(client, "grows", partitions=1, rf=3)
            by_name.subscribe(["grows"])
            by_regex.subscribe(pattern=r"metrics-.*")
            sink: list[ConsumerRecord] = []
            await poll_until(
                [by_name, by_regex],
                lambda: by_name.assignment() == {TopicPartition("grows", 0)},
                "the named topic assigned",
                sink,
            )
            assert by_regex.assignment() == set()
            async with client_for(groups_cluster) as client:
                await create_topic(client, "metrics-cpu", partitions=2, rf=3)
                await create_topic(client, "other-cpu", partitions=1, rf=3)
                await client.create_partitions({"grows": 3})
            await poll_until(
                [by_name, by_regex],
                lambda: len(by_name.assignment()) == 3 and len(by_regex.assignment()) == 2,
                "new partitions and the new matching topic assigned",
                sink,
            )
            assert by_name.assignment() == {TopicPartition("grows", p) for p in range(3)}
            assert by_regex.assignment() == {TopicPartition("metrics-cpu", p) for p in range(2)}

    asyncio.run(main())
