"""The history checker: a clean history, one hand-made history per anomaly, seeded random valid
histories and single corruptions of them, the JSON report and the command line."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from raftka.common.ids import Offset
from raftka.ops.experiments.checker import check, main
from raftka.ops.experiments.history import (
    History,
    InvalidHistoryError,
    Operation,
    OpKind,
    Outcome,
    ReadRecord,
)
from raftka.ops.experiments.result import AnomalyKind, CheckResult

from .histories import random_history
from .support import FAIL, INFO, OK, OTHER, READER, TP, final, final_at, poll, send


def kinds(result: CheckResult) -> list[AnomalyKind]:
    return [a.kind for a in result.anomalies]


def only(result: CheckResult, kind: AnomalyKind) -> str:
    """The explanation of the one anomaly ``result`` must hold, which must be of ``kind``."""
    assert kinds(result) == [kind], result.to_json()
    return result.anomalies[0].explanation


# A clean history


def test_clean_history_has_no_anomalies_and_counts_every_outcome() -> None:
    result = check(
        [
            send(1, "a", 0.0, offset=0),
            send(1, "b", 1.0, offset=1),
            send(2, "c", 0.2, outcome=INFO),  # written after all
            send(2, "d", 1.2, outcome=INFO),  # never written
            send(2, "e", 2.2, outcome=FAIL),
            poll(3, 0, [(0, "a"), (1, "b")], 2.0),
            Operation.poll(3, TP, 2, [], invoke=3.0, complete=4.0, outcome=INFO),
            poll(3, 2, [(2, "c")], 5.0),
            final("a", "b", "c"),
        ]
    )
    assert result.valid and result.anomalies == () and result.unchecked_partitions == ()
    counts = result.counts
    assert (counts.operations, counts.sends, counts.acknowledged, counts.failed) == (9, 5, 2, 1)
    assert (counts.indeterminate, counts.indeterminate_seen, counts.indeterminate_missing) == (
        2,
        1,
        1,
    )
    assert (counts.polls, counts.final_reads) == (2, 1)
    assert (counts.lost, counts.vanished, counts.duplicated, counts.unacknowledged_reads) == (
        0,
        0,
        0,
        0,
    )


def test_a_partition_without_a_final_read_is_unchecked_not_lost() -> None:
    timed_out = Operation.final_read(
        READER, TP, [], invoke=100.0, complete=110.0, outcome=Outcome.INFO
    )
    result = check([send(1, "a", 0.0, offset=0), timed_out])
    assert result.valid and result.counts.lost == 0
    assert result.unchecked_partitions == (TP,)
    assert result.to_json()["unchecked_partitions"] == ["t-0"]


# One hand-made history per anomaly kind


def test_lost_write() -> None:
    history = [send(1, "a", 0, offset=0), send(2, "b", 0, offset=1), send(3, "c", 0, offset=2)]
    result = check([*history, final_at([(0, "a"), (2, "c")])])
    explanation = only(result, AnomalyKind.LOST_WRITE)
    assert "'b'" in explanation and "offset 1" in explanation
    assert result.anomalies[0].values == ("b",) and result.counts.lost == 1


def test_vanished_value_was_polled_then_missing_from_the_final_read() -> None:
    history = [send(1, "a", 0, offset=0), send(2, "c", 0, outcome=INFO)]
    result = check([*history, poll(3, 0, [(0, "a"), (1, "c")], 1.0), final("a")])
    explanation = only(result, AnomalyKind.VANISHED)
    assert "'c'" in explanation and "offset 1" in explanation and "process 3" in explanation
    assert result.counts.vanished == 1


def test_duplicate_in_the_final_read() -> None:
    history = [send(1, "a", 0, offset=0), send(1, "b", 1, offset=1)]
    result = check([*history, final("a", "b", "a")])
    explanation = only(result, AnomalyKind.DUPLICATE)
    assert "'a'" in explanation and "offsets 0, 2" in explanation
    assert result.counts.duplicated == 1


def test_duplicate_across_reads() -> None:
    history = [send(1, "a", 0, outcome=INFO), send(2, "b", 0, offset=1)]
    result = check([*history, poll(3, 5, [(5, "a")], 1.0), final("a", "b")])
    assert "offsets 0, 5" in only(result, AnomalyKind.DUPLICATE)


def test_offset_mismatch_between_an_ack_and_a_read() -> None:
    history = [send(1, "a", 0, offset=0), send(2, "b", 0, outcome=INFO)]
    explanation = only(check([*history, final("b", "a")]), AnomalyKind.OFFSET_MISMATCH)
    assert explanation == "offset 0 of t-0 holds different values: 'a' (acked), 'b' (read)"


def test_offset_mismatch_two_sends_acknowledged_at_one_offset() -> None:
    history = [send(1, "a", 0, offset=0), send(2, "b", 0, offset=0)]
    explanation = only(check([*history, final("a", "b")]), AnomalyKind.OFFSET_MISMATCH)
    assert "'a' (acked+read), 'b' (acked)" in explanation


def test_offset_mismatch_acknowledged_offset_is_not_where_the_value_is_read() -> None:
    result = check([send(1, "a", 0, offset=5), final("a")])
    explanation = only(result, AnomalyKind.OFFSET_MISMATCH)
    assert "acknowledged at offset 5" in explanation and "read at offset 0" in explanation
    assert result.anomalies[0].offsets == (5, 0)


def test_out_of_order_producer() -> None:
    history = [send(1, "a", 0.0, offset=1), send(1, "b", 1.0, offset=0)]
    explanation = only(check([*history, final("b", "a")]), AnomalyKind.OUT_OF_ORDER)
    assert explanation.startswith("producer order: process 1")
    assert "'a' at offset 1, after 'b' at offset 0" in explanation


def test_concurrent_sends_of_one_producer_may_land_in_either_order() -> None:
    history = [send(1, "a", 0.0, offset=1, done=2.0), send(1, "b", 1.0, offset=0, done=3.0)]
    assert check([*history, final("b", "a")]).valid


def test_out_of_order_nonmonotonic_poll() -> None:
    history = [send(1, "a", 0, outcome=INFO), send(1, "b", 1, outcome=INFO)]
    result = check([*history, poll(2, 0, [(1, "b"), (0, "a")], 2.0), final("a", "b")])
    explanation = only(result, AnomalyKind.OUT_OF_ORDER)
    assert explanation.startswith("nonmonotonic poll: process 2's poll")
    assert "offset 0 ('a') after offset 1 ('b')" in explanation


def test_out_of_order_poll_below_its_from_offset() -> None:
    history = [send(1, "a", 0, offset=0), send(1, "b", 1, offset=1)]
    result = check([*history, poll(2, 1, [(0, "a"), (1, "b")], 2.0), final("a", "b")])
    assert "below its from_offset 1" in only(result, AnomalyKind.OUT_OF_ORDER)


def test_out_of_order_poll_skip_within_a_poll() -> None:
    history = [send(1, v, i, outcome=INFO) for i, v in enumerate("abc")]
    result = check([*history, poll(2, 0, [(0, "a"), (2, "c")], 5.0), final("a", "b", "c")])
    explanation = only(result, AnomalyKind.OUT_OF_ORDER)
    assert explanation.startswith("poll skip: process 2")
    assert "skipping offset 1 ('b')" in explanation
    assert result.anomalies[0].values == ("b",)


def test_out_of_order_poll_skip_between_polls() -> None:
    history = [send(1, v, i, offset=i) for i, v in enumerate("abc")]
    polls = [poll(2, 0, [(0, "a")], 5.0), poll(2, 2, [(2, "c")], 6.0)]
    explanation = only(check([*history, *polls, final("a", "b", "c")]), AnomalyKind.OUT_OF_ORDER)
    assert "at offset 1, polled t-0 from offset 2" in explanation
    assert "skipping offset 1 ('b')" in explanation


def test_a_skipped_value_the_consumer_reads_later_is_no_skip() -> None:
    history = [send(1, v, i, offset=i) for i, v in enumerate("abc")]
    polls = [poll(2, 0, [(0, "a"), (2, "c")], 5.0), poll(2, 1, [(1, "b"), (2, "c")], 6.0)]
    assert check([*history, *polls, final("a", "b", "c")]).valid


@pytest.mark.parametrize(
    ("sends", "why"),
    [
        ([], "was never sent"),
        ([send(1, "x", 0.0, outcome=FAIL)], "that send failed"),
        ([send(1, "x", 0.0, outcome=INFO, tp=OTHER)], "was sent to t-1, not here"),
        ([send(1, "x", 50.0, outcome=INFO)], "before process 1 began sending it at 50.0"),
    ],
)
def test_unacknowledged_read(sends: list[Operation], why: str) -> None:
    history = [send(2, "a", 0.0, offset=0), *sends, poll(3, 0, [(0, "a"), (1, "x")], 1.0)]
    result = check([*history, final("a", "x")])
    explanation = only(result, AnomalyKind.UNACKNOWLEDGED_READ)
    assert explanation.startswith("'x' read at offset 1 of t-0") and why in explanation
    assert result.counts.unacknowledged_reads == 1


def test_a_failed_value_read_then_gone_is_an_unacknowledged_read_not_a_vanished_one() -> None:
    history = [send(1, "x", 0.0, outcome=FAIL), poll(2, 0, [(0, "x")], 1.0), final()]
    assert kinds(check(history)) == [AnomalyKind.UNACKNOWLEDGED_READ]


def test_a_value_sent_twice_is_a_bad_history() -> None:
    with pytest.raises(InvalidHistoryError, match="'a' is sent twice"):
        check([send(1, "a", 0.0, offset=0), send(2, "a", 1.0, offset=1)])


# Random valid histories, and one corruption at a time


SEEDS = range(200)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_valid_histories_check_clean(seed: int) -> None:
    result = check(random_history(seed))
    assert result.valid, result.to_json()["anomalies"][:5]
    assert result.counts.acknowledged > 0 and result.counts.polls > 0


def corrupt_final(history: History, seed: int, change: str) -> tuple[History, list[ReadRecord]]:
    """Rewrites one final read of ``history``: drops, duplicates or swaps acknowledged values.
    Returns the new history and the records the change touched."""
    rng = random.Random(seed)
    acked = {op.value for op in history if op.kind is OpKind.SEND and op.outcome is OK}
    finals = [op for op in history if op.kind is OpKind.FINAL_READ]
    target = rng.choice([op for op in finals if sum(r.value in acked for r in op.records) >= 2])
    records = list(target.records)
    picks = rng.sample([i for i, r in enumerate(records) if r.value in acked], 2)
    touched = [records[i] for i in picks]
    if change == "drop":
        del records[picks[0]]
    elif change == "duplicate":
        records.append(ReadRecord(Offset(records[-1].offset + 1), touched[0].value))
    else:
        a, b = picks
        records[a], records[b] = (
            ReadRecord(records[a].offset, records[b].value),
            ReadRecord(records[b].offset, records[a].value),
        )
    changed = dataclasses.replace(target, records=tuple(records))
    return History([changed if op is target else op for op in history]), touched


@pytest.mark.parametrize("seed", range(0, 200, 4))
def test_every_single_corruption_of_a_valid_history_is_detected(seed: int) -> None:
    history = random_history(seed)

    dropped, (gone, _) = corrupt_final(history, seed, "drop")
    lost = check(dropped).of_kind(AnomalyKind.LOST_WRITE)
    assert [a.values for a in lost] == [(gone.value,)]
    assert f"{gone.value!r} was acknowledged at offset {gone.offset}" in lost[0].explanation

    doubled, (twice, _) = corrupt_final(history, seed, "duplicate")
    dupes = check(doubled).of_kind(AnomalyKind.DUPLICATE)
    assert [a.values for a in dupes] == [(twice.value,)]

    swapped, (first, second) = corrupt_final(history, seed, "swap")
    mismatched = check(swapped).of_kind(AnomalyKind.OFFSET_MISMATCH)
    assert {a.offsets for a in mismatched} == {(first.offset,), (second.offset,)}
    assert all(set(a.values) == {first.value, second.value} for a in mismatched)


def test_an_injected_phantom_is_detected() -> None:
    history = random_history(3)
    last = history.operations[-1]
    end = last.records[-1].offset + 1 if last.records else 0
    phantom = dataclasses.replace(last, records=(*last.records, ReadRecord(Offset(end), "ghost")))
    result = check(History([*history.operations[:-1], phantom]))
    assert [(a.kind, a.values) for a in result.anomalies] == [
        (AnomalyKind.UNACKNOWLEDGED_READ, ("ghost",))
    ]


# Reporting and the command line


def test_result_to_json_is_serialisable_and_counts_kinds() -> None:
    history = [send(1, "a", 0, offset=0), send(1, "b", 1, offset=2), final("a", "a")]
    report = json.loads(json.dumps(check(history).to_json()))
    assert report["valid"] is False
    assert report["anomaly_counts"]["lost_write"] == 1
    assert report["anomaly_counts"]["duplicate"] == 1
    assert report["counts"]["lost"] == 1 and report["counts"]["duplicated"] == 1
    assert {a["kind"] for a in report["anomalies"]} == {"lost_write", "duplicate"}


def test_main_exit_status_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean, broken = tmp_path / "clean.jsonl", tmp_path / "broken.jsonl"
    History([send(1, "a", 0, offset=0), final("a")]).dump(clean)
    History([send(1, "a", 0, offset=0), final()]).dump(broken)

    assert main([str(clean)]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    assert main([str(broken)]) == 1
    assert json.loads(capsys.readouterr().out)["anomalies"][0]["values"] == ["a"]
    assert main([str(tmp_path / "missing.jsonl")]) == 2
    assert "error:" in capsys.readouterr().err


def test_runs_as_a_module(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    History([send(1, "a", 0, offset=0), final()]).dump(path)
    module = "raftka.ops.experiments.checker"
    run = subprocess.run(
        [sys.executable, "-m", module, str(path)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["anomaly_counts"]["lost_write"] == 1
    assert run.stderr == ""
