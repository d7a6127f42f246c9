"""The figures of an experiment, computed from what was recorded (pure: no I/O but writing the
JSON file at the end).

- *Unavailability windows* of a partition: the gaps between consecutive acknowledged sends
  (by completion time, counting the workload's start and end as bounds) longer than
  ``threshold_s``. Each is attributed to the most recent fault that struck no later than
  ``slack_s`` after the window opened and healed no more than ``grace_s`` before it did
  (a leader moving back after a restart belongs to the fault that caused the restart);
  windows no fault explains are attributed to none.
- *Controller unavailability*: around each run of observer samples in which no controller
  answered as leader, from the last sample that found one to the next.
- *Time to a new leader* per fault: from the strike until the observer first saw another
  leader for a partition the target led (the slowest of them), or another controller leader
  when the target led the quorum. None when leadership never moved (a short pause, a follower).
- Per fault kind: median and max of the per-fault unavailability (the longest window any
  partition had because of it; 0 when none did) and of the times to a new leader.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftka.ops.experiments.history import History, OpKind, Outcome
from raftka.ops.experiments.nemesis import StruckFault
from raftka.ops.experiments.observer import LeaderChange, Sample
from raftka.ops.experiments.result import CheckResult

MAX_ANOMALIES_IN_REPORT = 50


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float
    partition: int | None
    """None: the controller quorum."""
    fault: int | None = None
    """Index of the fault it is attributed to."""

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "duration_s": round(self.duration, 3),
            "fault": self.fault,
        }


def partition_windows(
    history: History, topic: str, partitions: int, *, start: float, end: float, threshold_s: float
) -> list[Window]:
    """Gaps longer than ``threshold_s`` between acknowledged sends, per partition."""
    acks: dict[int, list[float]] = {p: [] for p in range(partitions)}
    for op in history:
        if op.kind is OpKind.SEND and op.outcome is Outcome.OK and op.partition.topic == topic:
            acks.setdefault(op.partition.partition, []).append(op.complete_time)
    windows = []
    for partition, times in sorted(acks.items()):
        bounds = [start, *sorted(t for t in times if start <= t <= end), end]
        windows += [
            Window(a, b, partition) for a, b in itertools.pairwise(bounds) if b - a > threshold_s
        ]
    return windows


def controller_windows(samples: Sequence[Sample]) -> list[Window]:
    """From the last sample that found a controller leader to the next one, around every run
    of samples that did not (each sample is stamped when its answer came, so a sample that
    failed after a slow timeout is covered from the last good answer)."""
    windows = []
    last_good: float | None = None
    failing = False
    for sample in samples:
        if sample.controller_leader is None:
            failing = True
            continue
        if failing:
            windows.append(
                Window(last_good if last_good is not None else samples[0].time, sample.time, None)
            )
            failing = False
        last_good = sample.time
    if failing:
        start = last_good if last_good is not None else samples[0].time
        windows.append(Window(start, samples[-1].time, None))
    return windows


def attribute(
    windows: Iterable[Window], struck: Sequence[StruckFault], *, slack_s: float, grace_s: float
) -> list[Window]:
    """Each window with the fault it is attributed to (see the module's doc)."""
    out = []
    for w in windows:
        fault = None
        for record in struck:
            if record.started_at is None or record.node is None:
                continue
            healed = record.healed_at if record.healed_at is not None else float("inf")
            if record.started_at <= w.start + slack_s and w.start <= healed + grace_s:
                fault = record.fault.index  # the latest that fits wins
        out.append(Window(w.start, w.end, w.partition, fault))
    return out


def time_to_new_leader(
    record: StruckFault, changes: Sequence[LeaderChange]
) -> dict[str, float | None]:
    """Seconds from the strike until leadership moved off the target, per partition it led
    ("controller" when it led the quorum); None where it never moved."""
    out: dict[str, float | None] = {}
    if record.started_at is None or record.node is None:
        return out
    node, t0 = record.node, record.started_at
    wanted: list[int | None] = list(record.led_partitions)
    if record.was_controller_leader:
        wanted.append(None)
    for partition in wanted:
        moved = next(
            (
                c.time - t0
                for c in changes
                if c.partition == partition and c.time >= t0 and c.leader >= 0 and c.leader != node
            ),
            None,
        )
        out["controller" if partition is None else str(partition)] = (
            None if moved is None else round(moved, 3)
        )
    return out


def fault_figures(
    struck: Sequence[StruckFault], windows: Sequence[Window], changes: Sequence[LeaderChange]
) -> list[dict[str, Any]]:
    figures = []
    for i, record in enumerate(struck):
        mine = [w for w in windows if w.fault == record.fault.index and w.partition is not None]
        ctrl = [w for w in windows if w.fault == record.fault.index and w.partition is None]
        leaders = time_to_new_leader(record, changes)
        # A leader elected only after the next fault struck is not this fault's doing.
        limit = _next_start(struck, i)
        known = [t for t in leaders.values() if t is not None]
        newest = max(known) if known else None
        if (
            newest is not None
            and record.started_at is not None
            and record.started_at + newest > limit
        ):
            newest = None
        figures.append(
            {
                **record.to_json(),
                "unavailability_s": round(max((w.duration for w in mine), default=0.0), 3),
                "unavailable_partitions": sorted(
                    {w.partition for w in mine if w.partition is not None}
                ),
                "controller_unavailability_s": round(sum(w.duration for w in ctrl), 3),
                "time_to_new_leader_s": newest,
                "time_to_new_leader_by_partition": leaders,
            }
        )
    return figures


def _next_start(struck: Sequence[StruckFault], i: int) -> float:
    later = [r.started_at for r in struck[i + 1 :] if r.started_at is not None]
    return min(later, default=float("inf"))


def by_kind(figures: Sequence[Mapping[str, Any]], key: str = "kind") -> dict[str, Any]:
    """Median and max unavailability and time to a new leader, per fault kind (or ``key``)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for f in figures:
        if f["node"] is None:
            continue
        groups.setdefault(str(f[key]) if key == "kind" else f"{f['kind']}/{f[key]}", []).append(f)
    out = {}
    for name, group in sorted(groups.items()):
        unavailable = [float(f["unavailability_s"]) for f in group]
        leaders = [
            float(f["time_to_new_leader_s"]) for f in group if f["time_to_new_leader_s"] is not None
        ]
        out[name] = {
            "faults": len(group),
            "unavailability_median_s": _median(unavailable),
            "unavailability_max_s": _max(unavailable),
            "moved_a_leader": len(leaders),
            "time_to_new_leader_median_s": _median(leaders),
            "time_to_new_leader_max_s": _max(leaders),
        }
    return out


def build_report(
    *,
    history: History,
    result: CheckResult,
    topic: str,
    partitions: int,
    struck: Sequence[StruckFault],
    samples: Sequence[Sample],
    changes: Sequence[LeaderChange],
    workload_start: float,
    workload_end: float,
    threshold_s: float = 1.0,
    grace_s: float = 10.0,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    raw = partition_windows(
        history, topic, partitions, start=workload_start, end=workload_end, threshold_s=threshold_s
    )
    windows = attribute(
        [*raw, *controller_windows(samples)], struck, slack_s=threshold_s, grace_s=grace_s
    )
    figures = fault_figures(struck, windows, changes)
    counts = result.counts
    sends = [op for op in history if op.kind is OpKind.SEND]
    elapsed = max(workload_end - workload_start, 1e-9)
    checked = result.to_json()
    return {
        **(extra or {}),
        "valid": result.valid,
        "figures": {
            "operations": counts.operations,
            "sends": counts.sends,
            "acknowledged": counts.acknowledged,
            "failed": counts.failed,
            "indeterminate": counts.indeterminate,
            "lost": counts.lost,
            "duplicated": counts.duplicated,
            "vanished": counts.vanished,
            "unacknowledged_reads": counts.unacknowledged_reads,
            "polls": counts.polls,
            "acknowledged_per_s": round(counts.acknowledged / elapsed, 1),
            "send_latency_ms": _latencies(sends),
        },
        "check": {
            **{k: v for k, v in checked.items() if k != "anomalies"},
            "anomalies": checked["anomalies"][:MAX_ANOMALIES_IN_REPORT],
            "anomalies_left_out": max(0, len(checked["anomalies"]) - MAX_ANOMALIES_IN_REPORT),
        },
        "unavailability": {
            "threshold_s": threshold_s,
            "partitions": {
                str(p): [w.to_json() for w in windows if w.partition == p]
                for p in range(partitions)
            },
            "controller": [w.to_json() for w in windows if w.partition is None],
        },
        "faults": figures,
        "by_fault_kind": by_kind(figures),
        "by_fault_kind_and_target": by_kind(figures, key="target"),
        "leader_changes": [c.to_json() for c in changes],
    }


def _latencies(sends: Sequence[Any]) -> dict[str, float | None]:
    ok = sorted(
        (op.complete_time - op.invoke_time) * 1000 for op in sends if op.outcome is Outcome.OK
    )
    if not ok:
        return {"median": None, "p99": None, "max": None}
    return {
        "median": round(statistics.median(ok), 2),
        "p99": round(ok[min(len(ok) - 1, int(len(ok) * 0.99))], 2),
        "max": round(ok[-1], 2),
    }


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _max(values: Sequence[float]) -> float | None:
    return round(max(values), 3) if values else None


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """A few lines for the terminal at the end of a run."""
    f = report["figures"]
    lines = [
        f"operations {f['operations']:,}  acknowledged {f['acknowledged']:,}  "
        f"failed {f['failed']:,}  indeterminate {f['indeterminate']:,}",
        f"lost {f['lost']}  duplicated {f['duplicated']}  vanished {f['vanished']}  "
        f"anomalies {sum(report['check']['anomaly_counts'].values())}  "
        f"unchecked partitions {len(report['check']['unchecked_partitions'])}",
    ]
    for kind, k in report["by_fault_kind"].items():
        lines.append(
            f"{kind:<10} faults {k['faults']:>3}  unavailability median "
            f"{_s(k['unavailability_median_s'])} max {_s(k['unavailability_max_s'])}  "
            f"new leader median {_s(k['time_to_new_leader_median_s'])} "
            f"max {_s(k['time_to_new_leader_max_s'])} ({k['moved_a_leader']} moved)"
        )
    return lines


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"
