"""The timeline PNG of an experiment (matplotlib, Agg backend: no display needed).

Three panels over the run's seconds, faults shaded in all of them (one colour per kind, the
target written at the top):
1. throughput: acknowledged sends per second, in total and per partition, with failed and
   indeterminate sends below the axis and unavailability windows as red bars;
2. latency of acknowledged sends: median and max per second (log scale);
3. leaders: who led each partition and the controller quorum, as coloured bars labelled with
   the node id, a black tick at every leader change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from raftka.ops.experiments.history import History, OpKind, Outcome
from raftka.ops.experiments.observer import Sample

KIND_COLOURS = {
    "kill": "#d62728",
    "power-loss": "#e377c2",
    "pause": "#1f77b4",
    "partition": "#9467bd",
    "delay": "#ff7f0e",
    "loss": "#8c564b",
}


class TimelineUnavailableError(Exception):
    """matplotlib is not installed."""


def draw_timeline(
    path: Path,
    history: History,
    report: Mapping[str, Any],
    samples: Sequence[Sample] = (),
    *,
    title: str = "",
) -> None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        raise TimelineUnavailableError(
            "the timeline needs matplotlib: pip install 'raftka[experiments]'"
        ) from None
    end = max((op.complete_time for op in history), default=1.0)
    width = min(24.0, max(15.0, end / 30))  # a long run gets a wider picture
    fig = Figure(figsize=(width, 10), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_tp, ax_lat, ax_lead = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 2]}
    )
    seconds = int(end) + 1
    acked_by_partition, bad, lat_median, lat_max = _per_second(history, seconds)
    xs = list(range(seconds))
    total = [sum(series[s] for series in acked_by_partition.values()) for s in xs]
    ax_tp.plot(xs, total, color="black", linewidth=1.4, label="acknowledged/s (all)")
    for partition, series in sorted(acked_by_partition.items()):
        ax_tp.plot(xs, series, linewidth=0.7, alpha=0.8, label=f"p{partition}")
    ax_tp.bar(
        xs, [-b for b in bad], width=1.0, color="#e377c2", alpha=0.7, label="failed+unknown/s"
    )
    for windows in report.get("unavailability", {}).get("partitions", {}).values():
        for w in windows:
            ax_tp.axvspan(w["start"], w["end"], ymin=0, ymax=0.03, color="red", alpha=0.9)
    ax_tp.set_ylabel("sends / s")
    outside = {"loc": "upper left", "bbox_to_anchor": (1.005, 1.0), "fontsize": 8}
    ax_tp.legend(**outside)
    ax_tp.axhline(0, color="grey", linewidth=0.5)
    figures = report.get("figures", {})
    headline = (
        f"acknowledged {figures.get('acknowledged', 0):,}   lost {figures.get('lost', 0)}   "
        f"duplicated {figures.get('duplicated', 0)}   (red bars: unavailability windows)"
    )
    ax_tp.set_title(f"{title}\n{headline}" if title else headline, fontsize=11)
    ax_lat.plot(xs, lat_median, color="#2ca02c", linewidth=1, label="median")
    ax_lat.plot(xs, lat_max, color="#d62728", linewidth=0.8, alpha=0.7, label="max")
    ax_lat.set_yscale("log")
    ax_lat.set_ylabel("ack latency (ms)")
    ax_lat.legend(**outside)
    lanes = _draw_leaders(ax_lead, samples, report, end)
    ax_lead.set_yticks(range(len(lanes)), lanes)
    ax_lead.set_ylim(-0.6, len(lanes) - 0.4)
    ax_lead.set_xlabel("seconds since the workload started")
    ax_lead.set_ylabel("leader")
    kinds_seen = _shade_faults([ax_tp, ax_lat, ax_lead], report.get("faults", []), end)
    if kinds_seen:
        handles = [Patch(color=KIND_COLOURS.get(k, "grey"), alpha=0.3, label=k) for k in kinds_seen]
        ax_lead.legend(handles=handles, title="faults", **outside)
    ax_lead.set_xlim(0, end)
    fig.savefig(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Redraw the timeline of a finished experiment from the files in its output directory."""
    import argparse
    import json
    import sys

    from raftka.ops.experiments.observer import load_samples

    parser = argparse.ArgumentParser(
        prog="python -m raftka.ops.experiments.timeline",
        description="Redraw an experiment's timeline.png from its history, report and samples.",
    )
    parser.add_argument("out_dir", type=Path, help="the experiment's --out directory")
    parser.add_argument("--png", type=Path, default=None, help="where to write (default: out_dir/timeline.png)")  # fmt: skip
    args = parser.parse_args(argv)
    out: Path = args.out_dir
    try:
        history = History.load(out / "history.jsonl")
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        samples_path = out / "metadata.jsonl"
        samples = load_samples(samples_path) if samples_path.exists() else []
        draw_timeline(
            args.png or out / "timeline.png",
            history,
            report,
            samples,
            title=report.get("title", ""),
        )
    except (OSError, ValueError, TimelineUnavailableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def _per_second(
    history: History, seconds: int
) -> tuple[dict[int, list[int]], list[int], list[float | None], list[float | None]]:
    acked: dict[int, list[int]] = defaultdict(lambda: [0] * seconds)
    bad = [0] * seconds
    latencies: list[list[float]] = [[] for _ in range(seconds)]
    for op in history:
        if op.kind is not OpKind.SEND:
            continue
        s = min(seconds - 1, max(0, int(op.complete_time)))
        if op.outcome is Outcome.OK:
            acked[op.partition.partition][s] += 1
            latencies[s].append((op.complete_time - op.invoke_time) * 1000)
        else:
            bad[s] += 1
    medians: list[float | None] = []
    maxima: list[float | None] = []
    for values in latencies:
        values.sort()
        medians.append(values[len(values) // 2] if values else None)
        maxima.append(values[-1] if values else None)
    return acked, bad, medians, maxima


def _draw_leaders(
    ax: Any, samples: Sequence[Sample], report: Mapping[str, Any], end: float
) -> list[str]:
    partitions = sorted({p for s in samples for p in (s.partitions or {})})
    lanes = [f"p{p}" for p in partitions] + ["controller"]
    series: list[list[tuple[float, int | None]]] = [[] for _ in lanes]
    for s in samples:
        for i, p in enumerate(partitions):
            if s.partitions is not None and p in s.partitions:
                leader = s.partitions[p].leader
                series[i].append((s.time, leader if leader >= 0 else None))
        series[-1].append((s.time, s.controller_leader))
    cmap = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f"]
    for row, points in enumerate(series):
        for start, stop, holder in _segments(points, end):
            if holder is None:
                continue
            ax.broken_barh(
                [(start, stop - start)],
                (row - 0.35, 0.7),
                color=cmap[holder % len(cmap)],
                alpha=0.85,
            )
            if stop - start > end / 60:
                ax.text((start + stop) / 2, row, str(holder), ha="center", va="center", fontsize=7)
    for change in report.get("leader_changes", []):
        where = change["partition"]
        if where == "controller":
            row = len(lanes) - 1
        elif where in partitions:
            row = partitions.index(where)
        else:
            continue
        ax.plot([change["time"]] * 2, [row - 0.45, row + 0.45], color="black", linewidth=1.2)
    return lanes


def _segments(
    points: Sequence[tuple[float, int | None]], end: float
) -> list[tuple[float, float, int | None]]:
    out: list[tuple[float, float, int | None]] = []
    for i, (time, leader) in enumerate(points):
        stop = points[i + 1][0] if i + 1 < len(points) else end
        if out and out[-1][2] == leader:
            out[-1] = (out[-1][0], stop, leader)
        else:
            out.append((time, stop, leader))
    return out


def _shade_faults(
    axes: Sequence[Any], faults: Sequence[Mapping[str, Any]], end: float
) -> list[str]:
    kinds: list[str] = []
    for f in faults:
        if f.get("started_at") is None or f.get("node") is None:
            continue
        start = float(f["started_at"])
        stop = float(f["healed_at"]) if f.get("healed_at") is not None else end
        colour = KIND_COLOURS.get(f["kind"], "grey")
        for ax in axes:
            ax.axvspan(start, stop, color=colour, alpha=0.15, linewidth=0)
        axes[0].text(
            start, 0.99, f"{f['kind']} n{f['node']}", transform=axes[0].get_xaxis_transform(),
            fontsize=7, rotation=90, va="top", ha="right", color=colour,
        )  # fmt: skip
        if f["kind"] not in kinds:
            kinds.append(f["kind"])
    return kinds
