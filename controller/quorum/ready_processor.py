"""ReadyProcessor: handles one Raft node's Readies, synchronously, in the order Raft needs.

This is the runtime's loop body with no event loop in it, shared by the asyncio runtime
(``QuorumRuntime``) and the Raft simulator (tests/sim), so what the simulator checks against
thousands of fault schedules is the code production runs. A Ready goes through these phases,
each a method, and a method called out of turn raises ``ReadyOrderError``:

1. ``take``: the next Ready from the core, if any (one at a time);
2. ``write`` then ``sync`` (together: ``persist``): hard state, received snapshot, truncation
   and entries to the ``RaftLogStore``, then fsync. These touch only the store, so a driver may
   run them on another thread (production) or let virtual time pass between them (the
   simulator's fsync latency);
3. ``send``: the Ready's messages to the ``MessageOutbox``, refused until the Ready is durable
   (a vote or an acknowledgement must never leave before what it promises is on disk);
4. ``apply``: role changes, then a received snapshot restored into the state machine, then the
   committed entries applied in order (resolving waiting proposals), then ``RaftNode.advance``.

``handle_ready`` runs all four for one Ready. After a Ready, ``snapshot_due`` says whether to
snapshot the state machine (``prepare_snapshot``, then ``save_snapshot``, which blocks, then
``snapshot_saved``).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from raftka.common.errors import DataDirectoryError
from raftka.common.ids import Index, NodeId, Term
from raftka.controller.quorum.ports import MessageOutbox, RaftLogStore
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.node import RaftNode
from raftka.controller.raft.ready import Ready
from raftka.controller.raft.status import Role
from raftka.controller.raft.types import (
    Entry,
    EntryKind,
    PersistedState,
    Snapshot,
    SnapshotMeta,
)

log = structlog.get_logger(__name__)


class StateMachine(Protocol):
    def check(self, data: bytes) -> str | None:
        """Why ``data`` could not be applied as a NORMAL entry, or None if it could. The core
        asks before an entry enters its log (a proposal, or one received from a leader)."""

    def apply(self, entry: Entry) -> None:
        """Apply one committed NORMAL entry."""

    def restore(self, snapshot: Snapshot) -> None:
        """Replace all state with a snapshot's."""

    def take_snapshot(self) -> bytes:
        """Serialize the state as of the last applied entry."""


class ProposalWaiter(Protocol):
    """Told the fate of one proposal (an ``asyncio.Future[Index]`` in production)."""

    def done(self) -> bool: ...

    def set_result(self, result: Index, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class LeadershipLost(Exception):
    """The proposal's fate is unknown: this node stopped leading before it committed."""

    def __init__(self, leader_id: NodeId | None) -> None:
        super().__init__("leadership changed before the proposal committed")
        self.leader_id = leader_id


class ApplyFailed(RuntimeError):
    """A committed entry could not be applied: the state machine cannot go on, so neither can
    the node (the runtime stops the process; see QuorumRuntime)."""

    def __init__(self, entry: Entry, cause: BaseException) -> None:
        super().__init__(
            f"committed entry {entry.index} (term {entry.term}, {len(entry.data)} bytes) cannot "
            f"be applied: {type(cause).__name__}: {cause}"
        )
        self.entry = entry


class ReadyOrderError(RuntimeError):
    """A phase of Ready handling was called out of turn (a runtime bug)."""


LeaderListener = Callable[[Term | None], None]
"""Called with the term when this node becomes a leader whose earlier entries are all applied,
and with None when it stops leading."""


class _Phase(enum.Enum):
    TAKEN = "taken"
    WRITTEN = "written"
    DURABLE = "durable"
    SENT = "sent"


class ReadyProcessor:
    def __init__(
        self,
        *,
        node_id: NodeId,
        voters: Sequence[NodeId],
        raft_config: RaftConfig,
        storage: RaftLogStore,
        outbox: MessageOutbox,
        state_machine: StateMachine,
        snapshot_due: Callable[[], bool],
    ) -> None:
        self.node_id = node_id
        self._voters = tuple(voters)
        self._raft_config = raft_config
        self._storage = storage
        self._outbox = outbox
        self._sm = state_machine
        self._snapshot_due = snapshot_due
        self._node: RaftNode | None = None
        self._ready: Ready | None = None
        self._phase: _Phase | None = None
        self._pending: dict[Index, tuple[Term, ProposalWaiter]] = {}
        self.leader_listeners: list[LeaderListener] = []
        self.commit_listeners: list[Callable[[], None]] = []
        """Called after each batch of committed entries is applied."""
        self.role = Role.FOLLOWER
        self.term = Term(0)
        self.leader_id: NodeId | None = None
        self._leader_ready_term: Term | None = None
        self.applied_index = Index(0)
        self.applied_term = Term(0)

    # ---- lifecycle ----

    def open(
        self, persisted: PersistedState, rng: random.Random, *, incarnation: int = 0
    ) -> RaftNode:
        """Restore the state machine from the durable snapshot and build the core on what
        ``storage.load()`` returned. ``incarnation``: this start of the process, larger than
        the previous start's (stamped on the node's AppendEntriesResponses)."""
        if self._node is not None:
            raise RuntimeError(f"node {self.node_id} is already open")
        vote = persisted.hard_state.voted_for
        if vote is not None and vote not in self._voters:
            raise DataDirectoryError(
                f"node {self.node_id}'s quorum-state records a vote for node {vote} in term "
                f"{persisted.hard_state.term}, which is not one of the voters "
                f"{sorted(self._voters)} in controller.voters: the voter set must be the same on "
                "every node and cannot be changed by editing the config; restore the "
                "controller.voters this node ran with"
            )
        if persisted.snapshot is not None:
            self._sm.restore(persisted.snapshot)
            self.applied_index = persisted.snapshot.meta.index
            self.applied_term = persisted.snapshot.meta.term
        self._node = RaftNode(
            self.node_id,
            self._voters,
            self._raft_config,
            persisted,
            rng,
            entry_check=self._sm.check,
            incarnation=incarnation,
        )
        self.term = persisted.hard_state.term
        return self._node

    @property
    def node(self) -> RaftNode:
        if self._node is None:
            raise RuntimeError("the quorum runtime has not started")
        return self._node

    @property
    def in_flight(self) -> Ready | None:
        """The Ready taken and not yet applied."""
        return self._ready

    @property
    def is_leader_ready(self) -> bool:
        """Leader, with every entry of earlier terms applied (safe to serve writes)."""
        return self.role is Role.LEADER and self._leader_ready_term == self.term

    # ---- proposals ----

    def track(self, index: Index, term: Term, waiter: ProposalWaiter) -> None:
        """Resolve ``waiter`` once the entry proposed at (index, term) is applied, or fail it
        with LeadershipLost if another entry takes that index or leadership is lost first."""
        self._pending[index] = (term, waiter)

    def fail_pending(self, leader_id: NodeId | None) -> None:
        pending, self._pending = self._pending, {}
        for _term, waiter in pending.values():
            if not waiter.done():
                waiter.set_exception(LeadershipLost(leader_id))

    # ---- the phases of one Ready ----

    def take(self) -> Ready | None:
        """The core's next Ready (now in flight), or None if it has nothing to hand out."""
        if self._ready is not None:
            raise ReadyOrderError("a Ready is still in flight")
        node = self.node
        if not node.has_ready():
            return None
        self._ready = node.ready()
        self._phase = _Phase.TAKEN
        return self._ready

    def write(self) -> None:
        """Write the in-flight Ready's durable parts (not necessarily durable yet)."""
        ready = self._expect(_Phase.TAKEN, "write")
        if ready.must_sync:
            self._storage.write(
                ready.hard_state, ready.snapshot, ready.truncate_from, ready.entries
            )
        self._phase = _Phase.WRITTEN

    def sync(self) -> None:
        """Make what ``write`` wrote durable (fsync)."""
        ready = self._expect(_Phase.WRITTEN, "sync")
        if ready.must_sync:
            self._storage.sync()
        self._phase = _Phase.DURABLE

    def persist(self) -> None:
        """``write`` then ``sync``: touches only the store, so it may run on another thread."""
        self.write()
        self.sync()

    def send(self) -> None:
        """Send the in-flight Ready's messages: only once it is durable."""
        ready = self._expect(_Phase.DURABLE, "send")
        if ready.messages:
            self._outbox.send(list(ready.messages))
        self._phase = _Phase.SENT

    def apply(self) -> None:
        """Apply the in-flight Ready (role, snapshot, committed entries), then advance the core;
        the Ready is done."""
        ready = self._expect(_Phase.SENT, "apply")
        if ready.soft_state is not None:
            self._on_soft_state(
                ready.soft_state.role, ready.soft_state.leader_id, ready.soft_state.term
            )
        if ready.snapshot is not None:
            self._sm.restore(ready.snapshot)
            self.applied_index = ready.snapshot.meta.index
            self.applied_term = ready.snapshot.meta.term
            self._fail_pending_through(self.applied_index)
        for entry in ready.committed:
            self._apply(entry)
        self.node.advance(ready)
        self._ready, self._phase = None, None
        if ready.committed or ready.snapshot is not None:
            for listener in self.commit_listeners:
                listener()

    def complete(self) -> None:
        """``send`` then ``apply`` (the part of a Ready that runs on the runtime's own thread)."""
        self.send()
        self.apply()

    def handle_ready(self) -> bool:
        """Take one Ready and handle it whole: persist, send, apply (then snapshot if due).
        False if there was none."""
        if self.take() is None:
            return False
        self.persist()
        self.complete()
        if self.snapshot_due():
            snapshot = self.prepare_snapshot()
            if snapshot is not None:
                self.save_snapshot(snapshot)
                self.snapshot_saved(snapshot)
        return True

    def _expect(self, phase: _Phase, step: str) -> Ready:
        ready, current = self._ready, self._phase
        if ready is None or current is not phase:
            state = "no Ready in flight" if current is None else f"the Ready is {current.value}"
            raise ReadyOrderError(f"{step} out of turn: {state}, it must be {phase.value}")
        return ready

    # ---- snapshots of the state machine ----

    def snapshot_due(self) -> bool:
        return self._ready is None and self._snapshot_due()

    def prepare_snapshot(self) -> Snapshot | None:
        """A snapshot of the applied state, or None if it would cover nothing new."""
        if self.applied_index <= self.node.status().snapshot_index:
            return None
        return Snapshot(
            SnapshotMeta(self.applied_index, self.applied_term), self._sm.take_snapshot()
        )

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Save it durably and drop the log below it (blocks; touches only the store)."""
        self._storage.compact(snapshot)

    def snapshot_saved(self, snapshot: Snapshot) -> None:
        self.node.compact(snapshot)
        log.info(
            "snapshot_taken",
            index=snapshot.meta.index,
            term=snapshot.meta.term,
            bytes=len(snapshot.data),
        )

    # ---- applying ----

    def _apply(self, entry: Entry) -> None:
        if entry.kind is EntryKind.NORMAL:
            try:
                self._sm.apply(entry)
            except Exception as e:
                raise ApplyFailed(entry, e) from e
        self.applied_index = entry.index
        self.applied_term = entry.term
        pending = self._pending.pop(entry.index, None)
        if pending is not None:
            term, waiter = pending
            if not waiter.done():
                if term == entry.term:
                    waiter.set_result(entry.index)
                else:
                    waiter.set_exception(LeadershipLost(self.leader_id))
        if (
            self.role is Role.LEADER
            and entry.term == self.term
            and self._leader_ready_term != self.term
        ):
            self._leader_ready_term = self.term
            log.info("leader_ready", term=self.term, applied_index=entry.index)
            for listener in self.leader_listeners:
                listener(self.term)

    def _on_soft_state(self, role: Role, leader_id: NodeId | None, term: Term) -> None:
        was_leader = self.role is Role.LEADER
        if role != self.role or leader_id != self.leader_id or term != self.term:
            log.info("raft_state_changed", role=role.value, leader=leader_id, term=term)
        self.role, self.leader_id, self.term = role, leader_id, term
        if was_leader and (role is not Role.LEADER):
            self._leader_ready_term = None
            self.fail_pending(leader_id)
            for listener in self.leader_listeners:
                listener(None)

    def _fail_pending_through(self, index: Index) -> None:
        for pending_index in [i for i in self._pending if i <= index]:
            _term, waiter = self._pending.pop(pending_index)
            if not waiter.done():
                waiter.set_exception(LeadershipLost(self.leader_id))


__all__ = [
    "ApplyFailed",
    "LeaderListener",
    "LeadershipLost",
    "ProposalWaiter",
    "ReadyOrderError",
    "ReadyProcessor",
    "StateMachine",
]
