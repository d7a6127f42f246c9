"""The timeline PNG: written, decodable, of the expected size, with and without faults."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image

from raftka.ops.experiments.checker import check
from raftka.ops.experiments.observer import Sample, dump_samples, load_samples
from raftka.ops.experiments.report import build_report
from raftka.ops.experiments.targets import ObservedPartition
from raftka.ops.experiments.timeline import draw_timeline, main
from tests.unit.ops.experiments.test_report import CHANGES, P0, P1, TOPIC, acked_history, struck


def test_the_timeline_is_a_png_that_decodes(tmp_path: Path) -> None:
    history = acked_history(P0, P1)
    samples = [
        Sample(
            t / 4,
            1 if t < 30 else 2,
            {
                0: ObservedPartition(4 if t < 17 else 5, 1, (4, 5, 6), (4, 5, 6)),
                1: ObservedPartition(6, 1, (6, 4, 5), (6, 4, 5)),
            },
        )
        for t in range(40)
    ]
    report = build_report(
        history=history, result=check(history), topic=TOPIC, partitions=2, struck=struck(),
        samples=samples, changes=CHANGES, workload_start=0.0, workload_end=10.0,
    )  # fmt: skip
    path = tmp_path / "timeline.png"
    draw_timeline(path, history, report, samples)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(str(path))
    assert pixels.shape[:2] == (1000, 1500)
    assert pixels.std() > 0.05, "something was drawn"


def test_a_timeline_without_faults_or_samples_still_draws(tmp_path: Path) -> None:
    history = acked_history(P0, P1)
    report = build_report(
        history=history, result=check(history), topic=TOPIC, partitions=2, struck=[],
        samples=[], changes=[], workload_start=0.0, workload_end=10.0,
    )  # fmt: skip
    path = tmp_path / "empty.png"
    draw_timeline(path, history, report)
    assert matplotlib.image.imread(str(path)).shape[:2] == (1000, 1500)


def test_a_timeline_can_be_redrawn_from_an_experiments_files(tmp_path: Path) -> None:
    history = acked_history(P0, P1)
    samples = [Sample(t / 4, 1, {0: ObservedPartition(4, 1, (4, 5, 6), (4, 5))}) for t in range(8)]
    report = build_report(
        history=history, result=check(history), topic=TOPIC, partitions=2, struck=struck(),
        samples=samples, changes=CHANGES, workload_start=0.0, workload_end=10.0,
        extra={"title": "seed 1"},
    )  # fmt: skip
    history.dump(tmp_path / "history.jsonl")
    (tmp_path / "report.json").write_text(json.dumps(report))
    dump_samples(samples, tmp_path / "metadata.jsonl")
    assert load_samples(tmp_path / "metadata.jsonl") == samples
    assert main([str(tmp_path)]) == 0
    assert matplotlib.image.imread(str(tmp_path / "timeline.png")).shape[:2] == (1000, 1500)
    assert main([str(tmp_path / "missing")]) == 2
