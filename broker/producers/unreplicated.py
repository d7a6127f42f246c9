"""The completed transactions of one partition replica whose marker is not yet committed
(at or above the high watermark).

A marker that is in the log but not below the high watermark may still be lost with the
leader: a new leader without it keeps the transaction open. So a completed transaction keeps
the last stable offset at its first offset until the high watermark passes its marker (as
Kafka's producer state keeps its "unreplicated" transactions); otherwise a read_committed
reader could see it as finished, and the LSO would move back after a leader change.

Transactions complete in marker order, so the held ones form a queue released from its head.
The marker append (under the partition's write lock) and the high watermark's advance
(under the high watermark's lock, often on another thread) both change it: it has its own
lock. :attr:`UnreplicatedTxns.first_offset` is one value, read by other threads without a
lock.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import NamedTuple


class HeldTxn(NamedTuple):
    """A completed transaction held until the high watermark passes its marker."""

    first_offset: int
    marker_offset: int


class UnreplicatedTxns:
    """The completed transactions whose marker is at or above the high watermark."""

    __slots__ = ("_first", "_high_watermark", "_lock", "_txns")

    def __init__(self, high_watermark: int = 0) -> None:
        self._lock = threading.Lock()
        self._txns: deque[HeldTxn] = deque()
        self._high_watermark = high_watermark
        self._first: int | None = None

    @property
    def first_offset(self) -> int | None:
        """The lowest first offset of the held transactions (None when none is held)."""
        return self._first

    @property
    def high_watermark(self) -> int:
        """The high watermark as last told (:meth:`on_high_watermark`): every completed
        transaction whose marker is at or above it is held (what a snapshot records)."""
        return self._high_watermark

    def held(self) -> list[HeldTxn]:
        """The held transactions, in marker order."""
        with self._lock:
            return list(self._txns)

    def __len__(self) -> int:
        return len(self._txns)

    def completed(self, first_offset: int, marker_offset: int) -> None:
        """A marker at ``marker_offset`` completed the transaction that began at
        ``first_offset``: held unless the high watermark already passed the marker."""
        with self._lock:
            if marker_offset < self._high_watermark:
                return
            if self._txns and marker_offset <= self._txns[-1].marker_offset:
                raise ValueError(
                    f"marker at {marker_offset} is not after the last held marker at "
                    f"{self._txns[-1].marker_offset}: markers complete in log order"
                )
            self._txns.append(HeldTxn(first_offset, marker_offset))
            if self._first is None or first_offset < self._first:
                self._first = first_offset

    def on_high_watermark(self, high_watermark: int) -> bool:
        """The high watermark is now ``high_watermark`` (it may have moved either way: a
        truncation lowers it only after the markers above it went): the transactions whose
        marker is below it are released. Returns whether any was. O(1) unless some are
        released (then O(held))."""
        with self._lock:
            self._high_watermark = high_watermark
            txns = self._txns
            if not txns or txns[0].marker_offset >= high_watermark:
                return False
            while txns and txns[0].marker_offset < high_watermark:
                txns.popleft()
            self._first = min((t.first_offset for t in txns), default=None)
            return True

    def __repr__(self) -> str:
        return f"UnreplicatedTxns(held={len(self._txns)}, high_watermark={self._high_watermark})"
