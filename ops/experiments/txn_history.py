"""What transactional producers attempted, as the transaction workload records it.

A transaction attempt is identified by ``key`` (``"p1#0.17"``: producer 1, first incarnation,
its 17th transaction). Every write carries a value unique in the experiment
(``"<key>/<index>"``), so a value read back names its transaction. The outcome is what the
producer *learned*, which is what the checker may rely on:

* ``committed``: ``commit_transaction()`` returned;
* ``aborted``: ``abort_transaction()`` returned, or the transaction failed before commit was
  called (its writes must never be read: the coordinator aborts it, at the latest when a new
  instance of the producer initialises or the transaction times out);
* ``unknown``: commit was called and its answer was lost (error, crash): all or nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from raftka.client.types import TopicPartition


class TxnOutcome(Enum):
    COMMITTED = "committed"
    ABORTED = "aborted"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TxnAttempt:
    key: str
    writes: tuple[tuple[TopicPartition, str], ...]
    outcome: TxnOutcome
    started: float
    ended: float

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(v for _, v in self.writes)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "writes": [[tp.topic, tp.partition, v] for tp, v in self.writes],
            "outcome": self.outcome.value,
            "started": self.started,
            "ended": self.ended,
        }

    @classmethod
    def from_json(cls, line: Mapping[str, Any]) -> TxnAttempt:
        return cls(
            key=str(line["key"]),
            writes=tuple((TopicPartition(str(t), int(p)), str(v)) for t, p, v in line["writes"]),
            outcome=TxnOutcome(line["outcome"]),
            started=float(line["started"]),
            ended=float(line["ended"]),
        )


def write_attempts(path: Path, attempts: Iterable[TxnAttempt]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for attempt in attempts:
            f.write(json.dumps(attempt.to_json(), separators=(",", ":")) + "\n")


def load_attempts(path: Path) -> list[TxnAttempt]:
    """Every attempt of a history file; a last line cut short by a kill is skipped."""
    lines = path.read_text(encoding="utf-8").split("\n")
    attempts: list[TxnAttempt] = []
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            attempts.append(TxnAttempt.from_json(json.loads(text)))
        except (ValueError, KeyError, TypeError) as e:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a transaction attempt: {e}") from e
    return attempts
