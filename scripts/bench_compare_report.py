"""scripts/bench_compare.py's results: one run's figures, Raftka's ratio to its anchor, the
printed table, and py-spy profile summaries (pure: no processes)."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KIB = 1024


# ----------------------------------------------------------------------------- pure parts


@dataclass
class Run:
    """One system's figures in one case of one round."""

    case: str
    system: str
    round: int
    records: int = 0
    bytes: int = 0
    elapsed: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: dict[str, float] = field(default_factory=dict)
    p50_ms: float | None = None
    p99_ms: float | None = None
    load: float = 0.0
    """The machine's 1-minute load average when the run started (others' work shows here)."""
    error: str = ""

    @property
    def records_per_s(self) -> float:
        return self.records / self.elapsed if self.elapsed else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.elapsed / 1e6 if self.elapsed else 0.0

    @property
    def client_cores(self) -> float:
        return self.client_cpu_s / self.elapsed if self.elapsed else 0.0

    @property
    def server_cores(self) -> float:
        return sum(self.server_cpu_s.values()) / self.elapsed if self.elapsed else 0.0

    @property
    def client_us_per_record(self) -> float:
        return self.client_cpu_s / self.records * 1e6 if self.records else 0.0


RATIO_OF = {"replicated": "records/s", "tuned": "records/s", "unreplicated": "records/s",
            "consume": "MB/s", "latency": "p99"}  # fmt: skip
"""What Raftka's ratio to the anchor compares, per case (for latency: anchor p99 / Raftka
p99, so above 1 is better for Raftka everywhere)."""

ANCHOR = {"replicated": "nats", "tuned": "nats", "latency": "nats", "unreplicated": "redis",
          "consume": "redis"}  # fmt: skip


def ratio(case: str, raftka: Run, anchor: Run) -> float | None:
    """Raftka / anchor for ``case`` (None when either side has no figure)."""
    what = RATIO_OF[case]
    if raftka.error or anchor.error:
        return None
    if what == "p99":
        if not raftka.p99_ms or anchor.p99_ms is None:
            return None
        return anchor.p99_ms / raftka.p99_ms
    mine, theirs = (
        (raftka.records_per_s, anchor.records_per_s)
        if what == "records/s"
        else (raftka.mb_per_s, anchor.mb_per_s)
    )
    return mine / theirs if theirs else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(runs: Sequence[Run]) -> str:
    """One line per run, in case order then round then system; Raftka's lines carry the
    ratio to the anchor of the same case and round."""
    header = (
        f"{'case':<13} {'rnd':>3} {'system':<7} {'records/s':>10} {'MB/s':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'client cores':>12} {'us/rec':>7} {'server cores':>12} {'load':>5} "
        f"{'ratio':>8}"
    )
    lines = [header, "-" * len(header)]
    by_key = {(r.case, r.round, r.system): r for r in runs}
    cases = list(dict.fromkeys(r.case for r in runs))
    for case in cases:
        for rnd in sorted({r.round for r in runs if r.case == case}):
            for run in [r for r in runs if r.case == case and r.round == rnd]:
                if run.error:
                    lines.append(f"{case:<13} {rnd:>3} {run.system:<7} failed: {run.error}")
                    continue
                anchor = by_key.get((case, rnd, ANCHOR.get(case, "")))
                r = ratio(case, run, anchor) if run.system == "raftka" and anchor else None
                shown = "" if r is None else f"{r:.2f}x"
                lines.append(
                    f"{case:<13} {rnd:>3} {run.system:<7} {run.records_per_s:>10,.0f} "
                    f"{run.mb_per_s:>7.1f} {_ms(run.p50_ms):>7} {_ms(run.p99_ms):>7} "
                    f"{run.client_cores:>12.2f} {run.client_us_per_record:>7.1f} "
                    f"{run.server_cores:>12.2f} {run.load:>5.1f} {shown:>8}"
                )
    lines.append(
        "ratio: Raftka / anchor (NATS R3 for replicated, tuned, latency; Redis for "
        "unreplicated and consume) in records/s, MB/s for consume, anchor p99 / Raftka p99 "
        "for latency; us/rec: client CPU per record; load: 1-minute load average at the start"
    )
    return "\n".join(lines)


def summarize_collapsed(lines: Sequence[str], top: int = 12) -> list[tuple[str, float, float]]:
    """From py-spy's raw (collapsed stack) output: the ``top`` functions by own time, each as
    (function, own %, total %). A line is ``frame;frame;...;leaf count``."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    if not samples:
        return []
    return [(name, n / samples * 100, total[name] / samples * 100)
            for name, n in own.most_common(top)]  # fmt: skip


def _function(frame: str) -> str:
    """``send (raftka/client/producer/producer.py:170)`` -> ``producer.py:send``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0]
    return f"{Path(path).name}:{name}" if path else name
