"""Drives one sans-I/O Raft node with a real clock, disk and network, on one asyncio loop.

Every Ready is handled in the order Raft needs: persist (fsync, off the event loop), then send,
then apply committed entries to the state machine. A proposal's future resolves once its entry
commits and is applied, or fails if leadership is lost first.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from raftka.common.ids import Index, NodeId, Term
from raftka.common.tasks import cancel_and_wait
from raftka.controller.quorum.raft_storage import RaftStorage
from raftka.controller.quorum.transport import RaftTransport
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.errors import NotLeader
from raftka.controller.raft.messages import Message
from raftka.controller.raft.node import RaftNode
from raftka.controller.raft.ready import Ready
from raftka.controller.raft.status import Role, Status
from raftka.controller.raft.types import Entry, EntryKind, Snapshot, SnapshotMeta

log = structlog.get_logger(__name__)


class StateMachine(Protocol):
    def apply(self, entry: Entry) -> None:
        """Apply one committed NORMAL entry."""

    def restore(self, snapshot: Snapshot) -> None:
        """Replace all state with a snapshot's."""

    def take_snapshot(self) -> bytes:
        """Serialize the state as of the last applied entry."""


class LeadershipLost(Exception):
    """The proposal's fate is unknown: this node stopped leading before it committed."""

    def __init__(self, leader_id: NodeId | None) -> None:
        super().__init__("leadership changed before the proposal committed")
        self.leader_id = leader_id


LeaderListener = Callable[[Term | None], None]
"""Called with the term when this node becomes a leader whose earlier entries are all applied,
and with None when it stops leading."""


class QuorumRuntime:
    def __init__(
        self,
        *,
        node_id: NodeId,
        voters: Sequence[NodeId],
        raft_config: RaftConfig,
        storage: RaftStorage,
        transport: RaftTransport,
        state_machine: StateMachine,
        tick_s: float,
        snapshot_after_bytes: int,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        self._voters = tuple(voters)
        self._raft_config = raft_config
        self._storage = storage
        self._transport = transport
        self._sm = state_machine
        self._tick_s = tick_s
        self._snapshot_after_bytes = snapshot_after_bytes
        self._rng = rng or random.Random()
        self._node: RaftNode | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: dict[Index, tuple[Term, asyncio.Future[Index]]] = {}
        self._leader_listeners: list[LeaderListener] = []
        self._commit_listeners: list[Callable[[], None]] = []
        self._role = Role.FOLLOWER
        self._term = Term(0)
        self._leader_id: NodeId | None = None
        self._leader_ready_term: Term | None = None
        self._applied = Index(0)
        self._applied_term = Term(0)
        self.last_contact: dict[NodeId, float] = {}

    # ---- lifecycle ----

    async def start(self) -> None:
        persisted = await asyncio.to_thread(self._storage.load)
        if persisted.snapshot is not None:
            self._sm.restore(persisted.snapshot)
            self._applied = persisted.snapshot.meta.index
            self._applied_term = persisted.snapshot.meta.term
        self._node = RaftNode(self.node_id, self._voters, self._raft_config, persisted, self._rng)
        self._term = persisted.hard_state.term
        self._transport.start()
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name="raft-tick"),
            asyncio.create_task(self._ready_loop(), name="raft-ready"),
        ]
        self._wake.set()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._fail_pending(None)
        await self._transport.close()
        await asyncio.to_thread(self._storage.close)

    # ---- inputs ----

    @property
    def node(self) -> RaftNode:
        if self._node is None:
            raise RuntimeError("the quorum runtime has not started")
        return self._node

    def deliver(self, msg: Message) -> None:
        self.node.step(msg)
        self._wake.set()

    def submit(self, data: bytes) -> tuple[Index, asyncio.Future[Index]]:
        """Propose an entry. Returns at once with the entry's index and a future that resolves
        (to the same index) once it is committed and applied, or fails with LeadershipLost
        (outcome unknown). Raises NotLeader / LeadershipTransferInProgress synchronously."""
        index, term = self.node.propose(data)
        future: asyncio.Future[Index] = asyncio.get_running_loop().create_future()
        self._pending[index] = (term, future)
        self._wake.set()
        return index, future

    def transfer_leadership(self, target: NodeId | None) -> None:
        self.node.transfer_leadership(target)
        self._wake.set()

    def add_leader_listener(self, listener: LeaderListener) -> None:
        self._leader_listeners.append(listener)

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Called after each batch of committed entries is applied."""
        self._commit_listeners.append(listener)

    # ---- queries ----

    def status(self) -> Status:
        return self.node.status()

    @property
    def leader_id(self) -> NodeId | None:
        return self._leader_id

    @property
    def is_ready_leader(self) -> bool:
        """Leader, with every entry of earlier terms applied (safe to serve writes)."""
        return self._role is Role.LEADER and self._leader_ready_term == self._term

    @property
    def applied_index(self) -> Index:
        return self._applied

    # ---- loops ----

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += self._tick_s
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            self.node.tick()
            self._wake.set()

    async def _ready_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.node.has_ready():
                ready = self.node.ready()
                await self._handle(ready)

    async def _handle(self, ready: Ready) -> None:
        if ready.must_sync:
            await asyncio.to_thread(
                self._storage.persist,
                ready.hard_state,
                ready.snapshot,
                ready.truncate_from,
                ready.entries,
            )
        if ready.messages:
            self._transport.send(list(ready.messages))
        if ready.soft_state is not None:
            self._on_soft_state(
                ready.soft_state.role, ready.soft_state.leader_id, ready.soft_state.term
            )
        if ready.snapshot is not None:
            self._sm.restore(ready.snapshot)
            self._applied = ready.snapshot.meta.index
            self._applied_term = ready.snapshot.meta.term
            self._fail_pending_through(self._applied)
        for entry in ready.committed:
            self._apply(entry)
        self.node.advance(ready)
        if ready.committed or ready.snapshot is not None:
            for listener in self._commit_listeners:
                listener()
        if self._storage.bytes_since_snapshot >= self._snapshot_after_bytes:
            await self._take_snapshot()

    def _apply(self, entry: Entry) -> None:
        if entry.kind is EntryKind.NORMAL:
            self._sm.apply(entry)
        self._applied = entry.index
        self._applied_term = entry.term
        pending = self._pending.pop(entry.index, None)
        if pending is not None:
            term, future = pending
            if not future.done():
                if term == entry.term:
                    future.set_result(entry.index)
                else:
                    future.set_exception(LeadershipLost(self._leader_id))
        if (
            self._role is Role.LEADER
            and entry.term == self._term
            and self._leader_ready_term != self._term
        ):
            self._leader_ready_term = self._term
            log.info("leader_ready", term=self._term, applied_index=entry.index)
            for listener in self._leader_listeners:
                listener(self._term)

    def _on_soft_state(self, role: Role, leader_id: NodeId | None, term: Term) -> None:
        was_leader = self._role is Role.LEADER
        if role != self._role or leader_id != self._leader_id or term != self._term:
            log.info("raft_state_changed", role=role.value, leader=leader_id, term=term)
        self._role, self._leader_id, self._term = role, leader_id, term
        if was_leader and (role is not Role.LEADER):
            self._leader_ready_term = None
            self._fail_pending(leader_id)
            for listener in self._leader_listeners:
                listener(None)

    def _fail_pending(self, leader_id: NodeId | None) -> None:
        pending, self._pending = self._pending, {}
        for _term, future in pending.values():
            if not future.done():
                future.set_exception(LeadershipLost(leader_id))

    def _fail_pending_through(self, index: Index) -> None:
        for pending_index in [i for i in self._pending if i <= index]:
            _term, future = self._pending.pop(pending_index)
            if not future.done():
                future.set_exception(LeadershipLost(self._leader_id))

    async def _take_snapshot(self) -> None:
        if self._applied <= self.node.status().snapshot_index:
            return
        snapshot = Snapshot(
            SnapshotMeta(self._applied, self._applied_term), self._sm.take_snapshot()
        )
        await asyncio.to_thread(self._storage.compact, snapshot)
        self.node.compact(snapshot)
        log.info(
            "snapshot_taken",
            index=snapshot.meta.index,
            term=snapshot.meta.term,
            bytes=len(snapshot.data),
        )


__all__ = ["LeadershipLost", "NotLeader", "QuorumRuntime", "StateMachine"]
