"""Recording fakes of the quorum runtime's ports (raftka.controller.quorum.ports).

``RecordingStore`` keeps written state apart from synced (durable) state and logs every call
with its thread; ``RecordingOutbox`` checks, as each message leaves, that what it promises is
already durable in that store, and can answer as the peers would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
)
from raftka.controller.raft.types import Entry, HardState, PersistedState, Snapshot


@dataclass(frozen=True, slots=True)
class Call:
    what: str
    thread: int


@dataclass(slots=True)
class _Writes:
    hard_state: HardState | None
    snapshot: Snapshot | None
    truncate_from: Index | None
    entries: tuple[Entry, ...]


@dataclass(slots=True)
class RecordingStore:
    calls: list[Call] = field(default_factory=list)
    durable_hard: HardState = field(default_factory=lambda: HardState(Term(0), None))
    durable_entries: list[Entry] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    unsynced: list[_Writes] = field(default_factory=list)

    @property
    def bytes_since_snapshot(self) -> int:
        last = self.snapshots[-1].meta.index if self.snapshots else 0
        return sum(len(e.data) for e in self.durable_entries if e.index > last)

    @property
    def durable_last_index(self) -> int:
        return self.durable_entries[-1].index if self.durable_entries else 0

    def _record(self, what: str) -> None:
        self.calls.append(Call(what, threading.get_ident()))

    def load(self) -> PersistedState:
        self._record("load")
        return PersistedState(self.durable_hard, None, tuple(self.durable_entries))

    def write(
        self,
        hard_state: HardState | None,
        snapshot: Snapshot | None,
        truncate_from: Index | None,
        entries: Sequence[Entry],
    ) -> None:
        self._record("write")
        self.unsynced.append(_Writes(hard_state, snapshot, truncate_from, tuple(entries)))

    def sync(self) -> None:
        self._record("sync")
        for w in self.unsynced:
            if w.hard_state is not None:
                self.durable_hard = w.hard_state
            if w.truncate_from is not None:
                self.durable_entries = [
                    e for e in self.durable_entries if e.index < w.truncate_from
                ]
            if w.entries:
                first = w.entries[0].index
                self.durable_entries = [e for e in self.durable_entries if e.index < first]
                self.durable_entries.extend(w.entries)
        self.unsynced.clear()

    def compact(self, snapshot: Snapshot) -> None:
        self._record("compact")
        self.snapshots.append(snapshot)

    def close(self) -> None:
        self._record("close")


class PromiseBroken(AssertionError):
    """A message left before what it promises was durable."""


class RecordingOutbox:
    """Records sent messages; checks each against the store's durable state as it leaves."""

    def __init__(self, store: RecordingStore) -> None:
        self.store = store
        self.sent: list[Message] = []
        self.answer: Callable[[Message], None] | None = None
        """If set, called with each peer's answer to a sent message (as if it came back)."""
        self.started = False
        self.closed = False

    def send(self, messages: list[Message]) -> None:
        store = self.store
        store._record("send")
        for m in messages:
            check_durable(m, store)
            self.sent.append(m)
            reply = peer_answer(m)
            if reply is not None and self.answer is not None:
                self.answer(reply)

    def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True


def check_durable(m: Message, store: RecordingStore) -> None:
    if store.unsynced:
        raise PromiseBroken(f"{m} sent with {len(store.unsynced)} writes not yet synced")
    pre_vote = isinstance(m, RequestVote | RequestVoteResponse) and m.pre_vote
    if not pre_vote and m.term > store.durable_hard.term:
        raise PromiseBroken(f"{m} carries a term not yet durable ({store.durable_hard})")
    vote = (store.durable_hard.term, store.durable_hard.voted_for)
    if (
        isinstance(m, RequestVoteResponse)
        and m.granted
        and not m.pre_vote
        and vote != (m.term, m.dst)
    ):
        raise PromiseBroken(f"{m} grants a vote not yet durable ({store.durable_hard})")
    if (
        isinstance(m, AppendEntriesResponse)
        and m.success
        and m.match_index > store.durable_last_index
    ):
        raise PromiseBroken(f"{m} acknowledges entries not yet durable")


def peer_answer(m: Message) -> Message | None:
    """What a willing, up-to-date peer answers: grant every vote, accept every append."""
    if isinstance(m, RequestVote):
        return RequestVoteResponse(
            src=m.dst, dst=m.src, term=m.term, granted=True, pre_vote=m.pre_vote
        )
    if isinstance(m, AppendEntries):
        match = Index(m.prev_index + len(m.entries))
        return AppendEntriesResponse(
            src=m.dst,
            dst=m.src,
            term=m.term,
            success=True,
            prev_index=m.prev_index,
            match_index=match,
            conflict_term=Term(0),
            conflict_index=Index(0),
            last_index=match,
        )
    return None


class RecordingStateMachine:
    def __init__(self) -> None:
        self.applied: list[Entry] = []
        self.restored: list[Snapshot] = []

    def check(self, data: bytes) -> str | None:
        return "not UTF-8" if not _is_utf8(data) else None

    def apply(self, entry: Entry) -> None:
        self.applied.append(entry)

    def restore(self, snapshot: Snapshot) -> None:
        self.restored.append(snapshot)

    def take_snapshot(self) -> bytes:
        return b"|".join(e.data for e in self.applied)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def n(i: int) -> NodeId:
    return NodeId(i)
