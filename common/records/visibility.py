"""Which fetched records an application sees (KIP-98): never a control record (a transaction
marker is not data), and, for a read_committed reader, none of an aborted transaction.

A read_committed fetch returns, beside the batches below the last stable offset, the aborted
transactions with data in them as (producer id, first offset) pairs. A transactional batch of
such a producer, from that first offset until the producer's ABORT marker, belongs to the
aborted transaction and is dropped. The broker's decoded-records Fetch applies this filter for
its callers; a consumer reading batches applies the same one.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from raftka.common.records.batch import BatchHeader, Buffer
from raftka.common.records.decoder import Record, decode_batch

CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT = 0, 1
"""The type in a transaction marker's key (int16 version, int16 type)."""
_CONTROL_KEY = struct.Struct(">hh")


def control_type(key: bytes | None) -> int | None:
    """The type of a control record (0 ABORT, 1 COMMIT) from its key; None when the key is
    too short to be a marker's."""
    if key is None or len(key) < _CONTROL_KEY.size:
        return None
    _version, kind = _CONTROL_KEY.unpack_from(key)
    return int(kind)


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
            if header.producer_id in aborting:
                decoded = decode_batch(buf, at, verify=verify)
                if any(control_type(r.key) == CONTROL_TYPE_ABORT for r in decoded.records):
                    aborting.discard(header.producer_id)
            continue
        if header.is_transactional and header.producer_id in aborting:
            continue
        yield from decode_batch(buf, at, verify=verify).records
