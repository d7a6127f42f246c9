"""A byte range of a segment file, held open for a zero-copy send (``sendfile``).

A :class:`FileRegion` owns a duplicate of the segment's descriptor, so the bytes stay
readable after the log moves on: a deleted segment's inode lives until the region is closed,
and the pool closing its own descriptor does not matter. A truncation after the read can
still shorten the file: a sender that gets fewer bytes than ``length`` must treat the
transfer as failed (the frame it announced cannot be completed).

Close a region when done with it; one that is dropped unclosed closes its descriptor when it
is collected. :func:`open_regions` counts the regions of the process not yet closed, so that
their descriptors can be bounded (a reader asks for a buffered read past its limit).
"""

from __future__ import annotations

import os
import threading
import weakref

from raftka.common.files import pread_exact

_lock = threading.Lock()
_open = 0


def open_regions() -> int:
    """Regions of this process not closed yet (each holds a descriptor)."""
    return _open


def _close(fd: int) -> None:
    global _open
    os.close(fd)
    with _lock:
        _open -= 1


class FileRegion:
    """``length`` bytes at ``position`` of the file open as ``fd`` (owned by the region)."""

    __slots__ = ("__weakref__", "_closer", "fd", "length", "position")

    def __init__(self, fd: int, position: int, length: int) -> None:
        self.fd = fd
        self.position = position
        self.length = length
        global _open
        with _lock:
            _open += 1
        self._closer = weakref.finalize(self, _close, fd)

    @classmethod
    def duplicate(cls, fd: int, position: int, length: int) -> FileRegion:
        """A region over a duplicate of ``fd`` (the caller keeps its own descriptor)."""
        return cls(os.dup(fd), position, length)

    def __len__(self) -> int:
        return self.length

    @property
    def closed(self) -> bool:
        return not self._closer.alive

    def read(self) -> bytes:
        """The region's bytes, copied (the buffered path, e.g. under TLS)."""
        return pread_exact(self.fd, self.length, self.position)

    def close(self) -> None:
        self._closer()

    def __repr__(self) -> str:
        return f"FileRegion(fd={self.fd}, position={self.position}, length={self.length})"
