"""SnapshotReceiver: a follower's assembly of one snapshot from in-order InstallSnapshot chunks.

Chunks must arrive in order; a chunk at any other offset is answered with the offset expected,
and a chunk of a different snapshot starts over (only a chunk at offset 0 can start one).
"""

from __future__ import annotations

from raftka.controller.raft.types import Snapshot, SnapshotMeta


class SnapshotReceiver:
    __slots__ = ("_chunks", "_received", "meta", "total_size")

    def __init__(self, meta: SnapshotMeta, total_size: int) -> None:
        self.meta = meta
        self.total_size = total_size
        self._chunks: list[bytes] = []
        self._received = 0

    @property
    def received(self) -> int:
        """Bytes assembled so far, i.e. the offset expected next."""
        return self._received

    def is_for(self, meta: SnapshotMeta, total_size: int) -> bool:
        return self.meta == meta and self.total_size == total_size

    def add(self, offset: int, data: bytes) -> bool:
        """Take a chunk; False (and nothing changes) unless it starts where the last one ended
        and stays within the announced size."""
        if offset != self._received or self._received + len(data) > self.total_size:
            return False
        if data:
            self._chunks.append(data)
            self._received += len(data)
        return True

    @property
    def complete(self) -> bool:
        return self._received == self.total_size

    def snapshot(self) -> Snapshot:
        return Snapshot(meta=self.meta, data=b"".join(self._chunks))
