"""The fault injector's rules, its wire mapping and the `raftka faults` arguments."""

from __future__ import annotations

import asyncio
import time

import pytest

from raftka.client.cli.app import build_parser
from raftka.client.cli.faults import rule_from_args
from raftka.common.errors import FaultInjectionDisabledError, InvalidRequestError
from raftka.common.fault_service import rule_from_pb, rule_to_pb
from raftka.common.faults import (
    Action,
    Direction,
    FaultInjector,
    FaultPath,
    FaultRule,
    FaultSettings,
)
from raftka.v1 import faults_pb2 as pb

RAFT, REPL, HB = FaultPath.RAFT, FaultPath.REPLICATION, FaultPath.HEARTBEAT
OUT, IN = Direction.OUTBOUND, Direction.INBOUND


def injector(seed: int = 7) -> FaultInjector:
    f = FaultInjector()
    f.configure(FaultSettings(enabled=True, seed=seed), node_id=4)
    return f


def test_disabled_injector_refuses_rules_and_names_the_setting() -> None:
    f = FaultInjector()
    f.configure(FaultSettings(), node_id=2)
    with pytest.raises(FaultInjectionDisabledError, match=r"node 2.*faults\.enabled = true"):
        f.add([FaultRule(Action.DROP)])
    assert f.rules == ()
    assert not f.verdict(RAFT, 1, OUT).drop


def test_a_rule_matches_only_its_paths_peers_and_direction() -> None:
    rule = FaultRule(Action.DROP, paths=frozenset({REPL}), peers=frozenset({5}), direction=OUT)
    assert rule.matches(REPL, 5, OUT)
    assert not rule.matches(REPL, 6, OUT)
    assert not rule.matches(RAFT, 5, OUT)
    assert not rule.matches(REPL, 5, IN)
    assert not rule.matches(REPL, None, OUT), "a peer-specific rule never matches an unknown peer"
    everything = FaultRule(Action.DROP)
    for path in FaultPath:
        for direction in (OUT, IN):
            assert everything.matches(path, None, direction)
            assert everything.matches(path, 9, direction)


def test_verdict_combines_drops_and_delays() -> None:
    f = injector()
    f.add(
        [
            FaultRule(Action.DELAY, paths=frozenset({RAFT}), delay_ms=30),
            FaultRule(Action.DELAY, peers=frozenset({2}), delay_ms=20),
            FaultRule(Action.DROP, paths=frozenset({HB}), direction=IN),
        ]
    )
    assert f.verdict(RAFT, 2, OUT).delay_s == pytest.approx(0.05)
    assert f.verdict(RAFT, 3, OUT).delay_s == pytest.approx(0.03)
    assert f.verdict(REPL, 3, OUT).delay_s == 0 and not f.verdict(REPL, 3, OUT).drop
    assert f.verdict(HB, 7, IN).drop and not f.verdict(HB, 7, OUT).drop
    assert f.drops(HB, 7, IN) and not f.drops(RAFT, 2, OUT)
    f.clear()
    assert f.rules == () and not f.verdict(HB, 7, IN).drop


def test_probability_is_seeded_and_roughly_honoured() -> None:
    def pattern(seed: int) -> list[bool]:
        f = injector(seed)
        f.add([FaultRule(Action.DROP, probability=0.3)])
        return [f.verdict(RAFT, 1, OUT).drop for _ in range(2000)]

    a, b = pattern(11), pattern(11)
    assert a == b, "the same seed drops the same messages"
    assert a != pattern(12)
    assert 450 < sum(a) < 750, f"{sum(a)} of 2000 dropped at p=0.3"


def test_admit_waits_out_a_delay_and_reports_a_drop() -> None:
    f = injector()
    f.add([FaultRule(Action.DELAY, paths=frozenset({REPL}), delay_ms=60)])
    f.add([FaultRule(Action.DROP, paths=frozenset({RAFT}), peers=frozenset({1}))])

    async def main() -> tuple[bool, float, bool]:
        start = time.monotonic()
        passed = await f.admit(REPL, 5, OUT)
        waited = time.monotonic() - start
        return passed, waited, await f.admit(RAFT, 1, IN)

    passed, waited, raft_passed = asyncio.run(main())
    assert passed and waited >= 0.06
    assert not raft_passed


def test_slow_fsync_delays_the_calling_thread() -> None:
    f = injector()
    f.add([], fsync_delay_ms=40)
    start = time.monotonic()
    f.before_fsync()
    assert time.monotonic() - start >= 0.04
    f.clear()
    assert f.fsync_delay_ms == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"action": Action.DROP, "probability": 0.0},
        {"action": Action.DROP, "probability": 1.5},
        {"action": Action.DELAY},
        {"action": Action.DELAY, "delay_ms": -5},
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError):
        FaultRule(**kwargs)  # type: ignore[arg-type]


def test_rules_round_trip_through_the_wire() -> None:
    rules = [
        FaultRule(Action.DROP),
        FaultRule(
            Action.DELAY,
            paths=frozenset({RAFT, HB}),
            peers=frozenset({1, 3}),
            direction=IN,
            delay_ms=250,
            probability=0.5,
        ),
    ]
    for rule in rules:
        assert rule_from_pb(rule_to_pb(rule)) == rule


@pytest.mark.parametrize("path", list(FaultPath))
def test_every_path_round_trips_and_is_a_cli_choice(path: FaultPath) -> None:
    rule = FaultRule(Action.DROP, paths=frozenset({path}), peers=frozenset({5}))
    assert rule_from_pb(rule_to_pb(rule)) == rule
    args = build_parser().parse_args(
        ["faults", "drop", "--node", "127.0.0.1:1", "--path", path.value, "--peer", "5"]
    )
    assert rule_from_args(args) == rule


def test_bad_wire_rules_name_the_field() -> None:
    with pytest.raises(InvalidRequestError, match=r"rule\.paths"):
        rule_from_pb(pb.FaultRule(paths=[pb.FAULT_PATH_UNSPECIFIED]))
    with pytest.raises(InvalidRequestError, match=r"rule\.peers"):
        rule_from_pb(pb.FaultRule(peers=[-1]))
    with pytest.raises(InvalidRequestError, match="delay_ms"):
        rule_from_pb(pb.FaultRule(action=pb.FAULT_ACTION_DELAY))


def test_cli_arguments_build_the_rule() -> None:
    args = build_parser().parse_args(
        [
            "faults",
            "delay",
            "--node",
            "127.0.0.1:1",
            "--delay-ms",
            "100",
            "--path",
            "replication",
            "--peer",
            "5",
            "--peer",
            "6",
            "--direction",
            "in",
        ]
    )
    assert rule_from_args(args) == FaultRule(
        Action.DELAY,
        paths=frozenset({REPL}),
        peers=frozenset({5, 6}),
        direction=IN,
        delay_ms=100,
    )
    drop = build_parser().parse_args(["faults", "drop", "--node", "h:1"])
    assert rule_from_args(drop) == FaultRule(Action.DROP)
