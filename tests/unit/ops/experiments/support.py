"""Short builders for hand-made histories: one partition ``TP`` unless told otherwise, sends and
polls that take half a second, and a final read by process ``READER`` long after everything."""

from __future__ import annotations

from collections.abc import Sequence

from raftka.client.types import TopicPartition
from raftka.ops.experiments.history import Operation, Outcome

TP = TopicPartition("t", 0)
OTHER = TopicPartition("t", 1)
OK, FAIL, INFO = Outcome.OK, Outcome.FAIL, Outcome.INFO
READER = 99


def send(
    process: int,
    value: str,
    at: float,
    offset: int | None = None,
    outcome: Outcome = OK,
    *,
    done: float | None = None,
    tp: TopicPartition = TP,
) -> Operation:
    complete = at + 0.5 if done is None else done
    return Operation.send(
        process, tp, value, invoke=at, complete=complete, outcome=outcome, offset=offset
    )


def poll(process: int, start: int, records: Sequence[tuple[int, str]], at: float) -> Operation:
    return Operation.poll(process, TP, start, records, invoke=at, complete=at + 0.5)


def final(*values: str) -> Operation:
    """The final read of TP holding ``values`` at offsets 0, 1, ..."""
    return final_at(list(enumerate(values)))


def final_at(records: Sequence[tuple[int, str]], tp: TopicPartition = TP) -> Operation:
    return Operation.final_read(READER, tp, records, invoke=100.0, complete=101.0)
