"""The group workload's member fault schedule and its reading of the final logs."""

from __future__ import annotations

from raftka.client.types import TopicPartition
from raftka.ops.experiments.group_workload import final_logs, member_schedule
from raftka.ops.experiments.history import Operation, Outcome


def test_the_member_schedule_is_seeded_and_never_strikes_a_struck_member() -> None:
    a = member_schedule(7, members=3, duration=120, interval=5, fault_duration=None)
    assert a == member_schedule(7, members=3, duration=120, interval=5, fault_duration=None)
    assert a != member_schedule(8, members=3, duration=120, interval=5, fault_duration=None)
    assert len(a) > 10 and {f.kind for f in a} == {"kill", "pause"}
    for f in a:
        assert 0 < f.start < f.end <= 120
        overlapping = [g for g in a if g.member == f.member and g is not f]
        assert all(g.end <= f.start or g.start >= f.end for g in overlapping)


def test_final_logs_take_the_last_final_read_of_each_partition() -> None:
    tp = TopicPartition("t", 0)
    old = Operation.final_read(1, tp, ((0, "a"),), invoke=1.0, complete=2.0)
    new = Operation.final_read(1, tp, ((0, "a"), (1, "b")), invoke=3.0, complete=4.0)
    failed = Operation.final_read(1, tp, (), invoke=5.0, complete=6.0, outcome=Outcome.FAIL)
    assert final_logs([old, new, failed]) == {tp: {0: "a", 1: "b"}}
