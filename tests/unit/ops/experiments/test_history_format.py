"""The history model: what an Operation accepts, and the JSON-lines file format."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from raftka.ops.experiments.history import (
    History,
    InvalidHistoryError,
    Operation,
    OpKind,
    Outcome,
)

from .histories import random_history
from .support import INFO, OK, TP, poll, send


@pytest.mark.parametrize(
    "build",
    [
        lambda: send(1, "a", 0.0),  # OK without an offset
        lambda: send(1, "a", 0.0, offset=3, outcome=INFO),
        lambda: send(1, "a", 2.0, offset=0, done=1.0),  # completes before it starts
        lambda: Operation.poll(1, TP, 0, [(0, "a")], invoke=0, complete=1, outcome=INFO),
        lambda: Operation(1, OpKind.POLL, TP, 0.0, 1.0, OK),  # no from_offset
        lambda: poll(1, 0, [(-1, "a")], 0.0),
    ],
)
def test_operations_that_break_the_model_are_rejected(build: Callable[[], Operation]) -> None:
    with pytest.raises(InvalidHistoryError):
        build()


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    history = random_history(7)
    path = tmp_path / "history.jsonl"
    history.dump(path)
    loaded = History.load(path)
    assert loaded.operations == history.operations and len(loaded) > 100
    assert {op.kind for op in loaded} == set(OpKind) and {op.outcome for op in loaded} == set(
        Outcome
    )


def test_load_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    good = json.dumps(send(1, "a", 0.0, offset=0).to_json())
    bad = good.replace('"offset": 0', '"offset": true')
    assert bad != good
    path.write_text(f"{good}\n\n{bad}\n")
    with pytest.raises(InvalidHistoryError, match=r"history.jsonl:3: offset must be int"):
        History.load(path)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("not json", "Expecting value"),
        ("[1, 2]", "a line must be a JSON object"),
        ('{"process": 1}', "missing field 'kind'"),
        ('{"process": 1, "kind": "write"}', "'write' is not a valid OpKind"),
        (
            '{"process": 1, "kind": "final_read", "topic": "t", "partition": 0, "invoke": "0",'
            ' "complete": 1, "outcome": "ok"}',
            "invoke must be a number of seconds",
        ),
        (
            '{"process": 1, "kind": "final_read", "topic": "t", "partition": 0, "invoke": 0,'
            ' "complete": 1, "outcome": "ok", "records": [7]}',
            "a record is an \\[offset, value\\] pair, got 7",
        ),
    ],
)
def test_load_rejects_malformed_lines(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(InvalidHistoryError, match=f"history.jsonl:1: .*{error}"):
        History.load(path)
