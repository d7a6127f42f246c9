"""Producer-state snapshot files: ``<20-digit offset>.snapshot`` in the partition directory
(Kafka's names). A snapshot at offset N holds the producer state built from every batch below
N, so loading it and replaying the batches from N on rebuilds the state.

Binary, big-endian::

    version int16 (2) | crc uint32 (CRC-32C of everything after it) | offset int64 | count int32
    count x (producer_id int64 | epoch int16 | coordinator_epoch int32
             | txn_first_offset int64 (-1: no open transaction) | batches int8 (0..5)
             | batches x (first_seq int32 | last_seq int32 | first_offset int64
                          | last_offset int64 | timestamp int64))

Version 1 (before transactions: no coordinator epoch, no open transaction, 1..5 batches) is
still read, as a state without transactions (which it was).

Unlike Kafka, which keeps only each producer's last batch in a snapshot, every remembered
batch is kept, so a retry of any of the last five batches is recognised after a restart.
Files are written atomically (temporary file, fsync, rename, fsync of the directory). A file
that fails any check (CRC, length, version, offset, values) is reported and deleted, and the
next older snapshot is tried.
"""

from __future__ import annotations

import os
import re
import struct
from collections import deque
from collections.abc import Callable
from pathlib import Path

import crc32c
import structlog

from raftka.broker.producers.state import (
    NO_COORDINATOR_EPOCH,
    NUM_BATCHES_TO_RETAIN,
    BatchMetadata,
    ProducerEntry,
    ProducerStateTable,
)
from raftka.common.files import atomic_write, fsync_dir

SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_FILE_RE = re.compile(r"^(\d{20})\.snapshot$")
VERSION = 2
NO_OPEN_TXN = -1

_HEAD = struct.Struct(">hIqi")  # version, crc, offset, count
_ENTRY_V1 = struct.Struct(">qhb")  # producer id, epoch, batches
_ENTRY = struct.Struct(">qhiqb")  # producer id, epoch, coordinator epoch, txn first offset, batches
_BATCH = struct.Struct(">iiqqq")
_CRC_START = 6  # after version and crc

log = structlog.get_logger(__name__)


class CorruptSnapshotError(ValueError):
    """A snapshot file that cannot be trusted (torn, bit-flipped, or not a snapshot)."""


def snapshot_path(directory: Path, offset: int) -> Path:
    return directory / f"{offset:020d}{SNAPSHOT_SUFFIX}"


def snapshot_offsets(directory: Path) -> list[int]:
    """The offsets of the snapshot files in ``directory``, ascending."""
    offsets = []
    for name in os.listdir(directory):
        match = SNAPSHOT_FILE_RE.match(name)
        if match is not None:
            offsets.append(int(match.group(1)))
    return sorted(offsets)


# ====================================================================== codec


def encode_snapshot(offset: int, table: ProducerStateTable) -> bytes:
    out = bytearray(_HEAD.size)
    count = 0
    for entry in table:
        first = NO_OPEN_TXN if entry.txn_first_offset is None else entry.txn_first_offset
        out += _ENTRY.pack(
            entry.producer_id, entry.epoch, entry.coordinator_epoch, first, len(entry.batches)
        )
        for batch in entry.batches:
            out += _BATCH.pack(*batch)
        count += 1
    _HEAD.pack_into(out, 0, VERSION, 0, offset, count)
    struct.pack_into(">I", out, 2, crc32c.crc32c(memoryview(out)[_CRC_START:]))
    return bytes(out)


def decode_snapshot(data: bytes, offset: int) -> ProducerStateTable:
    """The table of a snapshot file's bytes; CorruptSnapshotError if anything is off, or if
    the file does not say it is the snapshot at ``offset``."""
    if len(data) < _HEAD.size:
        raise CorruptSnapshotError(f"{len(data)} bytes, shorter than the {_HEAD.size}-byte header")
    version, crc, stored_offset, count = _HEAD.unpack_from(data, 0)
    if version not in (1, VERSION):
        raise CorruptSnapshotError(f"version {version}, expected {VERSION} (or 1)")
    actual = crc32c.crc32c(memoryview(data)[_CRC_START:])
    if actual != crc:
        raise CorruptSnapshotError(f"CRC-32C mismatch: stored 0x{crc:08x}, computed 0x{actual:08x}")
    if stored_offset != offset:
        raise CorruptSnapshotError(f"holds the state at offset {stored_offset}, not {offset}")
    if count < 0:
        raise CorruptSnapshotError(f"negative producer count {count}")
    position = _HEAD.size
    entries: list[ProducerEntry] = []
    try:
        for _ in range(count):
            if version == 1:
                producer_id, epoch, batches = _ENTRY_V1.unpack_from(data, position)
                position += _ENTRY_V1.size
                coordinator_epoch, first = NO_COORDINATOR_EPOCH, NO_OPEN_TXN
            else:
                producer_id, epoch, coordinator_epoch, first, batches = _ENTRY.unpack_from(
                    data, position
                )
                position += _ENTRY.size
            if (
                producer_id < 0
                or epoch < 0
                or not 0 <= batches <= NUM_BATCHES_TO_RETAIN
                or coordinator_epoch < NO_COORDINATOR_EPOCH
                or not NO_OPEN_TXN <= first < offset
            ):
                raise CorruptSnapshotError(
                    f"invalid entry: producer id {producer_id}, epoch {epoch}, {batches} "
                    f"batches, coordinator epoch {coordinator_epoch}, open transaction at {first}"
                )
            entry = ProducerEntry(
                producer_id,
                epoch,
                deque(maxlen=NUM_BATCHES_TO_RETAIN),
                None if first == NO_OPEN_TXN else first,
                coordinator_epoch,
            )
            for _ in range(batches):
                batch = BatchMetadata._make(_BATCH.unpack_from(data, position))
                position += _BATCH.size
                if not 0 <= batch.first_offset <= batch.last_offset < offset:
                    raise CorruptSnapshotError(
                        f"producer id {producer_id}: batch at offsets "
                        f"{batch.first_offset}..{batch.last_offset} is not below {offset}"
                    )
                entry.batches.append(batch)
            entries.append(entry)
    except struct.error:
        raise CorruptSnapshotError(f"truncated: {len(data)} bytes") from None
    if position != len(data):
        raise CorruptSnapshotError(f"{len(data) - position} trailing bytes")
    try:
        return ProducerStateTable(entries)
    except ValueError as exc:
        raise CorruptSnapshotError(str(exc)) from None


# ====================================================================== files


def write_snapshot(directory: Path, offset: int, table: ProducerStateTable) -> Path:
    """Writes (atomically, durably) the snapshot of ``table`` as the state at ``offset``."""
    path = snapshot_path(directory, offset)
    atomic_write(path, encode_snapshot(offset, table))
    return path


def read_snapshot(directory: Path, offset: int) -> ProducerStateTable:
    """The snapshot at ``offset``; CorruptSnapshotError (or OSError) if it cannot be read."""
    return decode_snapshot(snapshot_path(directory, offset).read_bytes(), offset)


def load_latest_snapshot(directory: Path, at_most: int) -> tuple[int, ProducerStateTable] | None:
    """The newest readable snapshot at or below ``at_most`` and its offset, or None. Unreadable
    snapshots on the way are logged (``producer_snapshot_unreadable``) and deleted."""
    for offset in reversed(snapshot_offsets(directory)):
        if offset > at_most:
            continue
        try:
            return offset, read_snapshot(directory, offset)
        except (CorruptSnapshotError, OSError) as exc:
            path = snapshot_path(directory, offset)
            log.warning("producer_snapshot_unreadable", path=str(path), error=str(exc))
            path.unlink(missing_ok=True)
    return None


def delete_snapshots(directory: Path, doomed: Callable[[int], bool]) -> int:
    """Deletes the snapshots whose offset ``doomed`` is true for; returns how many went."""
    offsets = [offset for offset in snapshot_offsets(directory) if doomed(offset)]
    for offset in offsets:
        snapshot_path(directory, offset).unlink(missing_ok=True)
    if offsets:
        fsync_dir(directory)
    return len(offsets)
