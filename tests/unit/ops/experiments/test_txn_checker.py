"""The transactional checker: each anomaly is caught on a history planted with it, and a clean
history passes."""

from __future__ import annotations

from pathlib import Path

from raftka.client.types import TopicPartition
from raftka.ops.experiments.txn_history import (
    TxnAttempt,
    TxnOutcome,
    load_attempts,
    write_attempts,
)
from raftka.ops.experiments.txn_rules import (
    StableOffsets,
    TxnAnomalyKind,
    check_pipeline,
    check_transactions,
)

P0 = TopicPartition("out", 0)
P1 = TopicPartition("out", 1)


def attempt(key: str, outcome: TxnOutcome, *partitions: TopicPartition) -> TxnAttempt:
    writes = tuple((tp, f"{key}/{i}") for i, tp in enumerate(partitions))
    return TxnAttempt(key, writes, outcome, started=0.0, ended=1.0)


def final_of(*attempts: TxnAttempt) -> dict[TopicPartition, list[str]]:
    final: dict[TopicPartition, list[str]] = {P0: [], P1: []}
    for a in attempts:
        for tp, v in a.writes:
            final[tp].append(v)
    return final


def test_a_clean_history_passes() -> None:
    committed = attempt("p0#0.1", TxnOutcome.COMMITTED, P0, P1)
    aborted = attempt("p0#0.2", TxnOutcome.ABORTED, P0, P1)
    unknown_kept = attempt("p1#0.1", TxnOutcome.UNKNOWN, P0)
    unknown_dropped = attempt("p1#0.2", TxnOutcome.UNKNOWN, P1)
    result = check_transactions(
        [committed, aborted, unknown_kept, unknown_dropped],
        final=final_of(committed, unknown_kept),
        observed=["p0#0.1/0"],
        stable_offsets={P0: StableOffsets(5, 5), P1: StableOffsets(3, 3)},
    )
    assert result.valid, result.anomalies
    assert (result.committed, result.aborted, result.unknown, result.read) == (1, 1, 2, 3)


def test_an_aborted_write_read_during_the_run_or_at_the_end_is_an_aborted_read() -> None:
    aborted = attempt("p0#0.2", TxnOutcome.ABORTED, P0, P1)
    during = check_transactions([aborted], final=final_of(), observed=["p0#0.2/1"])
    assert [a.subject for a in during.of_kind(TxnAnomalyKind.ABORTED_READ)] == ["p0#0.2"]
    at_end = check_transactions([aborted], final=final_of(aborted))
    assert len(at_end.of_kind(TxnAnomalyKind.ABORTED_READ)) == 2


def test_part_of_a_transaction_is_torn_whatever_its_outcome_but_aborted() -> None:
    for outcome in (TxnOutcome.COMMITTED, TxnOutcome.UNKNOWN):
        a = attempt("p0#0.1", outcome, P0, P1)
        result = check_transactions([a], final={P0: ["p0#0.1/0"], P1: []})
        assert [x.kind for x in result.anomalies] == [TxnAnomalyKind.TORN_TRANSACTION]


def test_a_committed_transaction_missing_entirely_is_lost_an_unknown_one_is_not() -> None:
    committed = attempt("p0#0.1", TxnOutcome.COMMITTED, P0, P1)
    unknown = attempt("p0#0.2", TxnOutcome.UNKNOWN, P0, P1)
    result = check_transactions([committed, unknown], final=final_of())
    assert [(a.kind, a.subject) for a in result.anomalies] == [
        (TxnAnomalyKind.LOST_COMMITTED_WRITE, "p0#0.1")
    ]


def test_a_write_read_twice_is_duplicated() -> None:
    committed = attempt("p0#0.1", TxnOutcome.COMMITTED, P0)
    final = {P0: ["p0#0.1/0", "p0#0.1/0"], P1: []}
    result = check_transactions([committed], final=final)
    assert [a.kind for a in result.anomalies] == [TxnAnomalyKind.DUPLICATED_WRITE]


def test_a_last_stable_offset_left_below_the_high_watermark_is_a_hanging_transaction() -> None:
    result = check_transactions(
        [], final=final_of(), stable_offsets={P0: StableOffsets(7, 9), P1: StableOffsets(4, 4)}
    )
    assert [(a.kind, a.subject) for a in result.anomalies] == [
        (TxnAnomalyKind.HANGING_TRANSACTION, "out-0")
    ]


def test_the_pipeline_needs_every_source_record_exactly_once() -> None:
    assert check_pipeline(["a", "b"], ["copy:a", "copy:b"]) == ()
    anomalies = check_pipeline(["a", "b", "c"], ["copy:a", "copy:a", "copy:c", "copy:zz"])
    kinds = sorted((a.kind.value, a.subject) for a in anomalies)
    assert kinds == [
        ("duplicated_write", "a"),
        ("duplicated_write", "copy:zz"),
        ("lost_committed_write", "b"),
    ]


def test_attempts_round_trip_through_a_file_and_a_torn_last_line_is_skipped(
    tmp_path: Path,
) -> None:
    attempts = [
        attempt("p0#0.1", TxnOutcome.COMMITTED, P0, P1),
        attempt("p0#0.2", TxnOutcome.UNKNOWN, P1),
    ]
    path = tmp_path / "txn.jsonl"
    write_attempts(path, attempts)
    assert load_attempts(path) == attempts
    with path.open("a", encoding="utf-8") as f:
        f.write('{"key": "p0#0.3", "wri')
    assert load_attempts(path) == attempts
