"""The group workload (``raftka experiment --workload group``): consumer-group members as OS
processes read the experiment's topic while the producers write it and faults strike both the
cluster (the usual schedule) and the members (kill -9 and restart, SIGSTOP and SIGCONT, drawn
from their own seeded schedule). After healing, the members read to the end, commit and leave,
and ``group_rules`` checks what they read against the final read of every partition.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftka.client.types import TopicPartition
from raftka.ops.experiments.group_members import GroupMembers
from raftka.ops.experiments.group_rules import GroupCheckResult, check_group
from raftka.ops.experiments.history import Operation, OpKind, Outcome

GROUP = "experiment-group"


@dataclass(frozen=True, slots=True)
class MemberFault:
    kind: str  # "kill" or "pause"
    member: int
    start: float
    end: float

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "member": f"c{self.member}",
            "start": self.start,
            "end": self.end,
        }


def member_schedule(
    seed: int, *, members: int, duration: float, interval: float, fault_duration: float | None
) -> list[MemberFault]:
    """One member fault about every ``interval`` seconds (jittered), each lasting
    ``fault_duration`` (default: 20-70% of the interval), never two on one member at once."""
    rng = random.Random(f"members-{seed}")
    faults: list[MemberFault] = []
    t = interval * rng.uniform(0.5, 1.0)
    busy_until = [0.0] * members
    while t < duration:
        length = fault_duration if fault_duration is not None else interval * rng.uniform(0.2, 0.7)
        free = [m for m in range(members) if busy_until[m] <= t]
        if free:
            member = rng.choice(free)
            kind = rng.choice(("kill", "pause"))
            faults.append(
                MemberFault(kind, member, round(t, 3), round(min(t + length, duration), 3))
            )
            busy_until[member] = t + length
        t += interval * rng.uniform(0.7, 1.3)
    return faults


def final_logs(history: Iterable[Operation]) -> dict[TopicPartition, dict[int, str]]:
    """Offset -> value of each partition, from the last final read that returned."""
    logs: dict[TopicPartition, dict[int, str]] = {}
    for op in history:
        if op.kind is OpKind.FINAL_READ and op.outcome is Outcome.OK:
            logs[op.partition] = {r.offset: r.value for r in op.records}
    return logs


class GroupWorkload:
    def __init__(
        self,
        out_dir: Path,
        bootstrap_servers: list[str],
        topic: str,
        *,
        members: int,
        session_timeout_ms: int,
        auto_commit_interval_ms: int,
        clock: Callable[[], float],
        log: Callable[[str], None],
        consumer_properties: Sequence[str] = (),
    ) -> None:
        """``consumer_properties``: ``NAME=VALUE`` settings every member's consumer gets (the
        cluster's TLS settings)."""
        self.members = GroupMembers(
            out_dir,
            bootstrap_servers,
            topic,
            GROUP,
            session_timeout_ms=session_timeout_ms,
            auto_commit_interval_ms=auto_commit_interval_ms,
            extra_args=[a for p in consumer_properties for a in ("--consumer-property", p)],
        )
        self._count = members
        self._clock = clock
        self._log = log
        self.struck: list[MemberFault] = []

    def start(self) -> None:
        for i in range(self._count):
            self.members.start(i)

    async def run_faults(self, schedule: list[MemberFault], duration: float) -> None:
        heals: list[asyncio.Task[None]] = []
        try:
            for fault in schedule:
                if fault.start >= duration:
                    break
                await asyncio.sleep(max(0.0, fault.start - self._clock()))
                self._strike(fault)
                heals.append(asyncio.create_task(self._heal_at(fault)))
            await asyncio.gather(*heals)
        finally:
            for task in heals:
                task.cancel()

    def _strike(self, fault: MemberFault) -> None:
        if fault.kind == "kill":
            self.members.kill(fault.member)
        else:
            self.members.pause(fault.member)
        self.struck.append(fault)
        self._log(f"{fault.kind} member c{fault.member}")

    async def _heal_at(self, fault: MemberFault) -> None:
        await asyncio.sleep(max(0.0, fault.end - self._clock()))
        self._heal(fault.member)

    def _heal(self, member: int) -> None:
        if self.members.paused(member):
            self.members.resume(member)
            self._log(f"resume member c{member}")
        elif not self.members.running(member):
            label = self.members.start(member)
            self._log(f"restart member c{member} as {label}")

    async def drain(
        self, logs: Mapping[TopicPartition, Mapping[int, str]], timeout_s: float
    ) -> bool:
        """Heal every member, then wait until the group has read every offset of ``logs``;
        False if it did not within ``timeout_s``."""
        for member in self.members.indexes():
            self._heal(member)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen: dict[TopicPartition, set[int]] = {}
            for e in self.members.events():
                if e.partitions and e.records:
                    seen.setdefault(e.partitions[0], set()).update(o for o, _ in e.records)
            if all(set(log) <= seen.get(tp, set()) for tp, log in logs.items()):
                return True
            await asyncio.sleep(0.5)
        return False

    def stop(self) -> None:
        self.members.stop_all()

    def check(self, logs: Mapping[TopicPartition, Mapping[int, str]]) -> GroupCheckResult:
        return check_group(self.members.events(), logs)


def group_report(
    result: GroupCheckResult, drained: bool, struck: list[MemberFault]
) -> dict[str, Any]:
    return {
        "valid": result.valid and drained,
        "drained": drained,
        "consumed": result.consumed,
        "re_read": result.re_read,
        "sessions": result.sessions,
        "member_faults": [f.to_json() for f in struck],
        "anomalies": [
            {
                "kind": a.kind.value,
                "topic": a.partition.topic,
                "partition": a.partition.partition,
                "offsets": list(a.offsets[:20]),
                "explanation": a.explanation,
            }
            for a in result.anomalies
        ],
    }
