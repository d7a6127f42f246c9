"""The fault schedule: seeded random schedules are deterministic and well-formed, scripted
ones load from JSON and TOML, and bad input gets a clear error; target roles resolve against a
topology."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from raftka.ops.experiments.schedule import (
    Fault,
    FaultKind,
    ScheduleError,
    TargetRole,
    load_schedule,
    parse_kinds,
    parse_targets,
    random_schedule,
)
from raftka.ops.experiments.targets import NoTarget, ObservedPartition, Topology, resolve_target

KINDS = (FaultKind.KILL, FaultKind.PAUSE, FaultKind.PARTITION)


def schedule(seed: int, duration: float = 600.0, interval: float = 10.0) -> list[Fault]:
    return list(
        random_schedule(
            seed, duration=duration, interval=interval, kinds=KINDS, partitions=3
        ).faults
    )


def test_the_same_seed_gives_the_same_schedule() -> None:
    assert schedule(7) == schedule(7)
    assert schedule(7) != schedule(8)


def test_random_faults_are_spaced_healed_in_time_and_drawn_from_the_options() -> None:
    for seed in range(20):
        faults = schedule(seed)
        assert 50 <= len(faults) <= 65, f"seed {seed}: about one fault every 10 s of 600"
        assert faults[0].start == 10.0, "the first fault comes after one interval of baseline"
        for a, b in itertools.pairwise(faults):
            assert a.end < b.start, f"seed {seed}: faults {a.index} and {b.index} overlap"
        assert all(f.end < 600 for f in faults)
        assert {f.kind for f in faults} <= set(KINDS)
        assert all(0 <= f.partition < 3 for f in faults)
        assert [f.index for f in faults] == list(range(len(faults)))
    every_kind = {f.kind for f in schedule(1)}
    assert every_kind == set(KINDS), "600 s draws every kind"


def test_a_fixed_fault_duration_is_kept_within_jitter() -> None:
    faults = random_schedule(3, duration=120, interval=10, kinds=KINDS, fault_duration=4.0).faults
    assert all(3.2 <= f.duration <= 4.8 for f in faults)


def test_a_run_shorter_than_one_interval_has_no_fault() -> None:
    assert schedule(1, duration=9.0) == []


def test_kind_and_target_lists_parse_or_name_the_bad_entry() -> None:
    assert parse_kinds("kill, pause") == (FaultKind.KILL, FaultKind.PAUSE)
    assert parse_kinds("power-loss") == (FaultKind.POWER_LOSS,)
    with pytest.raises(ScheduleError, match="unknown fault kind 'crash'"):
        parse_kinds("kill,crash")
    assert parse_targets("controller-leader") == (TargetRole.CONTROLLER_LEADER,)
    with pytest.raises(ScheduleError, match="unknown target 'node'"):
        parse_targets("node")


def test_scripted_schedule_from_toml_is_ordered_by_start(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        """
[[fault]]
kind = "kill"
target = "node"
node = 5
start = 20
duration = 3

[[fault]]
kind = "partition"
target = "partition-leader"
partition = 1
start = 5.5
duration = 6
"""
    )
    loaded = load_schedule(path)
    assert loaded.source == str(path) and loaded.seed is None
    first, second = loaded.faults
    assert (first.index, first.kind, first.target, first.partition) == (
        0, FaultKind.PARTITION, TargetRole.PARTITION_LEADER, 1,
    )  # fmt: skip
    assert (second.index, second.node, second.end) == (1, 5, 23.0)


def test_scripted_schedule_from_json(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        '{"faults": [{"kind": "delay", "target": "follower", "start": 1, "duration": 2, "delay_ms": 50}]}'
    )
    (fault,) = load_schedule(path).faults
    assert fault.kind is FaultKind.DELAY and fault.delay_ms == 50
    assert fault.to_json()["delay_ms"] == 50


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"faults": []}', "expected a list of faults"),
        ('[{"kind": "kill", "target": "follower", "start": 1}]', "missing 'duration'"),
        ('[{"kind": "kill", "target": "node", "start": 1, "duration": 1}]', "needs node"),
        ('[{"kind": "kill", "target": "follower", "start": -1, "duration": 1}]', "start must be"),
        (
            '[{"kind": "kill", "target": "follower", "start": 1, "duration": 1, "when": 2}]',
            "unknown field",
        ),
        (
            '[{"kind": "loss", "target": "follower", "start": 1, "duration": 1, "loss": 2}]',
            "loss must be",
        ),
        (
            '[{"kind": "kill", "target": "follower", "start": "soon", "duration": 1}]',
            "start must be a number",
        ),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_schedule_files_are_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ScheduleError, match=message):
        load_schedule(path)


def test_a_missing_schedule_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScheduleError, match="cannot read schedule"):
        load_schedule(tmp_path / "nope.toml")


TOPOLOGY = Topology(
    controllers=(1, 2, 3),
    brokers=(4, 5, 6),
    controller_leader=2,
    partitions={
        0: ObservedPartition(leader=4, leader_epoch=1, replicas=(4, 5, 6), isr=(4, 5, 6)),
        1: ObservedPartition(leader=-1, leader_epoch=3, replicas=(5, 6, 4), isr=()),
    },
)


def fault(
    target: TargetRole, *, partition: int = 0, choice: int = 0, node: int | None = None
) -> Fault:
    return Fault(0, FaultKind.KILL, target, 1.0, 1.0, partition=partition, choice=choice, node=node)


def test_roles_resolve_against_the_topology_and_choice_breaks_ties() -> None:
    assert resolve_target(fault(TargetRole.PARTITION_LEADER), TOPOLOGY) == 4
    assert resolve_target(fault(TargetRole.CONTROLLER_LEADER), TOPOLOGY) == 2
    followers = {resolve_target(fault(TargetRole.FOLLOWER, choice=c), TOPOLOGY) for c in range(4)}
    assert followers == {5, 6}
    assert resolve_target(fault(TargetRole.FOLLOWER, choice=1), TOPOLOGY) == 6
    assert resolve_target(fault(TargetRole.CONTROLLER_FOLLOWER, choice=0), TOPOLOGY) == 1
    assert resolve_target(fault(TargetRole.RANDOM_BROKER, choice=5), TOPOLOGY) == 6
    assert resolve_target(fault(TargetRole.NODE, node=3), TOPOLOGY) == 3
    assert TOPOLOGY.led_by(4) == (0,)


def test_roles_nobody_fills_raise_no_target() -> None:
    with pytest.raises(NoTarget, match="no leader"):
        resolve_target(fault(TargetRole.PARTITION_LEADER, partition=1), TOPOLOGY)
    with pytest.raises(NoTarget, match="unknown"):
        resolve_target(fault(TargetRole.FOLLOWER, partition=7), TOPOLOGY)
    with pytest.raises(NoTarget, match="not in the cluster"):
        resolve_target(fault(TargetRole.NODE, node=9), TOPOLOGY)
    leaderless = Topology((1, 2, 3), (4, 5, 6))
    with pytest.raises(NoTarget, match="no controller leader"):
        resolve_target(fault(TargetRole.CONTROLLER_LEADER), leaderless)
