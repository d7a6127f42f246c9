"""RaftLog: the node's in-memory view of its log, and what of it still has to reach the disk.

It owns the snapshot boundary (the latest snapshot, kept whole so a leader can send it), the
entries after it, the commit index, and the bookkeeping that turns changes into Ready contents:

* ``handed_to``: entries up to here are durable or in a Ready the runtime is persisting;
  later ones are *unstable* and go into the next Ready.
* ``stable_to``: entries up to here are known durable (a Ready holding them was advanced).
  A leader counts only these toward its own match index.
* a pending truncation point, when entries already handed out must be deleted from disk.
* a pending snapshot, received from a leader, that must replace the log on disk.
* ``applied``: the last committed index handed out (in a Ready that was advanced).
"""

from __future__ import annotations

from collections.abc import Sequence

from raftka.common.ids import Index, Term
from raftka.controller.raft.types import Entry, Snapshot


class LogInvariantError(AssertionError):
    """The core was about to break a Raft safety rule (a bug, never bad input)."""


class RaftLog:
    __slots__ = (
        "_entries",
        "_handed_commit",
        "_handed_to",
        "_pending_snapshot",
        "_pending_truncate",
        "_snap_index",
        "_snap_term",
        "_snapshot",
        "applied",
        "commit",
        "stable_to",
    )

    def __init__(self, snapshot: Snapshot | None, entries: Sequence[Entry]) -> None:
        self._snapshot = snapshot
        self._snap_index = snapshot.meta.index if snapshot is not None else Index(0)
        self._snap_term = snapshot.meta.term if snapshot is not None else Term(0)
        expected = self._snap_index + 1
        prev_term = self._snap_term
        for e in entries:
            if e.index != expected:
                raise ValueError(
                    f"persisted entries must be contiguous from index {self._snap_index + 1}: "
                    f"expected {expected}, got {e.index}"
                )
            if e.term < prev_term:
                raise ValueError(f"persisted entry {e.index} has term {e.term} < {prev_term}")
            expected += 1
            prev_term = e.term
        self._entries: list[Entry] = list(entries)
        self.commit: Index = self._snap_index
        """Highest index known committed (not durable: re-learned after a restart)."""
        self.applied: Index = self._snap_index
        self._handed_commit: Index = self._snap_index
        self._handed_to: Index = self.last_index
        self.stable_to: Index = self.last_index
        self._pending_truncate: Index | None = None
        self._pending_snapshot: Snapshot | None = None

    # -- reading -------------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot | None:
        """The latest snapshot (taken locally or received), or None."""
        return self._snapshot

    @property
    def snapshot_index(self) -> Index:
        return self._snap_index

    @property
    def snapshot_term(self) -> Term:
        return self._snap_term

    @property
    def first_index(self) -> Index:
        """The first index still held as an entry."""
        return Index(self._snap_index + 1)

    @property
    def last_index(self) -> Index:
        return Index(self._snap_index + len(self._entries))

    @property
    def last_term(self) -> Term:
        return self._entries[-1].term if self._entries else self._snap_term

    def term_at(self, index: int) -> Term | None:
        """The term of the entry at ``index``; None when compacted away or past the end."""
        if index == self._snap_index:
            return self._snap_term
        offset = index - self._snap_index - 1
        if offset < 0 or offset >= len(self._entries):
            return Term(0) if index == 0 else None
        return self._entries[offset].term

    def matches(self, index: int, term: Term) -> bool:
        return self.term_at(index) == term

    def entry(self, index: int) -> Entry:
        return self._entries[index - self._snap_index - 1]

    def entries_between(self, lo: int, hi: int) -> tuple[Entry, ...]:
        """Entries lo..hi inclusive (lo must be past the snapshot)."""
        base = self._snap_index + 1
        if lo < base:
            raise ValueError(f"entry {lo} is compacted (first is {base})")
        return tuple(self._entries[lo - base : hi - base + 1])

    def entries_for_send(self, lo: int, max_bytes: int) -> tuple[Entry, ...]:
        """Entries from ``lo`` whose payload fits ``max_bytes`` (always at least one)."""
        base = self._snap_index + 1
        start = lo - base
        if start < 0:
            raise ValueError(f"entry {lo} is compacted (first is {base})")
        out: list[Entry] = []
        size = 0
        for e in self._entries[start:]:
            size += len(e.data)
            if out and size > max_bytes:
                break
            out.append(e)
        return tuple(out)

    def is_up_to_date(self, last_index: Index, last_term: Term) -> bool:
        """Election restriction: is a log ending at (last_index, last_term) at least as new?"""
        mine = self.last_term
        return last_term > mine or (last_term == mine and last_index >= self.last_index)

    def first_index_of_term_at(self, index: Index) -> Index:
        """Walk back from ``index`` (which must be held) to the first entry of the same term,
        never below ``commit + 1`` (everything committed matches any current leader)."""
        term = self.term_at(index)
        floor = max(self.commit + 1, self._snap_index + 1)
        i: int = index
        while i > floor and self.term_at(i - 1) == term:
            i -= 1
        return Index(i)

    def last_index_of_term(self, term: Term, at_most: int) -> Index | None:
        """The last index <= ``at_most`` whose entry has ``term``; None if no held entry has it."""
        i = min(at_most, self.last_index)
        while i > self._snap_index:
            t = self.entry(i).term
            if t == term:
                return Index(i)
            if t < term:
                return None
            i -= 1
        return None

    # -- changing ------------------------------------------------------------------------------

    def append(self, entry: Entry) -> None:
        """Leader append: ``entry`` must directly follow the last entry."""
        if entry.index != self.last_index + 1 or entry.term < self.last_term:
            raise LogInvariantError(f"append of {entry.index}@{entry.term} does not follow log")
        self._entries.append(entry)

    def accept(self, entries: Sequence[Entry]) -> None:
        """Follower append of entries that follow an already matched prefix.

        Entries the log already holds with the same term are kept (a late, shorter message never
        shortens the log); from the first conflicting one on, the log is replaced.
        """
        for pos, e in enumerate(entries):
            held = self.term_at(e.index)
            if held == e.term:
                continue
            if held is None and e.index <= self._snap_index:
                continue  # compacted, hence committed, hence identical
            if held is not None:
                self._truncate_from(e.index)
            for rest in entries[pos:]:
                self.append(rest)
            return

    def _truncate_from(self, index: Index) -> None:
        if index <= self.commit:
            raise LogInvariantError(f"refusing to truncate committed entry {index}")
        del self._entries[index - self._snap_index - 1 :]
        if index <= self._handed_to:
            self._handed_to = Index(index - 1)
            if self._pending_truncate is None or index < self._pending_truncate:
                self._pending_truncate = index
        self.stable_to = min(self.stable_to, Index(index - 1))

    def commit_to(self, index: int) -> bool:
        """Raise the commit index (never lowers it). Returns whether it moved."""
        if index <= self.commit:
            return False
        if index > self.last_index:
            raise LogInvariantError(f"commit {index} past last index {self.last_index}")
        self.commit = Index(index)
        return True

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        if snapshot.meta.index <= self.commit:
            raise LogInvariantError(
                f"restore of snapshot {snapshot.meta.index} at or below commit {self.commit}"
            )
        self._snapshot = snapshot
        self._snap_index = snapshot.meta.index
        self._snap_term = snapshot.meta.term
        self._entries = []
        self.commit = snapshot.meta.index
        self._handed_commit = snapshot.meta.index
        self._handed_to = snapshot.meta.index
        self._pending_snapshot = snapshot
        self._pending_truncate = None  # the snapshot replaces every persisted entry
        self.stable_to = Index(0)  # durable once the Ready carrying the snapshot is advanced

    def compact(self, snapshot: Snapshot) -> bool:
        """Drop entries covered by a snapshot the runtime took. False when not newer."""
        index = snapshot.meta.index
        if index <= self._snap_index:
            return False
        if index > self.applied:
            raise ValueError(f"snapshot index {index} is past the applied index {self.applied}")
        if self.term_at(index) != snapshot.meta.term:
            raise ValueError(
                f"snapshot term {snapshot.meta.term} differs from the log's term "
                f"{self.term_at(index)} at index {index}"
            )
        del self._entries[: index - self._snap_index]
        self._snapshot = snapshot
        self._snap_index = index
        self._snap_term = snapshot.meta.term
        return True

    # -- Ready bookkeeping ---------------------------------------------------------------------

    def has_unpersisted(self) -> bool:
        return (
            self._pending_snapshot is not None
            or self._pending_truncate is not None
            or self._handed_to < self.last_index
        )

    def has_unapplied(self) -> bool:
        return self._handed_commit < self.commit

    def take_unpersisted(self) -> tuple[Snapshot | None, Index | None, tuple[Entry, ...]]:
        """Hand out (snapshot, truncate_from, entries) to persist; they count as handed out."""
        snapshot, truncate = self._pending_snapshot, self._pending_truncate
        entries = self.entries_between(self._handed_to + 1, self.last_index)
        self._pending_snapshot = None
        self._pending_truncate = None
        self._handed_to = self.last_index
        return snapshot, truncate, entries

    def take_committed(self, max_bytes: int | None = None) -> tuple[Entry, ...]:
        """Hand out the committed entries not handed out before, in order: with ``max_bytes``
        only as many as fit that much payload (always at least one); the rest stay for the
        next call (``has_unapplied`` stays true)."""
        if self._handed_commit >= self.commit:
            return ()
        if max_bytes is None:
            out = self.entries_between(self._handed_commit + 1, self.commit)
        else:
            out = self._entries_up_to(self._handed_commit + 1, self.commit, max_bytes)
        self._handed_commit = out[-1].index
        return out

    def _entries_up_to(self, lo: int, hi: int, max_bytes: int) -> tuple[Entry, ...]:
        base = self._snap_index + 1
        out: list[Entry] = []
        size = 0
        for e in self._entries[lo - base : hi - base + 1]:
            size += len(e.data)
            if out and size > max_bytes:
                break
            out.append(e)
        return tuple(out)

    def persisted(
        self, snapshot: Snapshot | None, entries: Sequence[Entry], committed: Sequence[Entry]
    ) -> None:
        """The runtime made a handed-out Ready durable and applied its committed entries."""
        if snapshot is not None and self.matches(snapshot.meta.index, snapshot.meta.term):
            self.stable_to = max(self.stable_to, snapshot.meta.index)
            self.applied = max(self.applied, snapshot.meta.index)
        if entries:
            # Entries cut (truncated, or replaced by a snapshot) meanwhile are not durable.
            upto = min(entries[-1].index, self._handed_to)
            first = entries[0].index
            if (
                first <= upto
                and upto > self.stable_to
                and self.matches(upto, entries[upto - first].term)
            ):
                self.stable_to = Index(upto)
        if committed:
            self.applied = max(self.applied, committed[-1].index)
