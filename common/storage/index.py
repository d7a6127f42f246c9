"""Sparse per-segment indexes: offset -> file position, and timestamp -> offset.

Both keep their entries in memory (``array`` of int64, searched with ``bisect``) and write
them to the segment's ``.index`` / ``.timeindex`` file on flush, roll and close. The files
use Kafka's layouts:

* ``.index``: 8-byte entries (int32 offset relative to the segment base, int32 position);
* ``.timeindex``: 12-byte entries (int64 timestamp, int32 relative offset).

Indexes are derived data: when a file is missing or fails :meth:`load`'s checks, the segment
rebuilds it from the log, so unflushed entries may be lost without harm.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_right
from pathlib import Path

from raftka.common.files import pwrite_all

_INT32_MAX = (1 << 31) - 1


class IndexCorruptError(Exception):
    """An index file is missing or fails its sanity checks; rebuild it from the log."""


class _SortedIndex:
    """Entries (key, value) with strictly increasing keys; the file holds a prefix of them."""

    _STRUCT: struct.Struct

    def __init__(self, path: Path, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self._keys = array("q")
        self._values = array("q")
        self._in_file = 0  # entries [0, _in_file) are in the file as it stands
        self._file_stale = True  # the file may hold more entries than _in_file
        self._unsynced = True  # the file was written since its last fsync

    def __len__(self) -> int:
        return len(self._keys)

    def _encode(self, key: int, value: int) -> bytes:
        raise NotImplementedError

    def _decode(self, raw: tuple[int, int]) -> tuple[int, int]:
        raise NotImplementedError

    def _load_entries(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise IndexCorruptError(f"{self.path.name} is missing") from None
        size = self._STRUCT.size
        if len(data) % size:
            raise IndexCorruptError(
                f"{self.path.name} has {len(data)} bytes, not a multiple of {size}"
            )
        keys = array("q")
        values = array("q")
        for raw in self._STRUCT.iter_unpack(data):
            key, value = self._decode(raw)
            keys.append(key)
            values.append(value)
        self._keys = keys
        self._values = values
        self._in_file = len(keys)
        self._file_stale = False
        self._unsynced = False

    def reset(self) -> None:
        """Drops every entry (the file is emptied on the next flush)."""
        self._keys = array("q")
        self._values = array("q")
        self._in_file = 0
        self._file_stale = True

    def _truncate_entries(self, count: int) -> None:
        if count < len(self._keys):
            del self._keys[count:]
            del self._values[count:]
        if count < self._in_file:
            self._in_file = count
            self._file_stale = True

    def write(self) -> None:
        """Writes entries not yet in the file (and cuts entries removed by truncation)."""
        pending = len(self._keys) - self._in_file
        if pending == 0 and not self._file_stale:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            size = self._STRUCT.size
            if self._file_stale:
                os.ftruncate(fd, self._in_file * size)
            if pending:
                data = b"".join(
                    self._encode(self._keys[i], self._values[i])
                    for i in range(self._in_file, self._in_file + pending)
                )
                pwrite_all(fd, data, self._in_file * size)
        finally:
            os.close(fd)
        self._in_file += pending
        self._file_stale = False
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

    def flush(self, *, fsync: bool) -> None:
        self.write()
        if fsync:
            self.sync()

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


class OffsetIndex(_SortedIndex):
    """Maps a batch's base offset to its file position, one entry per index interval."""

    _STRUCT = struct.Struct(">ii")

    def _encode(self, key: int, value: int) -> bytes:
        return self._STRUCT.pack(key - self.base_offset, value)

    def _decode(self, raw: tuple[int, int]) -> tuple[int, int]:
        return raw[0] + self.base_offset, raw[1]

    def load(self, *, log_size: int, end_offset: int | None) -> None:
        """Reads the file and checks it; raises IndexCorruptError when it cannot be trusted.

        ``end_offset`` is the offset after the segment when known (the next segment's base).
        """
        self._load_entries()
        last_offset = self.base_offset - 1
        last_position = -1
        for offset, position in zip(self._keys, self._values, strict=True):
            if offset <= last_offset or position <= last_position:
                raise IndexCorruptError(f"{self.path.name} entries are not increasing")
            if position >= log_size:
                raise IndexCorruptError(
                    f"{self.path.name} points at position {position} past the log end {log_size}"
                )
            if end_offset is not None and offset >= end_offset:
                raise IndexCorruptError(
                    f"{self.path.name} has offset {offset} beyond the segment end {end_offset}"
                )
            last_offset, last_position = offset, position

    def append(self, offset: int, position: int) -> None:
        if self._keys and offset <= self._keys[-1]:
            raise ValueError(f"index offset {offset} is not above {self._keys[-1]}")
        if offset - self.base_offset > _INT32_MAX or position > _INT32_MAX:
            raise ValueError(f"index entry ({offset}, {position}) does not fit in int32")
        self._keys.append(offset)
        self._values.append(position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """The greatest entry with offset <= ``offset``, or (base offset, 0)."""
        i = bisect_right(self._keys, offset)
        if i == 0:
            return self.base_offset, 0
        return self._keys[i - 1], self._values[i - 1]

    def lookup_position(self, position: int) -> tuple[int, int]:
        """The entry with the greatest position <= ``position``, or (base offset, 0)."""
        i = bisect_right(self._values, position)
        if i == 0:
            return self.base_offset, 0
        return self._keys[i - 1], self._values[i - 1]

    def last_entry(self) -> tuple[int, int]:
        if not self._keys:
            return self.base_offset, 0
        return self._keys[-1], self._values[-1]

    def truncate_to(self, offset: int) -> None:
        """Drops entries with offset >= ``offset``."""
        self._truncate_entries(bisect_right(self._keys, offset - 1))


class TimeIndex(_SortedIndex):
    """Maps the largest timestamp seen so far to the base offset of the batch that holds it."""

    _STRUCT = struct.Struct(">qi")

    def _encode(self, key: int, value: int) -> bytes:
        return self._STRUCT.pack(key, value - self.base_offset)

    def _decode(self, raw: tuple[int, int]) -> tuple[int, int]:
        return raw[0], raw[1] + self.base_offset

    def load(self, *, end_offset: int | None) -> None:
        """Reads the file and checks it; raises IndexCorruptError when it cannot be trusted."""
        self._load_entries()
        last_timestamp = -1
        last_offset = self.base_offset
        for timestamp, offset in zip(self._keys, self._values, strict=True):
            if timestamp <= last_timestamp or offset < last_offset:
                raise IndexCorruptError(f"{self.path.name} entries are not increasing")
            if end_offset is not None and offset >= end_offset:
                raise IndexCorruptError(
                    f"{self.path.name} has offset {offset} beyond the segment end {end_offset}"
                )
            last_timestamp, last_offset = timestamp, offset

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Adds an entry if ``timestamp`` is above the last one (and not "no timestamp")."""
        if timestamp < 0 or (self._keys and timestamp <= self._keys[-1]):
            return
        if offset - self.base_offset > _INT32_MAX:
            raise ValueError(f"time index offset {offset} does not fit in int32")
        self._keys.append(timestamp)
        self._values.append(offset)

    def lookup(self, timestamp: int) -> tuple[int, int] | None:
        """The greatest entry with timestamp <= ``timestamp``, or None."""
        i = bisect_right(self._keys, timestamp)
        if i == 0:
            return None
        return self._keys[i - 1], self._values[i - 1]

    def last_entry(self) -> tuple[int, int] | None:
        if not self._keys:
            return None
        return self._keys[-1], self._values[-1]

    def truncate_to(self, offset: int) -> None:
        """Drops entries whose offset >= ``offset`` (offsets are non-decreasing)."""
        count = len(self._values)
        while count and self._values[count - 1] >= offset:
            count -= 1
        self._truncate_entries(count)
