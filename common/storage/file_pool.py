"""A bound on open segment files: opened when used, the least recently used closed past a limit.

A broker with 10,000 partitions has at least 10,000 segment files; keeping each open costs a
descriptor apiece (and hits the process limit). As Kafka keeps far fewer descriptors than
segments, a :class:`PooledFile` here holds its descriptor only while it is among the
``max_open`` most recently used files of its :class:`FilePool`; the others are closed and
reopened (by path) on their next use. A file in use (inside :meth:`PooledFile.use`) is pinned
and never closed under its user.

A reopened file must be the same file: its device and inode are remembered from the first
open, and a path that now names another file (a cleaned segment renamed over it, the file
deleted) raises ``FileNotFoundError`` as reading a deleted segment would. Closing a file with
unsynced writes loses nothing: its dirty pages belong to the inode, and the next ``fdatasync``
(through a reopened descriptor) writes them.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_MAX_OPEN = 1024
"""Segment files a process keeps open at most (beyond those in use at the same moment)."""

Opener = Callable[[Path], int]


def _open_rw(path: Path) -> int:
    return os.open(path, os.O_RDWR)


class FilePool:
    """The open files of many :class:`PooledFile` s, least recently used first."""

    def __init__(self, max_open: int = DEFAULT_MAX_OPEN, opener: Opener = _open_rw) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be >= 1, got {max_open}")
        self.max_open = max_open
        self._opener = opener
        self._lock = threading.Lock()
        self._open: OrderedDict[PooledFile, None] = OrderedDict()
        self.opens = 0
        """Files (re)opened through the pool (not counting adopted descriptors)."""
        self.closes = 0
        """Idle files closed to keep within ``max_open``."""

    @property
    def open_count(self) -> int:
        return len(self._open)

    def adopt(self, path: Path, fd: int) -> PooledFile:
        """A pooled file for the descriptor ``fd`` just opened on ``path`` (now the pool's)."""
        st = os.fstat(fd)
        pooled = PooledFile(self, path, (st.st_dev, st.st_ino))
        with self._lock:
            pooled._fd = fd
            self._open[pooled] = None
            self._evict_locked(keep=pooled)  # about to be used: not closed at once
        return pooled

    def set_max_open(self, max_open: int) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be >= 1, got {max_open}")
        with self._lock:
            self.max_open = max_open
            self._evict_locked()

    def _acquire(self, pooled: PooledFile) -> int:
        with self._lock:
            if pooled._closed:  # as a read through a closed descriptor would fail
                raise OSError(errno.EBADF, f"{pooled.path} is closed")
            pooled._pins += 1
            fd = pooled._fd
            if fd is not None:
                self._open.move_to_end(pooled)
                return fd
        try:
            fd = self._opener(pooled.path)
            st = os.fstat(fd)
        except BaseException:
            with self._lock:
                pooled._pins -= 1
            raise
        if (st.st_dev, st.st_ino) != pooled.identity:
            os.close(fd)
            with self._lock:
                pooled._pins -= 1
            raise FileNotFoundError(f"{pooled.path} is no longer the file this segment opened")
        with self._lock:
            self.opens += 1
            if pooled._fd is None:
                pooled._fd = fd
                self._open[pooled] = None
                self._evict_locked()
            else:  # another thread reopened it meanwhile
                os.close(fd)
                self._open.move_to_end(pooled)
            return pooled._fd

    def _release(self, pooled: PooledFile) -> None:
        with self._lock:
            pooled._pins -= 1
            if pooled._pins:
                return
            if pooled._closed:
                self._close_locked(pooled)
            elif len(self._open) > self.max_open:
                self._evict_locked()

    def _evict_locked(self, keep: PooledFile | None = None) -> None:
        """Closes idle files, least recently used first, until within ``max_open`` (files in
        use are skipped: the pool may exceed its bound by the files in use at once)."""
        excess = len(self._open) - self.max_open
        if excess <= 0:
            return
        for pooled in list(self._open):
            if excess <= 0:
                break
            if pooled._pins or pooled is keep:
                continue
            self._close_locked(pooled)
            self.closes += 1
            excess -= 1

    def _close_locked(self, pooled: PooledFile) -> None:
        fd, pooled._fd = pooled._fd, None
        self._open.pop(pooled, None)
        if fd is not None:
            os.close(fd)

    def _close(self, pooled: PooledFile) -> None:
        with self._lock:
            pooled._closed = True
            if pooled._pins == 0:
                self._close_locked(pooled)


class PooledFile:
    """One file of a :class:`FilePool`. Use its descriptor only inside :meth:`use`."""

    __slots__ = ("_closed", "_fd", "_pins", "identity", "path", "pool")

    def __init__(self, pool: FilePool, path: Path, identity: tuple[int, int]) -> None:
        self.pool = pool
        self.path = path
        """Where it is reopened from: follows the file's renames (set it after each)."""
        self.identity = identity
        self._fd: int | None = None
        self._pins = 0
        self._closed = False

    @property
    def is_open(self) -> bool:
        """Whether it holds a descriptor now."""
        return self._fd is not None

    @contextmanager
    def use(self) -> Iterator[int]:
        """The file's descriptor, reopened if the pool closed it; not closed until the block
        ends."""
        fd = self.pool._acquire(self)
        try:
            yield fd
        finally:
            self.pool._release(self)

    def close(self) -> None:
        """Closes it for good (at once, or when its last user is done)."""
        self.pool._close(self)


SEGMENT_FILES = FilePool()
"""The pool every segment's log file is in (one per process)."""
