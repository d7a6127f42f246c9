"""Helpers shared by the broker storage tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from raftka.broker.log.partition_log import PartitionLog
from raftka.common.records import Compression, build_batch

TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"
OTHER_TOPIC_ID = "BBBBBBBBBBBBBBBBBBBBBB"
T0 = 1_700_000_000_000


class FakeClock:
    """A settable millisecond clock."""

    def __init__(self, now_ms: int = T0) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


def batch(
    records: int = 1,
    *,
    timestamp: int = T0,
    value_size: int = 20,
    tag: int = 0,
    compression: Compression = Compression.NONE,
    producer_id: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    control: bool = False,
) -> bytearray:
    """A batch of ``records`` records with timestamps ``timestamp``, ``timestamp + 1``, ..."""
    return build_batch(
        [
            (timestamp + i, f"key-{tag}-{i}".encode(), bytes([tag % 256]) * value_size, ())
            for i in range(records)
        ],
        compression=compression,
        producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=base_sequence,
        transactional=transactional,
        control=control,
    )


def open_partition(
    log_dir: Path,
    *,
    topic: str = "events",
    partition: int = 0,
    topic_id: str | None = TOPIC_ID,
    overrides: Mapping[str, str] | None = None,
    clock: FakeClock | None = None,
    fsync_every_batch: bool = False,
    hw_follows_log_end: bool = True,
) -> PartitionLog:
    return PartitionLog.open(
        log_dir,
        topic,
        partition,
        topic_id=topic_id,
        config_overrides=overrides,
        clock=clock or FakeClock(),
        fsync_every_batch=fsync_every_batch,
        hw_follows_log_end=hw_follows_log_end,
    )
