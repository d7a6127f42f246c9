"""Checks a failover experiment's history for the anomalies of Jepsen's Kafka queue workload.

:func:`check` indexes the history by partition in one pass, then runs each rule (see
``value_rules`` and ``order_rules``) over each partition; everything is linear or a sort, so a
history of a few hundred thousand operations checks in seconds. Re-check a saved history with::

    python -m raftka.ops.experiments.checker history.jsonl

which prints the result as JSON and exits 0 when the history is clean, 1 when it holds
anomalies, and 2 when the file cannot be read or breaks the history model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from raftka.ops.experiments import order_rules, value_rules
from raftka.ops.experiments.history import History, InvalidHistoryError, Operation, Outcome
from raftka.ops.experiments.result import Anomaly, AnomalyKind, CheckResult, Counts
from raftka.ops.experiments.views import HistoryIndex, PartitionHistory, index_history

_KIND_ORDER = {kind: i for i, kind in enumerate(AnomalyKind)}


def check(history: Iterable[Operation]) -> CheckResult:
    """Every anomaly in ``history``, sorted by partition, kind and offset. Raises
    :class:`InvalidHistoryError` when the history breaks the model (a value sent twice)."""
    index = index_history(history)
    anomalies: list[Anomaly] = []
    for view in index.partitions.values():
        anomalies += _check_partition(view, index)
    anomalies.sort(
        key=lambda a: (a.partition, _KIND_ORDER[a.kind], a.offsets, a.values, a.explanation)
    )
    unchecked = sorted(
        tp
        for tp, view in index.partitions.items()
        if view.final is None and (view.sends or view.polls)
    )
    return CheckResult(tuple(anomalies), _counts(index, anomalies), tuple(unchecked))


def _check_partition(view: PartitionHistory, index: HistoryIndex) -> list[Anomaly]:
    return [
        *value_rules.lost_writes(view),
        *value_rules.vanished(view, index.sends),
        *value_rules.duplicates(view),
        *value_rules.offset_mismatches(view),
        *order_rules.producer_order(view),
        *order_rules.nonmonotonic_reads(view),
        *order_rules.poll_skips(view),
        *value_rules.unacknowledged_reads(view, index.sends),
    ]


def _counts(index: HistoryIndex, anomalies: Sequence[Anomaly]) -> Counts:
    outcomes = {outcome: 0 for outcome in Outcome}
    seen = 0
    for value, send in index.sends.items():
        outcomes[send.outcome] += 1
        if send.outcome is Outcome.INFO and value in index.view(send.partition).read_offsets:
            seen += 1

    def values_of(kind: AnomalyKind) -> int:
        return len({(a.partition, v) for a in anomalies if a.kind is kind for v in a.values})

    views = index.partitions.values()
    return Counts(
        operations=index.operations,
        sends=len(index.sends),
        acknowledged=outcomes[Outcome.OK],
        failed=outcomes[Outcome.FAIL],
        indeterminate=outcomes[Outcome.INFO],
        indeterminate_seen=seen,
        indeterminate_missing=outcomes[Outcome.INFO] - seen,
        polls=sum(len(v.polls) for v in views),
        final_reads=sum(len(v.final_reads) for v in views),
        lost=values_of(AnomalyKind.LOST_WRITE),
        vanished=values_of(AnomalyKind.VANISHED),
        duplicated=values_of(AnomalyKind.DUPLICATE),
        unacknowledged_reads=values_of(AnomalyKind.UNACKNOWLEDGED_READ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Checks a saved history file and prints the result as JSON; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m raftka.ops.experiments.checker",
        description="Check a failover experiment's history (JSON lines) for anomalies.",
    )
    parser.add_argument("history", type=Path, help="a history saved by History.dump")
    args = parser.parse_args(argv)
    try:
        result = check(History.load(args.history))
    except (OSError, InvalidHistoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_json(), indent=2))
    return 0 if result.valid else 1


if __name__ == "__main__":
    sys.exit(main())
