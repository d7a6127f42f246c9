"""InvariantChecker: Raft's safety properties, checked on a view of one node after every event.

Checked (over the whole history of a run, across crashes and restarts):

* election safety: at most one leader per term;
* a node's live term never decreases within one incarnation, nor its durable term ever, and a
  durable vote is never changed within a term (a node never votes twice in one term);
* a live node's commit index never decreases (within one incarnation);
* log matching: an (index, term) pair always denotes the same entry with the same predecessor
  term, so equal (index, term) implies equal prefixes;
* committed entries never change: a global record of committed (index -> term, kind, data),
  fed by every node's committed log entries and applied entries, must agree everywhere;
* committed entries are never lost: the durable prefix of committed entries of a node (its
  snapshot plus matching durable entries) never shrinks, even across crashes;
* leader completeness: a leader of term T holds every entry seen committed in terms < T;
* state machine safety: what a node applied agrees with the committed record, so applied
  sequences are prefixes of one another;
* persist before send (checked on every message as it leaves, ``observe_send``): what a
  message promises is already durable at its sender: its term (pre-votes aside), a granted
  vote, and the log entries a success acknowledges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft.messages import (
    AppendEntriesResponse,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
)
from raftka.controller.raft.status import Role
from raftka.controller.raft.types import Entry, EntryKind, HardState, SnapshotMeta

from .state_machine import ListStateMachine

_NO_TERM = Term(0)
_NO_INDEX = Index(0)


class InvariantViolation(AssertionError):
    pass


@dataclass(frozen=True, slots=True)
class NodeView:
    """What the checker may look at on one node (live fields are ignored when not alive)."""

    node_id: NodeId
    incarnation: int
    alive: bool
    durable_hard: HardState
    durable_snapshot: SnapshotMeta | None
    durable_entries: Sequence[Entry]
    term: Term = _NO_TERM
    role: Role = Role.FOLLOWER
    commit: Index = _NO_INDEX
    snapshot_index: Index = _NO_INDEX
    snapshot_term: Term = _NO_TERM
    entries: Sequence[Entry] = ()
    sm: ListStateMachine | None = None
    applied: Index = _NO_INDEX
    """The runtime's applied index (NOOPs included)."""


CommittedRecord = tuple[Term, EntryKind, bytes]


class _Track:
    __slots__ = (
        "commit",
        "durable_prefix",
        "durable_term",
        "durable_vote",
        "incarnation",
        "sm_checked",
        "sm_version",
        "term",
    )

    def __init__(self) -> None:
        self.incarnation = -1
        self.term = 0
        self.commit = 0
        self.durable_term = 0
        self.durable_vote: NodeId | None = None
        self.durable_prefix = 0
        self.sm_version = -1
        self.sm_checked = 0


class InvariantChecker:
    def __init__(self) -> None:
        self.leaders: dict[Term, NodeId] = {}
        """Every (term -> leader) ever observed."""
        self.committed: dict[int, CommittedRecord] = {}
        self._registry: dict[tuple[int, int], tuple[EntryKind, bytes, int]] = {}
        self._commit_at_term: dict[int, int] = {}
        self._tracks: dict[NodeId, _Track] = {}
        self.observations = 0

    @property
    def max_committed(self) -> int:
        return max(self.committed, default=0)

    def log_wiped(self, node_id: NodeId) -> None:
        """An operator deliberately deleted ``node_id``'s log and snapshots, keeping its term
        and vote (the way out for a damaged log): its durable prefix starts again from 0."""
        tr = self._tracks.get(node_id)
        if tr is not None:
            tr.durable_prefix = 0

    def observe(self, v: NodeView, what: str = "") -> None:
        self.observations += 1
        tr = self._tracks.get(v.node_id)
        if tr is None:
            tr = self._tracks[v.node_id] = _Track()
        where = f"node {v.node_id} after {what}" if what else f"node {v.node_id}"

        hs = v.durable_hard
        if hs.term < tr.durable_term:
            self._fail(f"{where}: durable term went back {tr.durable_term} -> {hs.term}")
        if (
            hs.term == tr.durable_term
            and tr.durable_vote is not None
            and hs.voted_for != tr.durable_vote
        ):
            self._fail(
                f"{where}: voted twice in term {hs.term} ({tr.durable_vote}, then {hs.voted_for})"
            )
        tr.durable_term, tr.durable_vote = hs.term, hs.voted_for
        if v.alive:
            self._observe_live(v, tr, where)
        prefix = self._durable_prefix(v)
        if prefix < tr.durable_prefix:
            self._fail(
                f"{where}: durable committed prefix shrank {tr.durable_prefix} -> {prefix} "
                "(a committed entry was lost)"
            )
        tr.durable_prefix = prefix

    def _observe_live(self, v: NodeView, tr: _Track, where: str) -> None:
        hs = v.durable_hard

        if v.incarnation != tr.incarnation:
            tr.incarnation, tr.term, tr.commit = v.incarnation, v.term, v.commit
            tr.sm_version, tr.sm_checked = -1, 0
        if v.term < tr.term:
            self._fail(f"{where}: term went back {tr.term} -> {v.term}")
        if v.term < hs.term:
            self._fail(f"{where}: live term {v.term} behind durable term {hs.term}")
        if v.commit < tr.commit:
            self._fail(f"{where}: commit index went back {tr.commit} -> {v.commit}")
        tr.term, tr.commit = v.term, v.commit

        leader_needs = 0
        if v.role is Role.LEADER:
            other = self.leaders.setdefault(v.term, v.node_id)
            if other != v.node_id:
                self._fail(f"{where}: two leaders in term {v.term}: {other} and {v.node_id}")
            leader_needs = max(
                (c for t, c in self._commit_at_term.items() if t < v.term), default=0
            )
            last = v.snapshot_index + len(v.entries)
            if last < leader_needs:
                self._fail(
                    f"{where}: leader of term {v.term} ends at {last} but entries up to "
                    f"{leader_needs} were committed in earlier terms (leader completeness)"
                )
        if v.commit > self._commit_at_term.get(v.term, 0):
            self._commit_at_term[v.term] = v.commit

        limit = max(v.commit, leader_needs)
        registry = self._registry
        prev_term: int = v.snapshot_term
        expected = v.snapshot_index + 1
        for e in v.entries:
            if e.index != expected:
                self._fail(f"{where}: log not contiguous at {e.index} (expected {expected})")
            expected += 1
            key = (e.index, e.term)
            seen = registry.get(key)
            mine = (e.kind, e.data, prev_term)
            if seen is None:
                registry[key] = mine
            elif seen != mine:
                self._fail(
                    f"{where}: log matching broken at index {e.index} term {e.term}: "
                    f"{mine} vs {seen}"
                )
            if e.index <= limit:
                self._record(e.index, (e.term, e.kind, e.data), where)
            prev_term = e.term

        sm = v.sm
        if sm is not None:
            if sm.version != tr.sm_version:
                tr.sm_version, tr.sm_checked = sm.version, 0
            items = sm.items
            for it in items[tr.sm_checked :]:
                self._record(it.index, (it.term, EntryKind.NORMAL, it.data), where + " (applied)")
            tr.sm_checked = len(items)
        if v.applied > v.commit:
            self._fail(f"{where}: applied {v.applied} past commit {v.commit}")

    def observe_send(
        self,
        m: Message,
        durable_hard: HardState,
        durable_snapshot: SnapshotMeta | None,
        durable_entries: Sequence[Entry],
        what: str = "",
    ) -> None:
        """Check that what ``m`` promises is durable at its sender as it leaves."""
        where = f"node {m.src} sending {type(m).__name__} to {m.dst}" + (f" {what}" if what else "")
        pre_vote = isinstance(m, RequestVote | RequestVoteResponse) and m.pre_vote
        if not pre_vote and m.term > durable_hard.term:
            self._fail(f"{where}: term {m.term} sent before it was durable ({durable_hard.term})")
        if (
            isinstance(m, RequestVoteResponse)
            and m.granted
            and not m.pre_vote
            and (durable_hard.term, durable_hard.voted_for) != (m.term, m.dst)
        ):
            self._fail(f"{where}: vote granted in term {m.term} before it was durable")
        acked = _NO_INDEX
        if isinstance(m, AppendEntriesResponse) and m.success:
            acked = m.match_index
        elif isinstance(m, InstallSnapshotResponse) and m.done:
            acked = m.snapshot_index
        if acked:
            last = (durable_snapshot.index if durable_snapshot is not None else 0) + len(
                durable_entries
            )
            if last < acked:
                self._fail(f"{where}: acknowledges the log up to {acked}, durable only to {last}")

    def _record(self, index: int, rec: CommittedRecord, where: str) -> None:
        held = self.committed.get(index)
        if held is None:
            self.committed[index] = rec
        elif held != rec:
            self._fail(f"{where}: committed entry {index} changed: {held} then {rec}")

    def _durable_prefix(self, v: NodeView) -> int:
        p = v.durable_snapshot.index if v.durable_snapshot is not None else 0
        committed = self.committed
        for e in v.durable_entries:
            if e.index != p + 1 or committed.get(e.index) != (e.term, e.kind, e.data):
                break
            p = e.index
        return p

    def _fail(self, message: str) -> None:
        raise InvariantViolation(message)
