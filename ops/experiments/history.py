"""The history of a failover experiment: every send and read the clients made, with when they
started and ended and how they ended.

The model follows Jepsen's Kafka queue workload. Each client is a *process* (an int id) that
makes one kind of operation at a time:

* ``SEND``: produce one record whose value is unique in the whole history (``"p3-17"``: the
  17th value of process 3). Its outcome is ``OK`` with the offset the broker acknowledged,
  ``FAIL`` when the broker definitely did not write it (NOT_ENOUGH_REPLICAS before the append,
  an invalid request), or ``INFO`` when nobody knows (a timeout, a lost connection,
  NOT_ENOUGH_REPLICAS_AFTER_APPEND): it may or may not be in the log.
* ``POLL``: one fetch of one partition from ``from_offset``, returning ``(offset, value)``
  records. Only an ``OK`` poll returns records.
* ``FINAL_READ``: after the faults are healed, the whole partition read from offset 0 to its
  end; the checker compares everything else against it.

Times are monotonic seconds (floats) from one clock, so ``a.complete_time < b.invoke_time``
means ``a`` really finished before ``b`` started. A :class:`History` is saved as JSON lines,
one operation per line (:meth:`Operation.to_json` shows the fields), so that a failing run can
be checked again offline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from raftka.client.types import TopicPartition
from raftka.common.ids import Offset

_T = TypeVar("_T")


class InvalidHistoryError(ValueError):
    """A history that breaks the model (a send without a value, a value sent twice, a line that
    is not JSON): a bug in whatever recorded it, not an anomaly of the system under test."""


class OpKind(Enum):
    SEND = "send"
    POLL = "poll"
    FINAL_READ = "final_read"


class Outcome(Enum):
    OK = "ok"
    """Acknowledged (a send) or answered (a read)."""
    FAIL = "fail"
    """Definitely had no effect."""
    INFO = "info"
    """Unknown: a send may or may not have been written."""


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """One record a read returned."""

    offset: Offset
    value: str


@dataclass(frozen=True, slots=True)
class Operation:
    """One completed operation. Build one with :meth:`send`, :meth:`poll` or
    :meth:`final_read`; the constructor rejects field combinations the kind does not allow."""

    process: int
    kind: OpKind
    partition: TopicPartition
    invoke_time: float
    complete_time: float
    outcome: Outcome
    value: str | None = None
    """The value a SEND wrote."""
    offset: Offset | None = None
    """The offset an OK SEND was acknowledged at."""
    from_offset: Offset | None = None
    """The offset a POLL fetched from."""
    records: tuple[ReadRecord, ...] = ()
    """What an OK POLL or FINAL_READ returned, in the order it returned them."""
    error: str = ""
    """Why a SEND failed or is indeterminate (an error code name, "timeout"); informational."""

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise InvalidHistoryError(f"{self.kind.value} by process {self.process}: {problem}")

    def _problem(self) -> str:
        if self.complete_time < self.invoke_time:
            return f"completes at {self.complete_time} before it is invoked at {self.invoke_time}"
        if self.kind is OpKind.SEND:
            if self.value is None:
                return "a send needs a value"
            if self.records or self.from_offset is not None:
                return "a send has no records or from_offset"
            if (self.outcome is Outcome.OK) != (self.offset is not None):
                return "a send has an offset exactly when it is OK"
        else:
            if self.value is not None or self.offset is not None:
                return "a read has no value or offset of its own (its records hold them)"
            if (self.kind is OpKind.POLL) != (self.from_offset is not None):
                return "a poll, and only a poll, has a from_offset"
            if self.records and self.outcome is not Outcome.OK:
                return "only an OK read returns records"
        offsets = [r.offset for r in self.records]
        if self.offset is not None:
            offsets.append(self.offset)
        if self.from_offset is not None:
            offsets.append(self.from_offset)
        if any(o < 0 for o in offsets):
            return "offsets are never negative"
        return ""

    @classmethod
    def send(
        cls,
        process: int,
        partition: TopicPartition,
        value: str,
        *,
        invoke: float,
        complete: float,
        outcome: Outcome = Outcome.OK,
        offset: int | None = None,
        error: str = "",
    ) -> Operation:
        return cls(
            process,
            OpKind.SEND,
            partition,
            invoke,
            complete,
            outcome,
            value=value,
            offset=None if offset is None else Offset(offset),
            error=error,
        )

    @classmethod
    def poll(
        cls,
        process: int,
        partition: TopicPartition,
        from_offset: int,
        records: Iterable[tuple[int, str]],
        *,
        invoke: float,
        complete: float,
        outcome: Outcome = Outcome.OK,
    ) -> Operation:
        return cls(
            process,
            OpKind.POLL,
            partition,
            invoke,
            complete,
            outcome,
            from_offset=Offset(from_offset),
            records=_records(records),
        )

    @classmethod
    def final_read(
        cls,
        process: int,
        partition: TopicPartition,
        records: Iterable[tuple[int, str]],
        *,
        invoke: float,
        complete: float,
        outcome: Outcome = Outcome.OK,
    ) -> Operation:
        return cls(
            process,
            OpKind.FINAL_READ,
            partition,
            invoke,
            complete,
            outcome,
            records=_records(records),
        )

    def to_json(self) -> dict[str, Any]:
        """One line of the history file. Fields a kind does not use are left out, e.g.
        ``{"process": 3, "kind": "send", "topic": "t", "partition": 0, "invoke": 1.5,
        "complete": 1.75, "outcome": "ok", "value": "p3-17", "offset": 42}`` or
        ``{..., "kind": "poll", ..., "from_offset": 40, "records": [[40, "p1-9"], [41, ...]]}``.
        """
        line: dict[str, Any] = {
            "process": self.process,
            "kind": self.kind.value,
            "topic": self.partition.topic,
            "partition": self.partition.partition,
            "invoke": self.invoke_time,
            "complete": self.complete_time,
            "outcome": self.outcome.value,
        }
        if self.value is not None:
            line["value"] = self.value
        if self.offset is not None:
            line["offset"] = self.offset
        if self.from_offset is not None:
            line["from_offset"] = self.from_offset
        if self.kind is not OpKind.SEND:
            line["records"] = [[r.offset, r.value] for r in self.records]
        if self.error:
            line["error"] = self.error
        return line

    @classmethod
    def from_json(cls, line: Mapping[str, Any]) -> Operation:
        """The inverse of :meth:`to_json`; raises :class:`InvalidHistoryError` on a bad line."""
        try:
            offset, from_offset = line.get("offset"), line.get("from_offset")
            return cls(
                process=_typed(line["process"], int, "process"),
                kind=OpKind(line["kind"]),
                partition=TopicPartition(
                    _typed(line["topic"], str, "topic"),
                    _typed(line["partition"], int, "partition"),
                ),
                invoke_time=_time(line["invoke"], "invoke"),
                complete_time=_time(line["complete"], "complete"),
                outcome=Outcome(line["outcome"]),
                value=None if line.get("value") is None else _typed(line["value"], str, "value"),
                offset=None if offset is None else Offset(_typed(offset, int, "offset")),
                from_offset=(
                    None if from_offset is None else Offset(_typed(from_offset, int, "from_offset"))
                ),
                records=_records(line.get("records", ())),
                error=_typed(line.get("error", ""), str, "error"),
            )
        except InvalidHistoryError:
            raise
        except KeyError as e:
            raise InvalidHistoryError(f"missing field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:  # an unknown kind or outcome, a record not a pair
            raise InvalidHistoryError(str(e)) from None


@dataclass(slots=True)
class History:
    """The operations of one experiment, in the order they were recorded (the checker does not
    rely on that order: it uses the times)."""

    operations: list[Operation] = field(default_factory=list)

    def add(self, op: Operation) -> None:
        self.operations.append(op)

    def extend(self, ops: Iterable[Operation]) -> None:
        self.operations.extend(ops)

    def __len__(self) -> int:
        return len(self.operations)

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.operations)

    def dump(self, path: str | Path) -> None:
        """Writes the history as JSON lines, one operation per line."""
        with Path(path).open("w", encoding="utf-8") as f:
            for op in self.operations:
                f.write(json.dumps(op.to_json(), separators=(",", ":")))
                f.write("\n")

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Reads a history :meth:`dump` wrote; blank lines are skipped. Raises
        :class:`InvalidHistoryError` naming the first bad line."""
        history = cls()
        with Path(path).open(encoding="utf-8") as f:
            for number, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    line = json.loads(text)
                    if not isinstance(line, dict):
                        raise InvalidHistoryError("a line must be a JSON object")
                    history.add(Operation.from_json(line))
                except (json.JSONDecodeError, InvalidHistoryError) as e:
                    raise InvalidHistoryError(f"{path}:{number}: {e}") from None
        return history


def _records(pairs: Iterable[object]) -> tuple[ReadRecord, ...]:
    records = []
    for pair in pairs:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise InvalidHistoryError(f"a record is an [offset, value] pair, got {pair!r}")
        offset, value = pair
        records.append(
            ReadRecord(Offset(_typed(offset, int, "offset")), _typed(value, str, "value"))
        )
    return tuple(records)


def _time(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidHistoryError(f"{name} must be a number of seconds, got {value!r}")
    return float(value)


def _typed(value: object, kind: type[_T], name: str) -> _T:
    # bool is an int in Python, but true is not an offset or a process id.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidHistoryError(f"{name} must be {kind.__name__}, got {value!r}")
    return value
