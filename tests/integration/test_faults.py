"""Fault injection against real processes: refused unless enabled, a controller isolated from
its peers loses leadership, a broker whose heartbeats are dropped is fenced, slow fsync slows
commits, and `raftka faults` drives it all from the command line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.common.errors import RaftkaError
from raftka.common.faults import Action, Direction, FaultPath, FaultRule
from raftka.ops.fault_client import FaultClient
from raftka.ops.local_cluster import LocalCluster
from tests.conditions import eventually
from tests.integration.support.brokers import (
    broker_states,
    start_broker_cluster,
    stop_broker_cluster,
    wait_unfenced,
)
from tests.integration.support.quorum import FAST_CONTROLLER, client_for, create_topic, leader_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three controllers and three brokers with fault injection enabled. Each test clears the
    faults it injects and leaves every node running."""
    c = start_broker_cluster(tmp_path_factory.mktemp("faulty"), faults=True)
    try:
        yield c
    finally:
        stop_broker_cluster(c)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftka.client.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_nodes_without_faults_enabled_refuse(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path / "plain", controllers=1, controller_settings=FAST_CONTROLLER)
    c.prepare()
    c.start()
    try:
        address = c.nodes[1].address

        async def main() -> None:
            await leader_of(c)  # the node is up
            async with FaultClient(address) as client:
                with pytest.raises(RaftkaError, match=r"faults\.enabled"):
                    await client.isolate()
                state = await client.describe()  # describing is always allowed
                assert not state.enabled and not state.rules

        asyncio.run(main())
        refused = cli("faults", "isolate", "--node", address)
        assert refused.returncode == 1
        assert "fault injection is disabled on node 1" in refused.stderr
        shown = cli("faults", "show", "--node", address)
        assert shown.returncode == 0 and "disabled" in shown.stdout
    finally:
        c.stop_all()


def test_isolated_controller_leader_is_replaced_and_rejoins(faulty: LocalCluster) -> None:
    async def main() -> None:
        old = await leader_of(faulty)

        async def leader_seen_by(node: int) -> int | None:
            async with client_for(faulty, node, timeout_s=1.0) as pinned:
                q = await pinned.describe_quorum(allow_follower=True)
            return int(q.leader_id) if q.answered_by == node else None

        async with FaultClient(faulty.nodes[old].address) as isolated:
            await isolated.inject([FaultRule(Action.DROP, paths=frozenset({FaultPath.RAFT}))])
            try:
                new = await leader_of(faulty, exclude=old)
                async with client_for(faulty) as client:
                    await create_topic(client, "while-isolated")

                # The isolated node itself must give up leadership (check-quorum), not just be
                # outvoted: while still cut off, it no longer calls itself the leader.
                async def old_stepped_down() -> bool | None:
                    seen = await leader_seen_by(old)
                    return True if seen is not None and seen != old else None

                await eventually(old_stepped_down, what=f"isolated node {old} stepping down")
            finally:
                await isolated.clear()

        async def old_follows() -> bool | None:
            seen = await leader_seen_by(old)
            return True if seen is not None and seen >= 0 and seen != old else None

        await eventually(old_follows, what=f"node {old} following again (leader was {new})")

    asyncio.run(main())


def test_dropped_heartbeats_fence_a_broker_until_cleared(faulty: LocalCluster) -> None:
    broker = max(faulty.brokers)

    async def main() -> None:
        async with FaultClient(faulty.brokers[broker].address) as client:
            rule = FaultRule(
                Action.DROP, paths=frozenset({FaultPath.HEARTBEAT}), direction=Direction.OUTBOUND
            )
            assert await client.inject([rule]) == [rule]
            try:

                async def fenced() -> bool | None:
                    return True if (await broker_states(faulty))[broker].fenced else None

                await eventually(fenced, what=f"broker {broker} fenced")
            finally:
                await client.clear()
        await wait_unfenced(faulty, [broker])

    asyncio.run(main())


def test_slow_fsync_on_every_controller_slows_commits(faulty: LocalCluster) -> None:
    delay_ms = 100  # below the 300 ms election timeout: a slower fsync stalls elections too
    rounds = 3

    async def create_times(prefix: str) -> list[float]:
        times = []
        async with client_for(faulty) as client:
            for i in range(rounds):
                start = time.monotonic()
                await create_topic(client, f"{prefix}-{i}")
                times.append(time.monotonic() - start)
        return times

    async def main() -> tuple[list[float], list[float]]:
        await leader_of(faulty)
        baseline = await create_times("fsync-baseline")
        for node in faulty.nodes.values():
            async with FaultClient(node.address) as client:
                await client.inject(fsync_delay_ms=delay_ms)
        try:
            slowed = await create_times("fsync-slowed")
        finally:
            for node in faulty.nodes.values():
                async with FaultClient(node.address) as client:
                    await client.clear()
        return baseline, slowed

    baseline, slowed = asyncio.run(main())
    # A commit needs the leader's fsync and a follower's, each delayed: every slowed create
    # waits at least the delay more than the fastest create without it. Minimums are used
    # because load on the machine only ever adds time.
    assert min(slowed) >= min(baseline) + 0.8 * delay_ms / 1000, (baseline, slowed)


def test_cli_injects_shows_and_clears(faulty: LocalCluster) -> None:
    address = faulty.brokers[min(faulty.brokers)].address
    dropped = cli(
        "faults",
        "drop",
        "--node",
        address,
        "--path",
        "replication",
        "--peer",
        "5",
        "--direction",
        "in",
    )
    assert dropped.returncode == 0, dropped.stderr
    assert "drop in on replication to/from 5" in dropped.stdout
    slow = cli("faults", "slow-fsync", "--node", address, "--delay-ms", "20")
    assert "fsync delayed 20 ms" in slow.stdout
    cleared = cli("faults", "clear", "--node", address)
    assert cleared.returncode == 0 and "no faults" in cleared.stdout

    async def rules() -> int:
        async with FaultClient(address) as client:
            return len((await client.describe()).rules)

    assert asyncio.run(rules()) == 0
    bad = cli("faults", "delay", "--node", address, "--delay-ms", "0")
    assert bad.returncode == 1 and "delay_ms > 0" in bad.stderr
