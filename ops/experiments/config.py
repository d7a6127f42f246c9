"""What one experiment runs with: every option of ``raftka experiment`` and the cluster
settings in force (see docs/experiments.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from raftka.ops.experiments.cluster_setup import EXPERIMENT_BROKER, EXPERIMENT_CONTROLLER
from raftka.ops.experiments.schedule import (
    DEFAULT_TARGETS,
    FaultKind,
    Schedule,
    TargetRole,
    load_schedule,
    random_schedule,
)


@dataclass(frozen=True)
class ExperimentConfig:
    out_dir: Path
    duration_s: float = 60.0
    seed: int = 1
    fault_interval_s: float = 10.0
    fault_duration_s: float | None = None
    faults: tuple[FaultKind, ...] = (FaultKind.KILL, FaultKind.PAUSE, FaultKind.PARTITION)
    targets: tuple[TargetRole, ...] = DEFAULT_TARGETS
    schedule_file: Path | None = None
    acks: int = -1
    unclean_election: bool = False
    min_insync_replicas: int | None = None
    """Default: 2 with acks=all, else 1."""
    controllers: int = 3
    brokers: int = 3
    partitions: int = 3
    replication_factor: int = 3
    producers_per_partition: int = 2
    rate: float = 200.0
    request_timeout_s: float = 3.0
    unavailability_threshold_s: float = 1.0
    recovery_timeout_s: float = 120.0
    progress_interval_s: float = 5.0
    netns: bool = False
    netns_subnet: str = "10.213.0.0/24"
    tls: bool = False
    """Every node listens and calls with TLS and mTLS (a throwaway CA, certificates whose SANs
    carry each node's address) and authorizes with ACLs; the experiment's own clients are
    ``User:admin`` (a super user) over TLS."""
    controller_settings: Mapping[str, object] = field(default_factory=dict)
    broker_settings: Mapping[str, object] = field(default_factory=dict)
    workload: str = "queue"
    """"queue" (producers and sequential readers), "group" (the same, plus consumer-group
    members as processes, struck by their own kill and pause faults) or "txn" (the same, plus
    transactional producers, a read_committed observer and an exactly-once copier) or "all"
    (group and txn together)."""
    group_members: int = 3
    member_session_timeout_ms: int = 6000
    auto_commit_interval_ms: int = 1000
    txn_producers: int = 2
    planted_bugs: tuple[str, ...] = ()
    """Deliberate bugs the nodes plant (common/faults.py PLANTED_BUGS), to show the checkers
    catch them."""
    transaction_timeout_ms: int = 10_000

    def runs(self, workload: str) -> bool:
        """Whether the experiment runs the "group" or "txn" workload (beside the queue)."""
        return self.workload in (workload, "all")

    @property
    def min_isr(self) -> int:
        if self.min_insync_replicas is not None:
            return self.min_insync_replicas
        return min(2, self.replication_factor) if self.acks == -1 else 1

    def schedule(self) -> Schedule:
        if self.schedule_file is not None:
            return load_schedule(self.schedule_file)
        return random_schedule(
            self.seed,
            duration=self.duration_s,
            interval=self.fault_interval_s,
            kinds=self.faults,
            targets=self.targets,
            partitions=self.partitions,
            fault_duration=self.fault_duration_s,
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["out_dir"] = str(self.out_dir)
        out["schedule_file"] = None if self.schedule_file is None else str(self.schedule_file)
        out["faults"] = [k.value for k in self.faults]
        out["targets"] = [t.value for t in self.targets]
        out["min_insync_replicas"] = self.min_isr
        out["controller_settings"] = {**EXPERIMENT_CONTROLLER, **self.controller_settings}
        out["broker_settings"] = {**EXPERIMENT_BROKER, **self.broker_settings}
        return out

    def title(self, schedule: Schedule) -> str:
        """One line for the timeline: the cluster, the topic, the acks and the schedule."""
        faults = (
            f"schedule {self.schedule_file.name}"
            if self.schedule_file is not None
            else f"seed {self.seed}: {','.join(k.value for k in self.faults)} every ~{self.fault_interval_s:g}s"
        )
        return (
            f"{self.controllers} controllers, {self.brokers} brokers, {self.partitions} partitions, "
            f"acks={'all' if self.acks == -1 else self.acks}{', unclean election' if self.unclean_election else ''}"
            f"{', netns' if self.netns else ''}{', tls' if self.tls else ''}; {faults} ({len(schedule.faults)} faults)"
        )
