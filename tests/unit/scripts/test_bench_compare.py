"""The pure parts of scripts/bench_compare.py (arguments) and scripts/bench_compare_report.py
(ratios, the table, profile summaries); no servers are started here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from scripts import bench_compare_report as report

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "bench_compare.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_compare", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_compare"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = load()


def run(case: str, system: str, **kw: Any) -> report.Run:
    return report.Run(case, system, 0, **kw)


def test_defaults_and_quick_mode() -> None:
    args = bench.parse_args([])
    assert (args.rounds, args.seconds) == (2, 10.0)
    assert "tuned" not in args.cases  # only with --tuned
    assert bench.parse_args(["--tuned"]).cases[1] == "tuned"
    quick = bench.parse_args(["--quick", "--rounds", "5"])
    assert (quick.rounds, quick.seconds) == (1, 2.0)


def test_unknown_case_and_bad_numbers_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--cases", "replicated,bogus"])
    assert "unknown case(s) bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--seconds", "0"])


def test_ratio_per_case() -> None:
    fast = run("replicated", "raftka", records=30_000, bytes=30_000 * 1024, elapsed=1.0)
    slow = run("replicated", "nats", records=10_000, bytes=10_000 * 1024, elapsed=2.0)
    assert report.ratio("replicated", fast, slow) == pytest.approx(6.0)
    consume = run("consume", "raftka", records=1, bytes=200_000_000, elapsed=1.0)
    redis = run("consume", "redis", records=9, bytes=400_000_000, elapsed=1.0)
    assert report.ratio("consume", consume, redis) == pytest.approx(0.5)  # MB/s, not records
    low = run("latency", "raftka", p50_ms=1.0, p99_ms=4.0)
    anchor = run("latency", "nats", p50_ms=1.0, p99_ms=8.0)
    assert report.ratio("latency", low, anchor) == pytest.approx(2.0)  # anchor p99 / ours
    assert report.ratio("replicated", run("replicated", "raftka", error="boom"), slow) is None


def test_table_lines_cpu_and_ratio() -> None:
    runs = [
        run("replicated", "raftka", records=20_000, bytes=20_480_000, elapsed=2.0,
            client_cpu_s=1.0, server_cpu_s={"b1": 0.5, "b2": 0.5}),
        run("replicated", "nats", records=5_000, bytes=5_120_000, elapsed=1.0),
        run("unreplicated", "raftka", error="worker did not start"),
    ]  # fmt: skip
    table = report.format_table(runs)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["case", "rnd", "system"]
    ours = next(line for line in lines if "raftka" in line and "replicated " in line)
    assert "10,000" in ours and "10.2" in ours  # records/s, MB/s
    assert "0.50" in ours and "50.0" in ours  # client cores, us per record
    assert ours.rstrip().endswith("2.00x")
    assert "failed: worker did not start" in table


def test_collapsed_stacks_summary() -> None:
    lines = [
        "run (asyncio/runners.py:118);send (raftka/client/producer/producer.py:170) 30",
        "run (asyncio/runners.py:118);append (raftka/client/producer/accumulator.py:90) 60",
        "run (asyncio/runners.py:118) 10",
        "not a sample line",
    ]
    top = report.summarize_collapsed(lines, top=2)
    assert top == [("accumulator.py:append", 60.0, 60.0), ("producer.py:send", 30.0, 30.0)]
    assert report.summarize_collapsed([]) == []
