"""Helpers shared by the storage tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raftka.common.records import build_batch
from raftka.common.storage import LogConfig, SegmentedLog


class FakeClock:
    """A settable millisecond clock."""

    def __init__(self, now_ms: int = 1_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


def batch(
    records: int = 1,
    *,
    timestamp: int = 1_000_000,
    base_offset: int = 0,
    value_size: int = 20,
    tag: int = 0,
) -> bytearray:
    """A batch of ``records`` records with timestamps ``timestamp``, ``timestamp + 1``, ..."""
    return build_batch(
        [
            (timestamp + i, f"key-{tag}-{i}".encode(), bytes([tag % 256]) * value_size, ())
            for i in range(records)
        ],
        base_offset=base_offset,
    )


def open_log(directory: Path, *, clock: FakeClock | None = None, **config: Any) -> SegmentedLog:
    return SegmentedLog.open(directory, LogConfig(**config), clock=clock or FakeClock())
