"""ListStateMachine: the applied NORMAL entries, in order, with binary snapshots."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from raftka.common.ids import Index, Term
from raftka.controller.raft.types import Entry, EntryKind, Snapshot, SnapshotMeta

_ITEM = struct.Struct(">QQI")


@dataclass(frozen=True, slots=True)
class Applied:
    index: Index
    term: Term
    data: bytes


class ApplyOrderError(AssertionError):
    """Committed entries reached the state machine out of order or twice."""


class ListStateMachine:
    __slots__ = ("applied_index", "applied_term", "items", "version")

    def __init__(self) -> None:
        self.items: list[Applied] = []
        self.applied_index = Index(0)
        self.applied_term = Term(0)
        self.version = 0
        """Bumped whenever the list is replaced (restore), so checkers re-read it whole."""

    def apply(self, entry: Entry) -> None:
        if entry.index != self.applied_index + 1:
            raise ApplyOrderError(f"applying {entry.index} after {self.applied_index}")
        if entry.kind is EntryKind.NORMAL:
            self.items.append(Applied(entry.index, entry.term, entry.data))
        self.applied_index = entry.index
        self.applied_term = entry.term

    def take_snapshot(self) -> Snapshot:
        parts = [struct.pack(">I", len(self.items))]
        for it in self.items:
            parts.append(_ITEM.pack(it.index, it.term, len(it.data)))
            parts.append(it.data)
        return Snapshot(SnapshotMeta(self.applied_index, self.applied_term), b"".join(parts))

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
        self.applied_index = snapshot.meta.index
        self.applied_term = snapshot.meta.term
        self.version += 1
