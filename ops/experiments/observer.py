"""Watches the cluster's metadata during an experiment: who leads the controller quorum and each
partition, sampled from the active controller (DescribeQuorum, DescribeTopics) every
``interval_s``. The samples give the nemesis its targets, the report its times to a new leader
and the controller's unavailability, and the timeline its leader changes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftka.common.errors import RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.experiments.targets import ObservedPartition, Topology


@dataclass(frozen=True, slots=True)
class Sample:
    time: float
    controller_leader: int | None
    """None when no controller answered as leader."""
    partitions: Mapping[int, ObservedPartition] | None
    """None when the topic could not be described."""

    def to_json(self) -> dict[str, Any]:
        return {
            "time": round(self.time, 3),
            "controller_leader": self.controller_leader,
            "partitions": None
            if self.partitions is None
            else {
                str(p): [s.leader, s.leader_epoch, list(s.replicas), list(s.isr)]
                for p, s in self.partitions.items()
            },
        }

    @classmethod
    def from_json(cls, line: Mapping[str, Any]) -> Sample:
        raw = line.get("partitions")
        return cls(
            float(line["time"]),
            line.get("controller_leader"),
            None
            if raw is None
            else {
                int(p): ObservedPartition(int(v[0]), int(v[1]), tuple(v[2]), tuple(v[3]))
                for p, v in raw.items()
            },
        )


def dump_samples(samples: Sequence[Sample], path: Path) -> None:
    """The observer's samples as JSON lines (for redrawing a timeline later)."""
    with path.open("w", encoding="utf-8") as f:
        for sample in samples:
            f.write(json.dumps(sample.to_json(), separators=(",", ":")) + "\n")


def load_samples(path: Path) -> list[Sample]:
    with path.open(encoding="utf-8") as f:
        return [Sample.from_json(json.loads(line)) for line in f if line.strip()]


@dataclass(frozen=True, slots=True)
class LeaderChange:
    time: float
    partition: int | None
    """None: the controller quorum."""
    leader: int
    """-1: no leader."""
    epoch: int
    """The partition's leader epoch (the Raft term for the controller)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "time": round(self.time, 3),
            "partition": "controller" if self.partition is None else self.partition,
            "leader": self.leader,
            "epoch": self.epoch,
        }


class MetadataObserver:
    def __init__(
        self,
        controllers: Sequence[str],
        topic: str,
        clock: Callable[[], float],
        *,
        controller_ids: Sequence[int],
        broker_ids: Sequence[int],
        interval_s: float = 0.25,
    ) -> None:
        self.topic = topic
        self.clock = clock
        self.interval_s = interval_s
        self.controller_ids = tuple(controller_ids)
        self.broker_ids = tuple(broker_ids)
        self.samples: list[Sample] = []
        self.changes: list[LeaderChange] = []
        self._client = ControllerClient(controllers, timeout_s=1.0, attempt_timeout_s=0.5)
        self._last_partitions: dict[int, tuple[int, int]] = {}
        self._last_controller: tuple[int, int] | None = None
        self._stop = asyncio.Event()

    async def sample(self) -> Sample:
        """Ask the controllers once; record and return the answer, stamped with the time it
        arrived (a leader found after a slow election counts from when it was found)."""
        leader: int | None = None
        term = -1
        try:
            quorum = await self._client.describe_quorum()
            if quorum.leader_id >= 0:
                leader, term = int(quorum.leader_id), int(quorum.term)
        except RaftkaError:
            pass
        partitions: dict[int, ObservedPartition] | None = None
        try:
            (described,) = await self._client.describe_topics([self.topic])
            partitions = {
                p.partition: ObservedPartition(
                    int(p.leader), int(p.leader_epoch), tuple(p.replicas), tuple(p.isr)
                )
                for p in described.partitions
            }
        except (RaftkaError, ValueError):
            pass
        sample = Sample(self.clock(), leader, partitions)
        self._record(sample, term)
        return sample

    def _record(self, sample: Sample, term: int) -> None:
        self.samples.append(sample)
        if sample.controller_leader is not None:
            now = (sample.controller_leader, term)
            if self._last_controller is not None and now[0] != self._last_controller[0]:
                self.changes.append(LeaderChange(sample.time, None, now[0], term))
            self._last_controller = now
        for p, state in (sample.partitions or {}).items():
            key = (state.leader, state.leader_epoch)
            before = self._last_partitions.get(p)
            if before is not None and before != key:
                self.changes.append(LeaderChange(sample.time, p, state.leader, state.leader_epoch))
            self._last_partitions[p] = key

    def topology(self) -> Topology:
        """The cluster as the latest answers show it."""
        leader = next(
            (
                s.controller_leader
                for s in reversed(self.samples)
                if s.controller_leader is not None
            ),
            None,
        )
        partitions = next(
            (s.partitions for s in reversed(self.samples) if s.partitions is not None), {}
        )
        return Topology(self.controller_ids, self.broker_ids, leader, dict(partitions))

    async def run(self) -> None:
        self._stop.clear()
        while not self._stop.is_set():
            await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        await self._client.close()
