"""Helpers for the compaction tests: keyed batches, reading a whole log back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from raftka.common.records import BatchHeader, Compression, build_batch, decode_batch
from raftka.common.records.batch import split_batches
from raftka.common.records.decoder import Record
from raftka.common.storage import SegmentedLog
from raftka.common.storage.compaction import CleaningRules
from tests.unit.common.storage.support import open_log

NOW = 10_000_000


def small_log(directory: Path) -> SegmentedLog:
    """A log of 600-byte segments with an index entry every 100 bytes."""
    return open_log(directory, segment_bytes=600, index_interval_bytes=100)


def keyed(
    pairs: Sequence[tuple[bytes | None, bytes | None]],
    *,
    timestamp: int = 1_000_000,
    compression: Compression = Compression.NONE,
    producer: tuple[int, int, int] | None = None,
) -> bytearray:
    """One batch of (key, value) records; ``producer`` is (id, epoch, base sequence)."""
    pid, epoch, seq = producer if producer is not None else (-1, -1, -1)
    return build_batch(
        [(timestamp + i, key, value, ()) for i, (key, value) in enumerate(pairs)],
        compression=compression,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        partition_leader_epoch=0,
    )


def rules(
    now_ms: int = NOW,
    delete_retention_ms: int = 1000,
    retain: frozenset[tuple[int, int]] = frozenset(),
) -> CleaningRules:
    """Cleaning rules; ``retain`` holds (producer id, last offset) of batches kept empty."""
    return CleaningRules(
        now_ms=now_ms,
        delete_retention_ms=delete_retention_ms,
        retain_empty=lambda h: (h.producer_id, h.last_offset) in retain,
    )


def read_from(log: SegmentedLog, offset: int) -> tuple[list[Record], list[BatchHeader]]:
    """Every record and batch header a consumer gets reading from ``offset`` to the end
    (it moves to the offset after each returned batch, as the consumer does)."""
    records: list[Record] = []
    headers: list[BatchHeader] = []
    position = offset
    while position < log.log_end_offset:
        result = log.read(position, 1 << 20)
        for span in split_batches(result.records):
            decoded = decode_batch(result.records, span.position)
            headers.append(decoded.header)
            records.extend(r for r in decoded.records if r.offset >= position)
        assert result.last_offset >= position
        position = result.last_offset + 1
    return records, headers


def latest(records: Sequence[Record]) -> dict[bytes | None, tuple[int, bytes | None]]:
    """key -> (offset, value) of the last record of each key."""
    return {r.key: (r.offset, r.value) for r in records}
