"""The transaction index of a segment (``<base>.txnindex``): the aborted transactions whose
ABORT marker the segment holds, so that a read_committed fetch can tell a consumer which
records to drop without reading the log for markers (KIP-98).

One 34-byte entry per aborted transaction, big-endian, in marker order (Kafka's layout)::

    version int16 (0) | producer_id int64 | first_offset int64 | last_offset int64
    | last_stable_offset int64

``first_offset`` is the transaction's first record on the partition, ``last_offset`` its ABORT
marker, ``last_stable_offset`` the partition's LSO once the transaction was complete.

Unlike the offset and time indexes, it cannot be rebuilt from its segment alone (the first
offset of a transaction may lie in an earlier segment): the producer-state replay rebuilds it
(:mod:`raftka.broker.producers.txn_rebuild`). An index found missing or damaged on open, and
every index of a recovered segment, is emptied and marked :attr:`TxnIndex.needs_rebuild`.
Entries are written at once (markers are rare) and fsynced with the segment.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from raftka.common.files import pwrite_all

_VERSION = 0
_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size
assert ENTRY_SIZE == 34


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    """One aborted transaction of a partition (see the module doc)."""

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int

    def encode(self) -> bytes:
        return _ENTRY.pack(
            _VERSION,
            self.producer_id,
            self.first_offset,
            self.last_offset,
            self.last_stable_offset,
        )


class TxnIndexCorruptError(Exception):
    """A txnindex file that cannot be trusted (missing, torn, unknown version, out of order)."""


def decode_entries(
    data: bytes, name: str, base_offset: int, end_offset: int | None
) -> list[AbortedTxn]:
    """The entries of a file's bytes; TxnIndexCorruptError when they fail a check: a length
    that is not a whole number of entries, an unknown version, markers outside the segment
    [``base_offset``, ``end_offset``) or out of order, a first offset after its marker."""
    if len(data) % ENTRY_SIZE:
        raise TxnIndexCorruptError(f"{name} has {len(data)} bytes, not a multiple of {ENTRY_SIZE}")
    entries: list[AbortedTxn] = []
    previous = base_offset - 1
    for version, producer_id, first, last, lso in _ENTRY.iter_unpack(data):
        if version != _VERSION:
            raise TxnIndexCorruptError(f"{name}: entry version {version}, expected {_VERSION}")
        if last <= previous or (end_offset is not None and last >= end_offset):
            raise TxnIndexCorruptError(
                f"{name}: marker offset {last} is out of order or outside the segment"
            )
        if producer_id < 0 or not 0 <= first <= last or lso > last + 1:
            raise TxnIndexCorruptError(
                f"{name}: invalid entry (producer id {producer_id}, offsets {first}..{last}, "
                f"last stable offset {lso})"
            )
        entries.append(AbortedTxn(producer_id, first, last, lso))
        previous = last
    return entries


class TxnIndex:
    """The aborted transactions of one segment, in memory and in its file."""

    def __init__(self, path: Path, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self._entries: list[AbortedTxn] = []
        self._unsynced = False
        self.needs_rebuild = False
        """Emptied because the file could not be trusted (or the segment was recovered):
        the entries are to be rebuilt by replay."""

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> tuple[AbortedTxn, ...]:
        return tuple(self._entries)

    def create(self) -> None:
        """Writes the (empty) file of a new segment: a missing file then means lost data."""
        self._write_all()

    def load(self, *, end_offset: int | None) -> str | None:
        """Reads and checks the file; returns why it cannot be used (the index is then empty
        and :attr:`needs_rebuild`), or None."""
        try:
            data = self.path.read_bytes()
            self._entries = decode_entries(data, self.path.name, self.base_offset, end_offset)
        except FileNotFoundError:
            return self.reset(f"{self.path.name} is missing")
        except TxnIndexCorruptError as exc:
            return self.reset(str(exc))
        self.needs_rebuild = False
        return None

    def reset(self, reason: str = "reset", *, needs_rebuild: bool = True) -> str:
        """Empties the index (file included) and marks it for rebuilding unless its segment
        is known to hold no marker; returns ``reason``."""
        self._entries = []
        self.needs_rebuild = needs_rebuild
        self._write_all()
        return reason

    def rebuilt(self, entries: Iterable[AbortedTxn]) -> None:
        """Takes the entries a replay found and writes them; the index is trusted again."""
        self._entries = list(entries)
        self.needs_rebuild = False
        self._write_all()

    def append(self, entry: AbortedTxn) -> None:
        if self._entries and entry.last_offset <= self._entries[-1].last_offset:
            raise ValueError(
                f"aborted transaction at {entry.last_offset} is not after the last one "
                f"at {self._entries[-1].last_offset}"
            )
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            pwrite_all(fd, entry.encode(), len(self._entries) * ENTRY_SIZE)
        finally:
            os.close(fd)
        self._entries.append(entry)
        self._unsynced = True

    def truncate_to(self, offset: int) -> None:
        """Drops the entries whose marker is at or past ``offset``."""
        kept = [e for e in self._entries if e.last_offset < offset]
        if len(kept) != len(self._entries):
            self._entries = kept
            self._write_all()

    def collect(self, start: int, end: int) -> list[AbortedTxn]:
        """The entries of transactions with data in [start, end): marker at or after
        ``start`` and first offset before ``end``."""
        return [e for e in list(self._entries) if e.last_offset >= start and e.first_offset < end]

    def _write_all(self) -> None:
        data = b"".join(e.encode() for e in self._entries)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, len(data))
            if data:
                pwrite_all(fd, data, 0)
        finally:
            os.close(fd)
        self._unsynced = True

    def sync(self) -> None:
        """fsyncs the file if it was written since the last sync (a deleted file is skipped)."""
        if not self._unsynced:
            return
        self._unsynced = False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"TxnIndex({self.path.name}, entries={len(self._entries)})"
