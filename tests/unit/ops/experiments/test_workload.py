"""The workload against a fake log: every send gets a new value and is recorded with its
outcome, consumers read sequentially and rewind when their position is past the log, and the
final read is recorded (or recorded as failed)."""

from __future__ import annotations

import asyncio

import pytest

from raftka.ops.experiments.checker import check
from raftka.ops.experiments.history import OpKind, Outcome
from raftka.ops.experiments.workload import PollResult, SendResult, Workload
from tests.conditions import until


class FakeLog:
    """One in-memory log per partition; every third send to partition 1 times out (INFO,
    written anyway) and every fifth fails (nothing written)."""

    def __init__(self, partitions: int) -> None:
        self.logs: list[list[str]] = [[] for _ in range(partitions)]
        self.sends = 0
        self.truncate_once = False

    async def send(self, partition: int, value: bytes) -> SendResult:
        await asyncio.sleep(0)
        self.sends += 1
        if partition == 1 and self.sends % 5 == 0:
            return SendResult(Outcome.FAIL, error="NOT_ENOUGH_REPLICAS")
        self.logs[partition].append(value.decode())
        if partition == 1 and self.sends % 3 == 0:
            return SendResult(Outcome.INFO, error="rpc DEADLINE_EXCEEDED")
        return SendResult(Outcome.OK, offset=len(self.logs[partition]) - 1)

    async def poll(self, partition: int, offset: int) -> PollResult:
        await asyncio.sleep(0.001)
        log = self.logs[partition]
        if offset > len(log):
            return PollResult(error="OFFSET_OUT_OF_RANGE", reset_to=len(log))
        return PollResult(
            records=tuple((o, log[o]) for o in range(offset, min(len(log), offset + 7)))
        )

    async def read_all(self, partition: int) -> list[tuple[int, str]]:
        if partition == 2:
            raise RuntimeError("leader unreachable")
        return list(enumerate(self.logs[partition]))

    async def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def run_workload(log: FakeLog, partitions: int, sends: int) -> Workload:
    workload = Workload(
        "t", partitions, log, log, Clock(), producers_per_partition=2, rate=1e6, error_backoff_s=0
    )

    async def main() -> None:
        task = asyncio.create_task(workload.run())
        await until(lambda: log.sends >= sends)
        workload.stop()
        await task

    asyncio.run(main())
    return workload


def test_every_send_is_recorded_once_with_a_new_value_and_its_outcome() -> None:
    log = FakeLog(2)
    workload = run_workload(log, 2, 300)
    sends = [op for op in workload.history if op.kind is OpKind.SEND]
    values = [op.value for op in sends]
    assert len(values) == len(set(values)) >= 300
    assert {op.process for op in sends} == {1, 2, 3, 4}
    assert {(op.process, op.partition.partition) for op in sends} == {
        (1, 0),
        (2, 1),
        (3, 0),
        (4, 1),
    }
    outcomes = {o: sum(op.outcome is o for op in sends) for o in Outcome}
    assert outcomes[Outcome.FAIL] > 0 and outcomes[Outcome.INFO] > 0
    tally = workload.tally
    assert (tally.acknowledged, tally.failed, tally.indeterminate) == (
        outcomes[Outcome.OK], outcomes[Outcome.FAIL], outcomes[Outcome.INFO],
    )  # fmt: skip
    assert all(op.offset is not None for op in sends if op.outcome is Outcome.OK)
    assert asyncio.run(workload.final_read()) == []
    result = check(workload.history)
    assert result.valid, [a.explanation for a in result.anomalies]
    assert result.counts.polls > 0 and result.counts.final_reads == 2


def test_a_consumer_past_the_end_of_the_log_rewinds_to_it() -> None:
    log = FakeLog(1)
    workload = Workload("t", 1, log, log, Clock(), rate=1.0, error_backoff_s=0)
    log.logs[0] = ["a", "b", "c"]

    async def main() -> None:
        task = asyncio.create_task(workload._consume(9, 0))
        await until(lambda: any(op.kind is OpKind.POLL and op.records for op in workload.history))
        log.logs[0] = ["a"]  # an unclean election cut the log back
        await until(lambda: any(op.outcome is Outcome.INFO for op in workload.history))
        log.logs[0].append("d")
        await until(
            lambda: any(op.records and op.records[-1].value == "d" for op in workload.history)
        )
        workload.stop()
        await task

    asyncio.run(asyncio.wait_for(main(), 10))
    polls = [op for op in workload.history if op.kind is OpKind.POLL]
    refused = [op for op in polls if op.outcome is Outcome.INFO]
    assert refused and all(op.from_offset == 3 for op in refused)
    assert [(r.offset, r.value) for r in polls[-1].records] == [(1, "d")]
    assert polls[-1].from_offset == 1, "rewound to the end of the shorter log"


def test_a_final_read_that_fails_is_recorded_and_reported() -> None:
    log = FakeLog(3)
    workload = Workload("t", 3, log, log, Clock(), rate=1.0)
    failures = asyncio.run(workload.final_read())
    assert failures == ["final read of t-2 failed: leader unreachable"]
    finals = [op for op in workload.history if op.kind is OpKind.FINAL_READ]
    assert [op.outcome for op in finals] == [Outcome.OK, Outcome.OK, Outcome.FAIL]


def test_bad_workload_settings_are_refused() -> None:
    log = FakeLog(1)
    with pytest.raises(ValueError, match="positive"):
        Workload("t", 0, log, log, Clock())


def test_the_final_read_tries_again_before_giving_up() -> None:
    class Flaky(FakeLog):
        calls = 0

        async def read_all(self, partition: int) -> list[tuple[int, str]]:
            self.calls += 1
            if self.calls < 3:
                raise RuntimeError("no leader yet")
            return [(0, "x")]

    log = Flaky(1)
    workload = Workload("t", 1, log, log, Clock(), rate=1.0)
    assert asyncio.run(workload.final_read(attempts=3, backoff_s=0)) == []
    (final,) = [op for op in workload.history if op.kind is OpKind.FINAL_READ]
    assert final.outcome is Outcome.OK and [r.value for r in final.records] == ["x"]
    fresh = Flaky(1)
    too_few = Workload("t", 1, fresh, fresh, Clock(), rate=1.0)
    assert asyncio.run(too_few.final_read(attempts=2, backoff_s=0)) == [
        "final read of t-0 failed: no leader yet"
    ]
