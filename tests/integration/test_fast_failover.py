"""Failover without waiting out a broker session: peers report a broker they cannot reach, the
active controller probes it and fences it when the probe fails too (controller/broker_sessions.py,
controller/control/liveness.py). Real processes, with the default broker session (3 s) and
heartbeat interval (500 ms), so that a session expiry could not pass these tests."""

from __future__ import annotations

import asyncio
import itertools
import time
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
)
from tests.integration.support.replication import (
    TOPIC,
    cpb_record,
    create,
    partition_state,
    produce_when_leading,
)

pytestmark = pytest.mark.integration

DEFAULT_SESSION = {"broker_session_timeout_ms": 3000}
DEFAULT_HEARTBEATS = {"heartbeat_interval_ms": 500}


def start(tmp_path: Path, *, faults: bool = False) -> LocalCluster:
    return start_broker_cluster(
        tmp_path / "c",
        controller_settings=DEFAULT_SESSION,
        broker_settings=DEFAULT_HEARTBEATS,
        faults=faults,
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = start(tmp_path)
    try:
        yield c
    finally:
        stop_broker_cluster(c)


@pytest.fixture
def fault_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = start(tmp_path, faults=True)
    try:
        yield c
    finally:
        stop_broker_cluster(c)


def controller_events(cluster: LocalCluster, event: str) -> list[dict[str, object]]:
    return [
        e
        for node_id in cluster.nodes
        if node_id not in cluster.brokers
        for e in log_events(cluster, node_id, event)
    ]


def test_a_killed_leader_is_replaced_well_within_a_session(cluster: LocalCluster) -> None:
    """kill -9 of the partition leader: an acks=all write is acknowledged by a new leader
    within 2 s (a 3 s session alone would take longer), because the followers' refused
    fetches are reported and the controller's probe of the dead broker fails at once."""

    async def main() -> None:
        await create(cluster)
        p = await partition_state(cluster)
        old = cluster.brokers[p.leader].address
        await eventually(lambda: produce_when_leading(old, b"before"), what="a first write")
        cluster.kill(p.leader)
        killed = time.monotonic()

        async def new_leader_acknowledges() -> bool | None:
            q = await partition_state(cluster)
            if q.leader in (-1, p.leader):
                return None
            return await produce_when_leading(cluster.brokers[q.leader].address, b"after")

        await eventually(new_leader_acknowledges, timeout_s=10, what="a write on a new leader")
        elapsed = time.monotonic() - killed
        assert elapsed < 2.0, f"the first write on the new leader took {elapsed:.2f}s"
        fenced = controller_events(cluster, "broker_fenced_unreachable")
        assert [e["broker_id"] for e in fenced] == [p.leader]
        assert controller_events(cluster, "broker_fenced_session_expired") == []

    asyncio.run(asyncio.wait_for(main(), 90))


def test_a_paused_follower_stalls_acks_all_writes_only_briefly(cluster: LocalCluster) -> None:
    """SIGSTOP of an in-sync follower: acks=all writes wait for it until it leaves the ISR.
    Its leader reports it once it has sent no fetch for a second, the controller's probe times
    out and fences it, so the stall stays well under a session (3 s)."""

    async def main() -> None:
        await create(cluster)
        p = await partition_state(cluster)
        address = cluster.brokers[p.leader].address
        await eventually(lambda: produce_when_leading(address, b"first"), what="a first write")
        follower = next(b for b in p.isr if b != p.leader)
        acks: list[float] = []
        stop = asyncio.Event()

        async def writer() -> None:
            for i in itertools.count():
                if stop.is_set():
                    return
                r = await produce(address, TOPIC, 0, records=[cpb_record(b"w%d" % i)], acks=-1)
                assert r.error_code == cpb.NONE, r.error_message
                acks.append(time.monotonic())

        task = asyncio.create_task(writer())
        try:

            async def writing(n: int, after: float) -> bool | None:
                if task.done():
                    task.result()
                return True if sum(a > after for a in acks) >= n else None

            await eventually(lambda: writing(20, 0.0), what="acknowledged writes")
            cluster.pause(follower)
            paused = time.monotonic()
            await eventually(lambda: writing(20, paused), timeout_s=15, what="writes resuming")
        finally:
            stop.set()
            await task
            cluster.resume(follower)
        around = [a for a in acks if a >= paused - 1.0]
        stall = max(b - a for a, b in itertools.pairwise(around))
        assert stall < 2.5, f"acks=all writes stalled {stall:.2f}s"
        fenced = controller_events(cluster, "broker_fenced_unreachable")
        assert [e["broker_id"] for e in fenced] == [follower]

    asyncio.run(asyncio.wait_for(main(), 90))


def test_a_slow_but_live_leader_is_reported_and_not_fenced(fault_cluster: LocalCluster) -> None:
    """A leader that answers its followers' fetches only after their deadline (every fetch it
    gets is held 2 s, by fault injection), while clients keep it busy: the followers report it
    unreachable, but it answers the controller's probes, so nobody fences it."""
    cluster = fault_cluster

    async def main() -> None:
        await create(cluster)
        p = await partition_state(cluster)
        address = cluster.brokers[p.leader].address
        await eventually(lambda: produce_when_leading(address, b"first"), what="a first write")
        slow = FaultRule(
            Action.DELAY,
            paths=frozenset({FaultPath.REPLICATION}),
            direction=Direction.INBOUND,
            delay_ms=2000,
        )
        async with FaultClient(address) as faults:
            await faults.inject([slow])
        stop = asyncio.Event()

        async def load() -> None:
            value = b"v" * 1024
            while not stop.is_set():
                r = await produce(address, TOPIC, 0, records=[cpb_record(value)] * 50, acks=1)
                assert r.error_code == cpb.NONE, r.error_message

        tasks = [asyncio.create_task(load()) for _ in range(4)]
        try:

            async def probes_answered(n: int) -> bool | None:
                for task in tasks:
                    if task.done():
                        task.result()
                answered = [
                    e
                    for e in controller_events(cluster, "broker_probe_answered")
                    if e["broker_id"] == p.leader
                ]
                return True if len(answered) >= n else None

            await eventually(lambda: probes_answered(2), timeout_s=20, what="answered probes")
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        states = await broker_states(cluster)
        assert not states[p.leader].fenced
        assert controller_events(cluster, "broker_fenced_unreachable") == []
        assert (await partition_state(cluster)).leader == p.leader

    asyncio.run(asyncio.wait_for(main(), 90))
