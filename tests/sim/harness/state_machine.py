"""ListStateMachine: the applied NORMAL entries, in order, with binary snapshots (a
``StateMachine`` of raftka.controller.quorum.ready_processor)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from raftka.common.ids import Index, Term
from raftka.controller.raft.types import Entry, EntryKind, Snapshot

_ITEM = struct.Struct(">QQI")
POISON = b"poison:"
"""Data starting with this fails ``check``: what a state machine cannot apply."""


@dataclass(frozen=True, slots=True)
class Applied:
    index: Index
    term: Term
    data: bytes


class ApplyOrderError(AssertionError):
    """Committed entries reached the state machine out of order or twice."""


class ListStateMachine:
    __slots__ = ("_applied", "items", "version")

    def __init__(self, applied: Callable[[], Index] | None = None) -> None:
        self.items: list[Applied] = []
        self._applied = applied
        """The runtime's applied index (NOOPs included), to check that no entry is skipped."""
        self.version = 0
        """Bumped whenever the list is replaced (restore), so checkers re-read it whole."""

    @property
    def last_index(self) -> Index:
        return self.items[-1].index if self.items else Index(0)

    def check(self, data: bytes) -> str | None:
        return "poison" if data.startswith(POISON) else None

    def apply(self, entry: Entry) -> None:
        if entry.kind is not EntryKind.NORMAL:
            raise ApplyOrderError(f"a {entry.kind.name} entry reached the state machine")
        if entry.index <= self.last_index:
            raise ApplyOrderError(f"applying {entry.index} after {self.last_index}")
        if self._applied is not None and entry.index != self._applied() + 1:
            raise ApplyOrderError(f"applying {entry.index} after {self._applied()}")
        self.items.append(Applied(entry.index, entry.term, entry.data))

    def take_snapshot(self) -> bytes:
        parts = [struct.pack(">I", len(self.items))]
        for it in self.items:
            parts.append(_ITEM.pack(it.index, it.term, len(it.data)))
            parts.append(it.data)
        return b"".join(parts)

    def restore(self, snapshot: Snapshot) -> None:
        data = snapshot.data
        (count,) = struct.unpack_from(">I", data, 0)
        pos = 4
        items: list[Applied] = []
        for _ in range(count):
            index, term, size = _ITEM.unpack_from(data, pos)
            pos += _ITEM.size
            items.append(Applied(Index(index), Term(term), data[pos : pos + size]))
            pos += size
        if pos != len(data):
            raise ApplyOrderError("snapshot has trailing bytes")
        self.items = items
        self.version += 1
