"""What log compaction keeps of each record batch (pure: bytes in, bytes out).

The cleaner (:mod:`raftka.common.storage.cleaned_segment` writes, the broker's
:mod:`raftka.broker.log.cleaner` schedules) first builds an :class:`OffsetMap`, key -> offset
of the latest record with that key, over the dirty range of a log. Each batch of the cleaned
segments then goes through :func:`filter_batch`, which keeps a record iff it has a key and

- no later record with the same key is in the map (its offset is at or past the map entry),
- and it has a value, or it is a tombstone (null value) whose delete horizon has not passed.

Tombstone horizon, as Kafka's: the first cleaning that keeps a batch holding a tombstone
rewrites the batch with the delete-horizon attribute (bit 0x40) and base timestamp = now +
``delete.retention.ms`` (record timestamps are rebased: they do not change); a later cleaning
drops the batch's tombstones once now >= that horizon.

Offsets never change: a batch keeps its base offset and last offset delta, and retained
records keep their offset deltas (a rebuilt batch has gaps inside). A batch whose records are
all kept (and needs no horizon) is returned as it was, byte for byte; a rebuilt one is
recompressed with its codec and gets a new CRC. Control batches are kept as they are.

Transactions (KIP-98): the batches of aborted transactions (:func:`aborted_batches`, from the
``.txnindex`` entries) are left out of the offset map, so that an aborted record never
shadows an earlier committed one, and dropped when cleaned; their markers stay. The caller
never cleans at or past the last stable offset, so every transaction in range is decided.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from raftka.common.records.batch import BatchHeader, Buffer
from raftka.common.records.builder import RecordBatchBuilder, build_empty_batch
from raftka.common.records.decoder import decode_batch
from raftka.common.storage.txn_index import AbortedTxn

LONG_MAX = (1 << 63) - 1

OffsetMap = dict[bytes, int]
"""Key -> offset of the latest record with that key in the mapped range. Keys are held whole
(not hashed as Kafka's ``SkimpyOffsetMap`` does): no collision can drop a live record; the
map's size is bounded by the cleaner instead (``max_keys``)."""


def add_to_offset_map(offset_map: OffsetMap, batch: Buffer, start: int, end: int) -> int:
    """Adds the keyed records of ``batch`` with offsets in [start, end) to ``offset_map``
    (later ones replace earlier ones); returns how many were added. The batch's CRC is checked:
    damaged data is never used."""
    decoded = decode_batch(batch)
    if decoded.header.is_control:
        return 0
    added = 0
    for record in decoded.records:
        if record.key is not None and start <= record.offset < end:
            offset_map[record.key] = record.offset
            added += 1
    return added


class Outcome(enum.Enum):
    UNCHANGED = "unchanged"
    """Every record kept: the stored bytes are copied as they are."""
    REBUILT = "rebuilt"
    """Some records dropped, or a horizon set: a new batch with the same offsets."""
    EMPTY = "empty"
    """Every record dropped, but the batch is kept header-only (an active producer's last)."""
    DROPPED = "dropped"
    """Every record dropped: the batch goes (its offsets are covered by a filler batch)."""


@dataclass(frozen=True, slots=True)
class FilteredBatch:
    outcome: Outcome
    header: BatchHeader
    """The original batch's header."""
    data: Buffer
    """The bytes to write (empty when DROPPED)."""
    records_before: int
    records_after: int


@dataclass(frozen=True, slots=True)
class CleaningRules:
    """What a cleaning pass decides with, besides the offset map."""

    now_ms: int
    delete_retention_ms: int
    retain_empty: Callable[[BatchHeader], bool]
    """Whether a batch that loses every record must stay as a header-only batch: the last
    batch of a producer id still in the producer state (Kafka's RETAIN_EMPTY), so that its
    epoch and sequence survive a restart's replay."""
    aborted: Callable[[BatchHeader], bool] = field(default=lambda _header: False)
    """Whether a batch belongs to an aborted transaction (:func:`aborted_batches`)."""

    @property
    def new_horizon(self) -> int:
        return min(self.now_ms + self.delete_retention_ms, LONG_MAX)


def aborted_batches(entries: Iterable[AbortedTxn]) -> Callable[[BatchHeader], bool]:
    """Whether a batch is data of one of the aborted transactions ``entries``: a
    transactional, non-control batch of the producer between the transaction's first offset
    and its ABORT marker (a producer has one transaction open at a time)."""
    ranges: dict[int, list[tuple[int, int]]] = {}
    for entry in entries:
        ranges.setdefault(entry.producer_id, []).append((entry.first_offset, entry.last_offset))

    def aborted(header: BatchHeader) -> bool:
        if not header.is_transactional or header.is_control:
            return False
        base = header.base_offset
        return any(first <= base < last for first, last in ranges.get(header.producer_id, ()))

    return aborted


def filter_batch(batch: Buffer, offset_map: OffsetMap, rules: CleaningRules) -> FilteredBatch:
    """What the cleaner writes for the stored ``batch`` (checked: CRC, framing)."""
    decoded = decode_batch(batch)
    header = decoded.header
    records = decoded.records
    if header.is_control:
        return FilteredBatch(Outcome.UNCHANGED, header, batch, len(records), len(records))
    if rules.aborted(header):
        return _emptied(header, rules, len(records))
    horizon = header.base_timestamp if header.has_delete_horizon else None
    kept = []
    tombstone_kept = False
    for record in records:
        if record.key is None:
            continue  # a keyless record means nothing in a compacted topic
        latest = offset_map.get(record.key)
        if latest is not None and record.offset < latest:
            continue  # superseded by a later record with the same key
        if record.value is None:
            if horizon is not None and rules.now_ms >= horizon:
                continue  # the tombstone has been served for delete.retention.ms
            tombstone_kept = True
        kept.append(record)
    before, after = len(records), len(kept)
    if after == before and (horizon is not None or not tombstone_kept):
        return FilteredBatch(Outcome.UNCHANGED, header, batch, before, after)
    if not kept:
        return _emptied(header, rules, before)
    if horizon is None and tombstone_kept:
        horizon = rules.new_horizon
    builder = RecordBatchBuilder(
        compression=header.compression,
        base_offset=header.base_offset,
        partition_leader_epoch=header.partition_leader_epoch,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        transactional=header.is_transactional,
        timestamp_type=header.timestamp_type,
        base_timestamp=horizon if horizon is not None else header.base_timestamp,
        max_timestamp=header.max_timestamp,
        last_offset_delta=header.last_offset_delta,
        delete_horizon=horizon is not None,
    )
    base = header.base_offset
    for record in kept:
        builder.append(
            record.timestamp,
            record.key,
            record.value,
            record.headers,
            offset_delta=record.offset - base,
        )
    return FilteredBatch(Outcome.REBUILT, header, builder.build(), before, after)


def _emptied(header: BatchHeader, rules: CleaningRules, before: int) -> FilteredBatch:
    """A batch that keeps no record: dropped, or kept header-only (``retain_empty``)."""
    if not rules.retain_empty(header):
        return FilteredBatch(Outcome.DROPPED, header, b"", before, 0)
    empty = build_empty_batch(
        base_offset=header.base_offset,
        last_offset_delta=header.last_offset_delta,
        partition_leader_epoch=header.partition_leader_epoch,
        attributes=header.attributes,
        base_timestamp=header.base_timestamp,
        max_timestamp=header.max_timestamp,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
    )
    return FilteredBatch(Outcome.EMPTY, header, empty, before, 0)
