"""The report's figures on a small hand-made history: unavailability windows, which fault they
are attributed to, times to a new leader, and the per-kind medians and maxima."""

from __future__ import annotations

from raftka.client.types import TopicPartition
from raftka.ops.experiments.checker import check
from raftka.ops.experiments.history import History, Operation, Outcome
from raftka.ops.experiments.nemesis import StruckFault
from raftka.ops.experiments.observer import LeaderChange, Sample
from raftka.ops.experiments.report import (
    Window,
    attribute,
    build_report,
    controller_windows,
    partition_windows,
    summary_lines,
)
from raftka.ops.experiments.schedule import Fault, FaultKind, TargetRole

TOPIC = "t"


def acked_history(p0_acks: list[float], p1_acks: list[float]) -> History:
    """OK sends completing at the given times (10 ms each), then a final read of each
    partition holding them all."""
    history = History()
    for partition, times in ((0, p0_acks), (1, p1_acks)):
        tp = TopicPartition(TOPIC, partition)
        for offset, t in enumerate(times):
            history.add(
                Operation.send(
                    partition + 1, tp, f"p{partition}-{offset}", invoke=t - 0.01, complete=t,
                    offset=offset,
                )
            )  # fmt: skip
        history.add(
            Operation.final_read(
                0, tp, [(o, f"p{partition}-{o}") for o in range(len(times))], invoke=20, complete=21
            )
        )
    return history


def steady(start: float, stop: float) -> list[float]:
    return [round(start + 0.5 * i, 3) for i in range(int((stop - start) / 0.5) + 1)]


# p0 stalls between 1.5 and 5.0 (the kill of its leader); p1 never does.
P0 = [*steady(0.5, 1.5), *steady(5.0, 9.5)]
P1 = steady(0.5, 9.5)


def struck() -> list[StruckFault]:
    kill = StruckFault(
        Fault(0, FaultKind.KILL, TargetRole.PARTITION_LEADER, 2.0, 2.0),
        node=4, started_at=2.0, healed_at=4.0, led_partitions=(0,),
    )  # fmt: skip
    pause = StruckFault(
        Fault(1, FaultKind.PAUSE, TargetRole.CONTROLLER_LEADER, 7.0, 1.0),
        node=1, started_at=7.0, healed_at=8.0, controller=True, was_controller_leader=True,
    )  # fmt: skip
    skipped = StruckFault(
        Fault(2, FaultKind.KILL, TargetRole.NODE, 8.5, 1.0, node=42), skipped="not in the cluster"
    )
    return [kill, pause, skipped]


SAMPLES = [Sample(t / 4, None if 28 <= t < 30 else (1 if t < 28 else 2), {}) for t in range(40)]
"""A sample every 0.25 s; none finds a controller leader at 7.0 and 7.25."""
CHANGES = [LeaderChange(4.2, 0, 5, 2), LeaderChange(7.5, None, 2, 3)]


def test_partition_windows_are_gaps_between_acknowledgements() -> None:
    windows = partition_windows(
        acked_history(P0, P1), TOPIC, 2, start=0.0, end=10.0, threshold_s=1.0
    )
    assert windows == [Window(1.5, 5.0, 0)]
    at_the_end = partition_windows(
        acked_history(P0, P1), TOPIC, 2, start=0.0, end=12.0, threshold_s=1.0
    )
    assert Window(9.5, 12.0, 1) in at_the_end, "a partition silent until the end counts too"


def test_controller_windows_run_from_the_first_leaderless_sample_to_the_next_leader() -> None:
    assert controller_windows(SAMPLES) == [Window(6.75, 7.5, None)]
    still_down = [Sample(0.0, 1, None), Sample(1.25, None, None), Sample(1.5, None, None)]
    assert controller_windows(still_down) == [Window(0.0, 1.5, None)]
    down_at_first = [Sample(1.0, None, None), Sample(1.25, 2, None), Sample(1.5, 2, None)]
    assert controller_windows(down_at_first) == [Window(1.0, 1.25, None)]
    assert controller_windows([]) == []


def test_windows_go_to_the_latest_fault_that_struck_before_them() -> None:
    faults = struck()
    windows = [Window(1.5, 5.0, 0), Window(0.2, 1.3, 1), Window(7.0, 7.5, None), Window(30, 31, 0)]
    attributed = attribute(windows, faults, slack_s=1.0, grace_s=10.0)
    assert [w.fault for w in attributed] == [0, None, 1, None]
    assert attribute([Window(1.5, 5.0, 0)], faults, slack_s=0.1, grace_s=10.0)[0].fault is None


def test_report_figures_per_fault_and_per_kind() -> None:
    history = acked_history(P0, P1)
    report = build_report(
        history=history,
        result=check(history),
        topic=TOPIC,
        partitions=2,
        struck=struck(),
        samples=SAMPLES,
        changes=CHANGES,
        workload_start=0.0,
        workload_end=10.0,
        extra={"command": "raftka experiment --seed 1"},
    )
    assert report["command"] == "raftka experiment --seed 1"
    assert report["valid"] is True
    figures = report["figures"]
    assert (figures["acknowledged"], figures["lost"], figures["duplicated"]) == (
        len(P0) + len(P1), 0, 0,
    )  # fmt: skip
    assert figures["send_latency_ms"]["median"] == 10.0
    kill, pause, skipped = report["faults"]
    assert kill["unavailability_s"] == 3.5 and kill["unavailable_partitions"] == [0]
    assert kill["time_to_new_leader_s"] == 2.2
    assert kill["time_to_new_leader_by_partition"] == {"0": 2.2}
    assert pause["unavailability_s"] == 0.0
    assert pause["controller_unavailability_s"] == 0.75
    assert pause["time_to_new_leader_by_partition"] == {"controller": 0.5}
    assert skipped["node"] is None and skipped["skipped"] == "not in the cluster"
    assert report["by_fault_kind"] == {
        "kill": {
            "faults": 1,
            "unavailability_median_s": 3.5,
            "unavailability_max_s": 3.5,
            "moved_a_leader": 1,
            "time_to_new_leader_median_s": 2.2,
            "time_to_new_leader_max_s": 2.2,
        },
        "pause": {
            "faults": 1,
            "unavailability_median_s": 0.0,
            "unavailability_max_s": 0.0,
            "moved_a_leader": 1,
            "time_to_new_leader_median_s": 0.5,
            "time_to_new_leader_max_s": 0.5,
        },
    }
    assert set(report["by_fault_kind_and_target"]) == {
        "kill/partition-leader",
        "pause/controller-leader",
    }
    assert report["unavailability"]["partitions"]["0"] == [
        {"start": 1.5, "end": 5.0, "duration_s": 3.5, "fault": 0}
    ]
    assert report["unavailability"]["controller"][0]["fault"] == 1
    assert report["leader_changes"][1] == {
        "time": 7.5,
        "partition": "controller",
        "leader": 2,
        "epoch": 3,
    }
    lines = summary_lines(report)
    assert lines[1].startswith("lost 0  duplicated 0")
    assert any(line.startswith("kill") and "max 3.50s" in line for line in lines)


def test_a_lost_write_shows_in_the_figures() -> None:
    history = acked_history(P0, P1)
    tp = TopicPartition(TOPIC, 1)
    history.add(Operation.send(9, tp, "acked-then-lost", invoke=9.6, complete=9.7, offset=99))
    history.add(Operation.send(9, tp, "refused", invoke=9.8, complete=9.9, outcome=Outcome.FAIL))
    report = build_report(
        history=history, result=check(history), topic=TOPIC, partitions=2, struck=[],
        samples=[], changes=[], workload_start=0.0, workload_end=10.0,
    )  # fmt: skip
    assert report["valid"] is False
    assert report["figures"]["lost"] == 1 and report["figures"]["failed"] == 1
    assert report["check"]["anomaly_counts"]["lost_write"] == 1
