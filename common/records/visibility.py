"""Which fetched records an application sees (KIP-98): never a control record (a transaction
marker is not data), and, for a read_committed reader, none of an aborted transaction.

A read_committed fetch returns, beside the batches below the last stable offset, the aborted
transactions with data in them as (producer id, first offset) pairs. A transactional batch of
such a producer, from that first offset until the producer's ABORT marker, belongs to the
aborted transaction and is dropped. The broker's decoded-records Fetch applies this filter for
its callers; a consumer reading batches applies the same one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from raftka.common.records.batch import BatchHeader, Buffer
from raftka.common.records.control import is_end_txn_marker, parse_end_txn_marker
from raftka.common.records.decoder import Record, decode_batch
from raftka.common.records.errors import InvalidRecordError


def _is_abort_marker(buf: Buffer, pos: int, header: BatchHeader, *, verify: bool) -> bool:
    if not is_end_txn_marker(header):
        return False
    try:
        return not parse_end_txn_marker(buf, pos, verify=verify).committed
    except InvalidRecordError:
        return False  # another kind of control batch: not the end of a transaction


def batches_end_offset(buf: Buffer) -> int | None:
    """The offset after the last of the concatenated batches in ``buf`` (None when empty):
    headers only, O(batches)."""
    pos, end, last = 0, len(buf), None
    while pos < end:
        last = BatchHeader.parse(buf, pos)
        pos += last.size
    return None if last is None else last.next_offset


def visible_records(
    buf: Buffer, aborted: Iterable[tuple[int, int]] = (), *, verify: bool = False
) -> Iterator[Record]:
    """The application records of the concatenated batches in ``buf``, in offset order: control
    batches are skipped, and so is every transactional batch of an aborted transaction named
    in ``aborted`` ((producer id, first offset) pairs; empty for read_uncommitted). With
    ``verify`` each batch's CRC is checked first (stored batches a broker reads need not be)."""
    pending = sorted(aborted, key=lambda entry: entry[1])
    next_pending = 0
    aborting: set[int] = set()
    pos, end = 0, len(buf)
    while pos < end:
        header = BatchHeader.parse(buf, pos)
        at, pos = pos, pos + header.size
        # Every aborted transaction that started at or before this batch's last offset is open
        # until its producer's ABORT marker.
        while next_pending < len(pending) and pending[next_pending][1] <= header.last_offset:
            aborting.add(pending[next_pending][0])
            next_pending += 1
        if header.is_control:
            if header.producer_id in aborting and _is_abort_marker(buf, at, header, verify=verify):
                aborting.discard(header.producer_id)
            continue
        if header.is_transactional and header.producer_id in aborting:
            continue
        yield from decode_batch(buf, at, verify=verify).records
