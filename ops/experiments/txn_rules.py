"""Checks a transactional history against what read_committed consumers saw (Jepsen's
transactional anomalies, for a Kafka-style log).

The history (:mod:`raftka.ops.experiments.txn_history`) holds every transaction a producer
attempted: its writes (a value per write, each unique in the experiment, and the partition it
went to) and what the producer learned of its end (``committed``: commit_transaction returned;
``aborted``: abort_transaction returned, or the transaction never reached commit; ``unknown``:
commit was called and its outcome was lost with a crash or an error). What consumers saw comes
as read_committed reads: during the run (``observed``) and a final read of every partition
after the faults healed (``final``). A consume-transform-produce pipeline is checked on its
own: every committed source record must appear exactly once in its output.

Anomalies:

* **aborted read**: a read_committed consumer returned a write of an aborted transaction.
* **torn transaction**: the final read holds some but not all writes of one transaction.
* **lost committed write**: a transaction the producer saw committed is missing from the final
  read (entirely; partly missing is torn), or a committed source record is missing from the
  pipeline's output.
* **duplicated write**: one write appears twice in the final read, or a source record appears
  more than once in the pipeline's output.
* **hanging transaction**: after every producer stopped and the transaction timeout passed, a
  partition's last stable offset is still below its high watermark (an open transaction nobody
  will finish holds read_committed consumers back).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from raftka.client.types import TopicPartition
from raftka.ops.experiments.txn_history import TxnAttempt, TxnOutcome


class TxnAnomalyKind(Enum):
    ABORTED_READ = "aborted_read"
    TORN_TRANSACTION = "torn_transaction"
    LOST_COMMITTED_WRITE = "lost_committed_write"
    DUPLICATED_WRITE = "duplicated_write"
    HANGING_TRANSACTION = "hanging_transaction"


@dataclass(frozen=True, slots=True)
class TxnAnomaly:
    kind: TxnAnomalyKind
    subject: str
    """The transaction (its key), the value, or the partition the anomaly is about."""
    explanation: str


@dataclass(frozen=True, slots=True)
class TxnCheckResult:
    anomalies: tuple[TxnAnomaly, ...]
    committed: int
    """Transactions the producers saw committed."""
    aborted: int
    unknown: int
    read: int
    """Values in the final read."""

    @property
    def valid(self) -> bool:
        return not self.anomalies

    def of_kind(self, kind: TxnAnomalyKind) -> tuple[TxnAnomaly, ...]:
        return tuple(a for a in self.anomalies if a.kind is kind)

    def summary(self) -> dict[str, int]:
        counts = Counter(a.kind.value for a in self.anomalies)
        return {kind.value: counts.get(kind.value, 0) for kind in TxnAnomalyKind}


@dataclass(frozen=True, slots=True)
class StableOffsets:
    """A partition's last stable offset and high watermark at the end of the run."""

    last_stable_offset: int
    high_watermark: int


def check_transactions(
    attempts: Iterable[TxnAttempt],
    *,
    final: Mapping[TopicPartition, Sequence[str]],
    observed: Iterable[str] = (),
    stable_offsets: Mapping[TopicPartition, StableOffsets] | None = None,
) -> TxnCheckResult:
    """``final``: every value a read_committed consumer read from each partition, in order,
    after healing; ``observed``: values read_committed consumers returned during the run;
    ``stable_offsets``: each partition's LSO and high watermark, read once every producer had
    stopped and the transaction timeout had passed."""
    attempts = list(attempts)
    anomalies: list[TxnAnomaly] = []
    seen = Counter(v for values in final.values() for v in values)
    owner: dict[str, TxnAttempt] = {v: a for a in attempts for v in a.values}

    for value, count in seen.items():
        if count > 1:
            anomalies.append(
                TxnAnomaly(
                    TxnAnomalyKind.DUPLICATED_WRITE, value, f"{value!r} was read {count} times"
                )
            )
    for value in sorted(set(observed) | set(seen)):
        attempt = owner.get(value)
        if attempt is not None and attempt.outcome is TxnOutcome.ABORTED:
            where = "in the final read" if value in seen else "during the run"
            anomalies.append(
                TxnAnomaly(
                    TxnAnomalyKind.ABORTED_READ,
                    attempt.key,
                    f"{value!r} of aborted transaction {attempt.key} was read {where}",
                )
            )
    for attempt in attempts:
        present = [v for v in attempt.values if v in seen]
        if attempt.outcome is TxnOutcome.ABORTED or not attempt.values:
            continue  # reads of aborted writes are reported above
        if present and len(present) < len(attempt.values):
            missing = [v for v in attempt.values if v not in seen]
            anomalies.append(
                TxnAnomaly(
                    TxnAnomalyKind.TORN_TRANSACTION,
                    attempt.key,
                    f"transaction {attempt.key} ({attempt.outcome.value}): {len(present)} of "
                    f"{len(attempt.values)} writes read; missing {missing[:5]}",
                )
            )
        elif not present and attempt.outcome is TxnOutcome.COMMITTED:
            anomalies.append(
                TxnAnomaly(
                    TxnAnomalyKind.LOST_COMMITTED_WRITE,
                    attempt.key,
                    f"transaction {attempt.key} was acknowledged committed but none of its "
                    f"{len(attempt.values)} writes was read",
                )
            )
    for tp, offsets in sorted((stable_offsets or {}).items()):
        if offsets.last_stable_offset < offsets.high_watermark:
            anomalies.append(
                TxnAnomaly(
                    TxnAnomalyKind.HANGING_TRANSACTION,
                    f"{tp.topic}-{tp.partition}",
                    f"last stable offset {offsets.last_stable_offset} stays below the high "
                    f"watermark {offsets.high_watermark} after every producer stopped",
                )
            )
    outcomes = Counter(a.outcome for a in attempts)
    return TxnCheckResult(
        anomalies=tuple(anomalies),
        committed=outcomes[TxnOutcome.COMMITTED],
        aborted=outcomes[TxnOutcome.ABORTED],
        unknown=outcomes[TxnOutcome.UNKNOWN],
        read=sum(seen.values()),
    )


def check_pipeline(
    source: Iterable[str], output: Iterable[str], *, transform: str = "copy:"
) -> tuple[TxnAnomaly, ...]:
    """A consume-transform-produce pipeline that read ``source`` (the committed source
    records) and wrote ``output`` (read_committed, after healing): each source value ``v`` must
    appear exactly once as ``transform + v``; output values with no source are duplicates of
    nothing and reported as such."""
    produced = Counter(output)
    anomalies: list[TxnAnomaly] = []
    expected = set()
    for value in source:
        out = transform + value
        expected.add(out)
        count = produced.get(out, 0)
        if count == 0:
            anomalies.append(
                TxnAnomaly(
                    TxnAnomalyKind.LOST_COMMITTED_WRITE,
                    value,
                    f"source record {value!r} never reached the pipeline's output",
                )
            )
        elif count > 1:
            anomalies.append(
                TxnAnomaly(
                    TxnAnomalyKind.DUPLICATED_WRITE,
                    value,
                    f"source record {value!r} reached the pipeline's output {count} times",
                )
            )
    for out, count in produced.items():
        if out not in expected:
            anomalies.append(
                TxnAnomaly(
                    TxnAnomalyKind.DUPLICATED_WRITE,
                    out,
                    f"{out!r} ({count}x) in the pipeline's output has no committed source record",
                )
            )
    return tuple(anomalies)
