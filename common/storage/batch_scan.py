"""Walking the record batches stored in a range of a file, in large sequential reads: the
scan behind recovery, replay and scrubbing. It only frames batches; callers validate them."""

from __future__ import annotations

from collections.abc import Iterator

from raftka.common.files import pread_exact
from raftka.common.records.batch import HEADER_SIZE, LOG_OVERHEAD, read_batch_size

SCAN_CHUNK_BYTES = 1 << 20
"""Read size of sequential scans (recovery, replay)."""


class BatchScan:
    """Iterates (position, view) of the batches stored in [start, end) of a file.

    Reads in large chunks; a batch larger than a chunk is read on its own. Only the length
    field is looked at: the caller validates. Iteration stops quietly at the first batch that
    is incomplete or has an impossible length; ``position`` is then where that batch starts
    (after a complete run it equals ``end``).
    """

    def __init__(self, fd: int, start: int, end: int, chunk_bytes: int = SCAN_CHUNK_BYTES) -> None:
        self._fd = fd
        self._end = end
        self._chunk = chunk_bytes
        self.position = start

    def __iter__(self) -> Iterator[tuple[int, memoryview]]:
        fd, end, chunk = self._fd, self._end, self._chunk
        pos = self.position
        buf = memoryview(b"")
        buf_start = pos
        while end - pos >= LOG_OVERHEAD:
            off = pos - buf_start
            if off + LOG_OVERHEAD > len(buf):
                buf = memoryview(pread_exact(fd, min(chunk, end - pos), pos))
                buf_start, off = pos, 0
                if len(buf) < LOG_OVERHEAD:
                    return
            size = read_batch_size(buf, off)
            if size < HEADER_SIZE or size > end - pos:
                return
            if off + size > len(buf):
                buf = memoryview(pread_exact(fd, min(max(chunk, size), end - pos), pos))
                buf_start, off = pos, 0
                if len(buf) < size:
                    return
            yield pos, buf[off : off + size]
            pos += size
            self.position = pos
