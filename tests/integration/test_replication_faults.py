"""Replication scenarios that need a network fault rather than a dead process: a scripted leader
change that leaves a follower with a divergent uncommitted tail, and an ISR that shrinks below
min.insync.replicas while an acks=all write waits. Faults come from the nodes' own fault
injection (raftka.common.faults), so a follower can stop replicating while it keeps
heartbeating, which SIGSTOP cannot do."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.common.faults import Action, Direction, FaultPath, FaultRule
from raftka.ops.fault_client import FaultClient
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import common_pb2 as cpb
from tests.conditions import eventually
from tests.integration.support.broker_rpc import produce
from tests.integration.support.brokers import (
    broker_states,
    log_events,
    start_broker_cluster,
    stop_broker_cluster,
    wait_unfenced,
)
from tests.integration.support.replication import (
    TOPIC,
    cpb_record,
    create,
    partition_state,
    records_on_disk,
    replicas_agree,
    wait_isr,
    wait_leader,
)

pytestmark = pytest.mark.integration

STOP_FETCHING = FaultRule(
    Action.DROP, paths=frozenset({FaultPath.REPLICATION}), direction=Direction.OUTBOUND
)
STOP_HEARTBEATS = FaultRule(
    Action.DROP, paths=frozenset({FaultPath.HEARTBEAT}), direction=Direction.OUTBOUND
)


def start(tmp_path: Path, lag_ms: int) -> LocalCluster:
    return start_broker_cluster(
        tmp_path / "c", broker_settings={"replica_lag_time_max_ms": lag_ms}, faults=True
    )


@pytest.fixture
def slow_lag_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Followers stay in the ISR for 60 s without catching up: records stay uncommitted."""
    cluster = start(tmp_path, lag_ms=60_000)
    try:
        yield cluster
    finally:
        stop_broker_cluster(cluster)


@pytest.fixture
def fast_lag_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = start(tmp_path, lag_ms=2000)
    try:
        yield cluster
    finally:
        stop_broker_cluster(cluster)


async def inject(cluster: LocalCluster, broker: int, *rules: FaultRule) -> None:
    async with FaultClient(cluster.brokers[broker].address) as client:
        await client.inject(rules)


async def clear(cluster: LocalCluster, broker: int) -> None:
    async with FaultClient(cluster.brokers[broker].address) as client:
        await client.clear()


async def acked(cluster: LocalCluster, broker: int, value: bytes, acks: int = 1) -> int:
    r = await produce(
        cluster.brokers[broker].address, TOPIC, 0, records=[cpb_record(value)], acks=acks
    )
    assert r.error_code == cpb.NONE, (
        f"{value!r}: {cpb.ErrorCode.Name(r.error_code)} {r.error_message}"
    )
    return int(r.base_offset)


def test_follower_truncates_a_divergent_uncommitted_tail(slow_lag_cluster: LocalCluster) -> None:
    """Leader L writes a tail that follower A copies but follower B does not (B's fetches are
    dropped, so the tail stays uncommitted). A is then fenced, L killed, and B, the only
    eligible ISR member, becomes leader and writes different records at the same offsets.
    A and the restarted L must both find the divergence through the leader epochs, truncate
    their tails (never below their high watermarks) and end up with B's log."""
    cluster = slow_lag_cluster

    async def main() -> None:
        await create(cluster, min_isr=1)
        p = await partition_state(cluster)
        leader = p.leader
        a, b = [r for r in p.replicas if r != leader]
        committed = await acked(cluster, leader, b"committed", acks=-1)  # all three fetch it
        await inject(cluster, b, STOP_FETCHING)
        tail = [b"tail-1", b"tail-2", b"tail-3"]
        for value in tail:
            await acked(cluster, leader, value)

        async def a_has_tail() -> bool | None:
            values = [v for _o, v in records_on_disk(cluster, a)]
            return True if values[-3:] == tail else None

        await eventually(a_has_tail, what="follower A copying the uncommitted tail")
        assert [v for _o, v in records_on_disk(cluster, b)] == [b"committed"]
        # Fence A (its heartbeats are dropped) and stop it fetching, then kill the leader.
        await inject(cluster, a, STOP_FETCHING, STOP_HEARTBEATS)

        async def a_fenced() -> bool | None:
            return True if (await broker_states(cluster))[a].fenced else None

        await eventually(a_fenced, what="follower A fenced")

        async def isr_is_leader_and_b() -> bool | None:
            state = await partition_state(cluster)
            return True if sorted(state.isr) == sorted([leader, b]) else None

        # B must still be in the ISR (it heartbeats; its fetches are only dropped), or no
        # clean election is possible once the leader dies; a failure here means the controller
        # fenced B, e.g. a liveness probe that B, starved of CPU, did not answer.
        await eventually(isr_is_leader_and_b, what=f"ISR shrunk to the leader and B ({b})")
        cluster.kill(leader)
        new = await wait_leader(cluster, exclude=leader)
        assert new.leader == b, f"expected {b} (the only unfenced ISR member), got {new.leader}"
        assert new.leader_epoch > p.leader_epoch
        await clear(cluster, b)
        rewritten = [b"new-1", b"new-2"]

        async def b_accepts() -> int | None:
            r = await produce(
                cluster.brokers[b].address, TOPIC, 0, records=[cpb_record(rewritten[0])], acks=1
            )
            return int(r.base_offset) if r.error_code == cpb.NONE else None

        first = await eventually(b_accepts, what="the new leader accepting writes")
        assert first == committed + 1, "the new leader writes where the tail began"
        await acked(cluster, b, rewritten[1])
        # A comes back: unfenced, it follows B and must drop its tail.
        await clear(cluster, a)
        await wait_unfenced(cluster, [a])
        cluster.start(leader)
        final = await wait_isr(cluster, 3, timeout_s=60)
        await eventually(
            lambda: replicas_agree(cluster, list(final.isr)), what="every replica matching B"
        )
        expected = [(0, b"committed"), (1, b"new-1"), (2, b"new-2")]
        for broker in (a, leader, b):
            assert records_on_disk(cluster, broker) == expected, f"broker {broker}"
        for broker in (a, leader):
            (cut,) = [e for e in log_events(cluster, broker, "follower_truncated")]
            assert cut["offset"] == committed + 1, f"broker {broker} truncated at {cut['offset']}"
            assert not log_events(cluster, broker, "truncating_below_high_watermark")

    asyncio.run(main())


def test_isr_shrinking_while_waiting_means_not_enough_replicas_after_append(
    fast_lag_cluster: LocalCluster,
) -> None:
    cluster = fast_lag_cluster

    async def main() -> None:
        await create(cluster, min_isr=2)
        p = await partition_state(cluster)
        followers = [r for r in p.replicas if r != p.leader]
        await acked(cluster, p.leader, b"before", acks=-1)
        for f in followers:
            await inject(cluster, f, STOP_FETCHING)
        # The ISR is still 3 when the write arrives, so it is appended; then both followers
        # fall out of the ISR (2 s lag) and the waiting write fails.
        r = await produce(
            cluster.brokers[p.leader].address,
            TOPIC,
            0,
            records=[cpb_record(b"stranded")],
            acks=-1,
            timeout_ms=30_000,
        )
        assert r.error_code == cpb.NOT_ENOUGH_REPLICAS_AFTER_APPEND, cpb.ErrorCode.Name(
            r.error_code
        )
        assert "min.insync.replicas" in r.error_message
        assert (1, b"stranded") in records_on_disk(cluster, p.leader), "it was appended"
        assert list((await partition_state(cluster)).isr) == [p.leader]
        # Replication resumes: the followers catch up and rejoin, and acks=all works again.
        for f in followers:
            await clear(cluster, f)
        healed = await wait_isr(cluster, 3)
        assert healed.leader == p.leader
        await acked(cluster, p.leader, b"after", acks=-1)
        await eventually(
            lambda: replicas_agree(cluster, list(healed.isr)), what="the followers catching up"
        )

    asyncio.run(main())
