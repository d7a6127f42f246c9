"""The fault schedule of an experiment: which fault strikes when, for how long, and at what.

A :class:`Fault` names a *kind* (kill, power-loss, pause, partition, delay, loss), a *target role* (the
leader of a partition, one of its followers, the controller leader, ...) and its start and
duration in seconds from the start of the workload. Which node the role means is decided only
when the fault strikes, from the cluster's answers at that moment (``resolve_target``), with a
seeded ``choice`` breaking ties (which follower, which broker). So a schedule is fully
determined by its seed, and a run by the seed and what the cluster said.

Schedules are either seeded random (:func:`random_schedule`: one fault about every
``interval`` seconds, never two at once) or scripted in a small JSON or TOML file
(:func:`load_schedule`)::

    [[fault]]
    kind = "partition"          # kill | power-loss | pause | partition | delay | loss
    target = "partition-leader" # see TargetRole; "node" with node = <id> for a fixed node
    partition = 0
    start = 5.0                 # seconds after the workload starts
    duration = 6.0
"""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any


class ScheduleError(ValueError):
    """A schedule file or option that cannot be used; the message says what to change."""


class FaultKind(Enum):
    KILL = "kill"
    """kill -9 the node, restart it when the fault ends."""
    POWER_LOSS = "power-loss"
    """kill -9 the node and cut what its partition logs had not fsynced (half of each active
    segment past its recovery point), as a power loss would; restart it when the fault ends."""
    PAUSE = "pause"
    """SIGSTOP the node, SIGCONT when the fault ends."""
    PARTITION = "partition"
    """Cut the node off from every other node (clients still reach it)."""
    DELAY = "delay"
    """Delay the node's traffic with its peers by ``delay_ms``."""
    LOSS = "loss"
    """Drop each message between the node and its peers with probability ``loss``."""


class TargetRole(Enum):
    PARTITION_LEADER = "partition-leader"
    FOLLOWER = "follower"
    """A follower of the partition (not its leader)."""
    CONTROLLER_LEADER = "controller-leader"
    CONTROLLER_FOLLOWER = "controller-follower"
    RANDOM_BROKER = "random-broker"
    NODE = "node"
    """A fixed node id (scripted schedules only)."""


DEFAULT_TARGETS = (
    TargetRole.PARTITION_LEADER,
    TargetRole.FOLLOWER,
    TargetRole.CONTROLLER_LEADER,
    TargetRole.RANDOM_BROKER,
)
DEFAULT_DELAY_MS = 200
DEFAULT_LOSS = 0.3


@dataclass(frozen=True, slots=True)
class Fault:
    index: int
    kind: FaultKind
    target: TargetRole
    start: float
    duration: float
    partition: int = 0
    """For partition-leader and follower: which partition's."""
    node: int | None = None
    """For target ``node``: the node id."""
    choice: int = 0
    """Picks among several candidates (followers, brokers): ``candidates[choice % len]``."""
    delay_ms: int = DEFAULT_DELAY_MS
    loss: float = DEFAULT_LOSS

    def __post_init__(self) -> None:
        if self.start < 0 or self.duration <= 0:
            raise ScheduleError(
                f"fault {self.index}: start must be >= 0 and duration > 0 "
                f"(got start={self.start}, duration={self.duration})"
            )
        if (self.target is TargetRole.NODE) != (self.node is not None):
            raise ScheduleError(f"fault {self.index}: target 'node' needs node = <id>, and only it")
        if self.partition < 0:
            raise ScheduleError(f"fault {self.index}: partition must be >= 0")
        if self.kind is FaultKind.DELAY and self.delay_ms <= 0:
            raise ScheduleError(f"fault {self.index}: delay_ms must be > 0")
        if self.kind is FaultKind.LOSS and not 0 < self.loss <= 1:
            raise ScheduleError(f"fault {self.index}: loss must be in (0, 1]")

    @property
    def end(self) -> float:
        return self.start + self.duration

    def describe(self) -> str:
        where = {
            TargetRole.PARTITION_LEADER: f"leader of p{self.partition}",
            TargetRole.FOLLOWER: f"a follower of p{self.partition}",
            TargetRole.NODE: f"node {self.node}",
        }.get(self.target, self.target.value)
        extra = {FaultKind.DELAY: f" {self.delay_ms} ms", FaultKind.LOSS: f" {self.loss:.0%}"}
        return f"{self.kind.value}{extra.get(self.kind, '')} {where}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "kind": self.kind.value,
            "target": self.target.value,
            "start": round(self.start, 3),
            "duration": round(self.duration, 3),
            "partition": self.partition,
            "choice": self.choice,
        }
        if self.node is not None:
            out["node"] = self.node
        if self.kind is FaultKind.DELAY:
            out["delay_ms"] = self.delay_ms
        if self.kind is FaultKind.LOSS:
            out["loss"] = self.loss
        return out


@dataclass(frozen=True, slots=True)
class Schedule:
    faults: tuple[Fault, ...]
    seed: int | None = None
    source: str = "random"
    """"random", or the path of the schedule file."""

    @property
    def kinds(self) -> frozenset[FaultKind]:
        return frozenset(f.kind for f in self.faults)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "source": self.source,
            "faults": [f.to_json() for f in self.faults],
        }


def parse_kinds(text: str) -> tuple[FaultKind, ...]:
    """``"kill,pause,partition"`` -> the kinds, in that order; a clear error on a bad name."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = ", ".join(k.value for k in FaultKind)
    if not names:
        raise ScheduleError(f"name at least one fault kind ({known})")
    try:
        return tuple(FaultKind(n) for n in names)
    except ValueError:
        bad = next(n for n in names if n not in {k.value for k in FaultKind})
        raise ScheduleError(f"unknown fault kind {bad!r}; use {known}") from None


def parse_targets(text: str) -> tuple[TargetRole, ...]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    allowed = [t for t in TargetRole if t is not TargetRole.NODE]
    known = ", ".join(t.value for t in allowed)
    if not names:
        raise ScheduleError(f"name at least one target ({known})")
    targets = []
    for name in names:
        match = [t for t in allowed if t.value == name]
        if not match:
            raise ScheduleError(f"unknown target {name!r}; use {known}")
        targets.append(match[0])
    return tuple(targets)


def random_schedule(
    seed: int,
    *,
    duration: float,
    interval: float,
    kinds: Sequence[FaultKind],
    targets: Sequence[TargetRole] = DEFAULT_TARGETS,
    partitions: int = 1,
    fault_duration: float | None = None,
) -> Schedule:
    """One fault about every ``interval`` seconds (the first after one interval, so the run
    starts with a baseline), each lasting ``fault_duration`` (default: 20-70% of the interval,
    drawn per fault) and healed before the next one starts and before ``duration``.
    The same arguments always give the same schedule."""
    if duration <= 0 or interval <= 0:
        raise ScheduleError("duration and fault interval must be positive")
    if not kinds or not targets:
        raise ScheduleError("name at least one fault kind and one target")
    if fault_duration is not None and fault_duration <= 0:
        raise ScheduleError("fault duration must be positive")
    rng = random.Random(seed)
    faults: list[Fault] = []
    start = interval
    while True:
        kind = rng.choice(list(kinds))
        target = rng.choice(list(targets))
        length = (
            fault_duration * rng.uniform(0.8, 1.2)
            if fault_duration is not None
            else interval * rng.uniform(0.2, 0.7)
        )
        length = min(length, interval * 0.9)
        next_start = start + interval * rng.uniform(0.9, 1.1)
        fault = Fault(
            index=len(faults),
            kind=kind,
            target=target,
            start=round(start, 3),
            duration=round(length, 3),
            partition=rng.randrange(partitions),
            choice=rng.randrange(1 << 30),
        )
        if fault.end >= duration:
            break
        faults.append(fault)
        start = next_start
    return Schedule(tuple(faults), seed=seed, source="random")


def load_schedule(path: Path) -> Schedule:
    """A scripted schedule from a ``.json`` file (``{"faults": [...]}`` or a list) or a
    ``.toml`` file (``[[fault]]`` tables). Faults are ordered by start time."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ScheduleError(f"cannot read schedule {path}: {e.strerror}") from None
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise ScheduleError(f"{path}: not valid {kind}: {e}") from None
    entries = data
    if isinstance(data, dict):
        entries = data.get("fault", data.get("faults"))
    if not isinstance(entries, list) or not entries:
        raise ScheduleError(f"{path}: expected a list of faults ([[fault]] tables or 'faults': [])")
    faults = [_fault_from_mapping(i, entry, path) for i, entry in enumerate(entries)]
    faults.sort(key=lambda f: f.start)
    ordered = tuple(
        Fault(
            index=i,
            kind=f.kind,
            target=f.target,
            start=f.start,
            duration=f.duration,
            partition=f.partition,
            node=f.node,
            choice=f.choice,
            delay_ms=f.delay_ms,
            loss=f.loss,
        )
        for i, f in enumerate(faults)
    )
    return Schedule(ordered, seed=None, source=str(path))


_FIELDS = {"kind", "target", "start", "duration", "partition", "node", "choice", "delay_ms", "loss"}


def _fault_from_mapping(index: int, entry: object, path: Path) -> Fault:
    where = f"{path}: fault {index}"
    if not isinstance(entry, Mapping):
        raise ScheduleError(f"{where}: a fault is a table/object, got {entry!r}")
    unknown = set(entry) - _FIELDS
    if unknown:
        raise ScheduleError(f"{where}: unknown field(s) {sorted(unknown)}; use {sorted(_FIELDS)}")
    for name in ("kind", "target", "start", "duration"):
        if name not in entry:
            raise ScheduleError(f"{where}: missing {name!r}")
    try:
        (kind,) = parse_kinds(str(entry["kind"]))
        target_name = str(entry["target"])
        target = (
            TargetRole.NODE
            if target_name == TargetRole.NODE.value
            else parse_targets(target_name)[0]
        )
        return Fault(
            index=index,
            kind=kind,
            target=target,
            start=_number(entry["start"], "start"),
            duration=_number(entry["duration"], "duration"),
            partition=_integer(entry.get("partition", 0), "partition"),
            node=None if entry.get("node") is None else _integer(entry["node"], "node"),
            choice=_integer(entry.get("choice", 0), "choice"),
            delay_ms=_integer(entry.get("delay_ms", DEFAULT_DELAY_MS), "delay_ms"),
            loss=_number(entry.get("loss", DEFAULT_LOSS), "loss"),
        )
    except ScheduleError as e:
        raise ScheduleError(f"{where}: {e}") from None


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScheduleError(f"{name} must be a number, got {value!r}")
    return float(value)


def _integer(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScheduleError(f"{name} must be an integer, got {value!r}")
    return value
