"""The nemesis against a fake cluster: each fault kind does and undoes the right thing to the
node its role resolves to, and records what happened."""

from __future__ import annotations

import asyncio

import pytest

from raftka.common.errors import RaftkaError
from raftka.ops.experiments.nemesis import Nemesis, StruckFault
from raftka.ops.experiments.schedule import Fault, FaultKind, TargetRole
from raftka.ops.experiments.targets import ObservedPartition, Topology

TOPOLOGY = Topology(
    controllers=(1, 2, 3),
    brokers=(4, 5, 6),
    controller_leader=1,
    partitions={
        0: ObservedPartition(5, 2, (5, 6, 4), (5, 6, 4)),
        1: ObservedPartition(5, 1, (6, 4, 5), (6, 4, 5)),
    },
)


class FakeCluster:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None]] = []

    def kill(self, node_id: int) -> None:
        self.calls.append(("kill", node_id))

    def start(self, node_id: int | None = None) -> None:
        self.calls.append(("start", node_id))

    def lose_unflushed_writes(self, node_id: int) -> list[str]:
        self.calls.append(("lose_unflushed_writes", node_id))
        return ["00000000000000000000.log"]

    def pause(self, node_id: int) -> None:
        self.calls.append(("pause", node_id))

    def resume(self, node_id: int) -> None:
        self.calls.append(("resume", node_id))


class FakeNetwork:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, int, int, float]] = []
        self.fail = fail

    async def partition(self, node: int) -> None:
        if self.fail:
            raise RaftkaError("fault injection is disabled on node 5")
        self.calls.append(("partition", node, 0, 0.0))

    async def degrade(self, node: int, *, delay_ms: int = 0, loss: float = 0.0) -> None:
        self.calls.append(("degrade", node, delay_ms, loss))

    async def heal(self, node: int) -> None:
        self.calls.append(("heal", node, 0, 0.0))

    async def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def fault(kind: FaultKind, target: TargetRole = TargetRole.PARTITION_LEADER, **kw: object) -> Fault:
    return Fault(0, kind, target, 1.0, 2.0, **kw)  # type: ignore[arg-type]


def run(nemesis: Nemesis, f: Fault) -> StruckFault:
    async def main() -> StruckFault:
        record = await nemesis.strike(f, TOPOLOGY)
        await nemesis.heal(record)
        return record

    return asyncio.run(main())


def test_kill_then_restart_the_partition_leader() -> None:
    cluster, network = FakeCluster(), FakeNetwork()
    nemesis = Nemesis(cluster, network, Clock())
    record = run(nemesis, fault(FaultKind.KILL))
    assert cluster.calls == [("kill", 5), ("start", 5)]
    assert network.calls == []
    assert record.node == 5 and not record.controller
    assert record.led_partitions == (0, 1)
    assert (record.started_at, record.healed_at) == (1.0, 2.0)
    assert record.to_json()["node_role"] == "broker"


def test_power_loss_kills_cuts_the_unflushed_tails_then_restarts() -> None:
    cluster, network = FakeCluster(), FakeNetwork()
    lines: list[str] = []
    nemesis = Nemesis(cluster, network, Clock(), log=lines.append)
    record = run(nemesis, fault(FaultKind.POWER_LOSS))
    assert cluster.calls == [("kill", 5), ("lose_unflushed_writes", 5), ("start", 5)]
    assert network.calls == []
    assert record.node == 5 and record.led_partitions == (0, 1)
    assert any("lost the unflushed tails of 1 logs" in line for line in lines)
    assert record.to_json()["kind"] == "power-loss"


def test_pause_then_resume_the_controller_leader() -> None:
    cluster = FakeCluster()
    record = run(
        Nemesis(cluster, FakeNetwork(), Clock()),
        fault(FaultKind.PAUSE, TargetRole.CONTROLLER_LEADER),
    )
    assert cluster.calls == [("pause", 1), ("resume", 1)]
    assert record.controller and record.was_controller_leader and record.led_partitions == ()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (FaultKind.PARTITION, ("partition", 6, 0, 0.0)),
        (FaultKind.DELAY, ("degrade", 6, 150, 0.0)),
        (FaultKind.LOSS, ("degrade", 6, 0, 0.25)),
    ],
)
def test_network_faults_go_to_the_backend_and_are_healed(
    kind: FaultKind, expected: tuple[str, int, int, float]
) -> None:
    cluster, network = FakeCluster(), FakeNetwork()
    f = fault(kind, TargetRole.FOLLOWER, choice=1, delay_ms=150, loss=0.25)
    record = run(Nemesis(cluster, network, Clock()), f)
    assert record.node == 6, "followers of p0 are 4 and 6; choice 1 picks 6"
    assert network.calls == [expected, ("heal", 6, 0, 0.0)]
    assert cluster.calls == []


def test_a_fault_nobody_fits_is_skipped_and_never_healed() -> None:
    cluster, network = FakeCluster(), FakeNetwork()
    nemesis = Nemesis(cluster, network, Clock())
    record = run(nemesis, fault(FaultKind.KILL, TargetRole.NODE, node=42))
    assert record.node is None and "not in the cluster" in record.skipped
    assert record.started_at is None and not record.active
    assert cluster.calls == [] and network.calls == []
    assert "skipped" in record.label()


def test_a_strike_that_fails_is_recorded_not_raised() -> None:
    lines: list[str] = []
    nemesis = Nemesis(FakeCluster(), FakeNetwork(fail=True), Clock(), log=lines.append)
    record = run(nemesis, fault(FaultKind.PARTITION))
    assert record.skipped.startswith("strike failed") and not record.active
    assert any("failed" in line for line in lines)


def test_heal_all_undoes_every_active_fault_once() -> None:
    cluster, network = FakeCluster(), FakeNetwork()
    nemesis = Nemesis(cluster, network, Clock())

    async def main() -> None:
        await nemesis.strike(fault(FaultKind.PAUSE, TargetRole.RANDOM_BROKER, choice=0), TOPOLOGY)
        await nemesis.strike(fault(FaultKind.KILL, TargetRole.CONTROLLER_LEADER), TOPOLOGY)
        assert [r.node for r in nemesis.active()] == [4, 1]
        await nemesis.heal_all()
        await nemesis.heal_all()

    asyncio.run(main())
    assert cluster.calls == [("pause", 4), ("kill", 1), ("start", 1), ("resume", 4)]
    assert nemesis.active() == []
