"""SimStorage: one node's disk, a ``RaftLogStore`` (raftka.controller.quorum.ports). Writes go
to a buffer; only ``sync()`` (fsync) makes them durable, and a crash keeps just a random prefix
of the unflushed writes (ordered, like a WAL)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from raftka.common.ids import Index, Term
from raftka.controller.raft.types import Entry, HardState, PersistedState, Snapshot


@dataclass(frozen=True, slots=True)
class SetHardState:
    hard_state: HardState


@dataclass(frozen=True, slots=True)
class ReplaceWithSnapshot:
    """A snapshot received from the leader replaces the whole log."""

    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class TruncateFrom:
    index: Index


@dataclass(frozen=True, slots=True)
class Append:
    entry: Entry


Write = SetHardState | ReplaceWithSnapshot | TruncateFrom | Append


class StorageError(AssertionError):
    """The runtime asked the disk for something impossible (a harness or core bug)."""


class SimStorage:
    __slots__ = ("_buffer", "entries", "flushes", "hard_state", "snapshot")

    def __init__(self) -> None:
        self.hard_state = HardState(Term(0), None)
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        """Durable entries after the durable snapshot."""
        self._buffer: list[Write] = []
        self.flushes = 0

    @property
    def snapshot_index(self) -> Index:
        return self.snapshot.meta.index if self.snapshot is not None else Index(0)

    @property
    def pending_writes(self) -> int:
        return len(self._buffer)

    @property
    def bytes_since_snapshot(self) -> int:
        return sum(len(e.data) for e in self.entries)

    def write(
        self,
        hard_state: HardState | None,
        snapshot: Snapshot | None,
        truncate_from: Index | None,
        entries: Sequence[Entry],
    ) -> None:
        buffer = self._buffer
        if hard_state is not None:
            buffer.append(SetHardState(hard_state))
        if snapshot is not None:
            buffer.append(ReplaceWithSnapshot(snapshot))
        if truncate_from is not None:
            buffer.append(TruncateFrom(truncate_from))
        buffer.extend(Append(e) for e in entries)

    def sync(self) -> None:
        for w in self._buffer:
            self._apply(w)
        self._buffer.clear()
        self.flushes += 1

    def crash(self, rng: random.Random) -> int:
        """Lose the unflushed writes, except a random prefix. Returns how many were lost."""
        keep = rng.randint(0, len(self._buffer))
        for w in self._buffer[:keep]:
            self._apply(w)
        lost = len(self._buffer) - keep
        self._buffer.clear()
        return lost

    def compact(self, snapshot: Snapshot) -> None:
        """The runtime's own state-machine snapshot: written and fsynced atomically (tmp file +
        rename), then the entries it covers are dropped."""
        if self._buffer:
            raise StorageError("snapshot saved while log writes are unflushed")
        if snapshot.meta.index <= self.snapshot_index:
            return
        drop = snapshot.meta.index - self.snapshot_index
        if drop > len(self.entries):
            raise StorageError(f"snapshot {snapshot.meta.index} is past the durable log")
        del self.entries[:drop]
        self.snapshot = snapshot

    def close(self) -> None:
        pass

    def load(self) -> PersistedState:
        if self._buffer:
            raise StorageError("load with unflushed writes")
        return PersistedState(self.hard_state, self.snapshot, tuple(self.entries))

    def _apply(self, w: Write) -> None:
        if isinstance(w, SetHardState):
            if w.hard_state.term < self.hard_state.term:
                raise StorageError(f"term goes back {self.hard_state.term} -> {w.hard_state.term}")
            self.hard_state = w.hard_state
        elif isinstance(w, ReplaceWithSnapshot):
            self.snapshot = w.snapshot
            self.entries = []
        elif isinstance(w, TruncateFrom):
            keep = w.index - self.snapshot_index - 1
            if keep < 0:
                raise StorageError(f"truncate from {w.index} below snapshot {self.snapshot_index}")
            del self.entries[keep:]
        else:
            expected = self.snapshot_index + len(self.entries) + 1
            if w.entry.index != expected:
                raise StorageError(f"append of {w.entry.index}, expected {expected}")
            self.entries.append(w.entry)
