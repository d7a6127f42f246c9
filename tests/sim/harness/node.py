"""SimNode: one simulated controller, running the production Ready handling.

Each node drives the real ``ReadyProcessor`` (raftka.controller.quorum.ready_processor), the
loop body ``QuorumRuntime`` runs in production, over a simulated disk (``SimStorage``) and an
outbox into the simulated network. For each Ready: ``write`` (hard state / snapshot /
truncation / entries into the unflushed buffer), then ``sync`` (fsync), ``send``, ``apply``
(restore a received snapshot, apply committed entries, advance), then a state-machine snapshot
(and compaction) once enough was applied since the last one. The cluster may let virtual time
pass between write and sync (fsync latency), during which the node keeps receiving ticks and
messages, as under the asyncio runtime, which fsyncs off the event loop. A crash can be armed
to strike at one point of that sequence; it keeps only a random prefix of the unflushed
writes. A restart rebuilds the node from its durable state alone.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence

from raftka.common.ids import Index, NodeId
from raftka.controller.quorum.ready_processor import ReadyProcessor
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.messages import Message
from raftka.controller.raft.node import RaftNode
from raftka.controller.raft.ready import Ready

from .invariants import NodeView
from .state_machine import ListStateMachine
from .storage import SimStorage


class CrashPoint(enum.Enum):
    BEFORE_SYNC = "before_sync"
    """Writes buffered, not fsynced: a random prefix of them survives."""
    AFTER_SYNC = "after_sync"
    """Durable, but no message of the Ready was sent."""
    MID_SEND = "mid_send"
    """Durable, some of the messages sent."""
    BEFORE_APPLY = "before_apply"
    """Durable and sent, committed entries not applied."""


class _Crashed(Exception):
    """Raised by the outbox to stop a Ready halfway through sending."""


class SimOutbox:
    """A ``MessageOutbox`` into the simulated network; can be told to crash its node after
    sending some of a Ready's messages."""

    __slots__ = ("crash_after", "transmit")

    def __init__(self, transmit: Callable[[Message], None]) -> None:
        self.transmit = transmit
        self.crash_after: int | None = None

    def send(self, messages: list[Message]) -> None:
        limit, self.crash_after = self.crash_after, None
        for i, m in enumerate(messages):
            if i == limit:
                raise _Crashed
            self.transmit(m)
        if limit is not None:
            raise _Crashed


class SimNode:
    def __init__(
        self,
        node_id: NodeId,
        voters: Sequence[NodeId],
        config: RaftConfig,
        seed: int,
        snapshot_every: int | None,
        transmit: Callable[[Message], None],
    ) -> None:
        self.id = node_id
        self.voters = tuple(voters)
        self.config = config
        self.snapshot_every = snapshot_every
        self.storage = SimStorage()
        self.outbox = SimOutbox(transmit)
        self.incarnation = 0
        self._seed = seed
        self.processor: ReadyProcessor | None = None
        self.sm = ListStateMachine()
        self.crash_at: CrashPoint | None = None
        """Armed crash: strikes during the next Ready it applies to."""
        self.pending: Ready | None = None
        """A Ready whose fsync is under way (when the cluster models fsync latency)."""
        self.lost_writes = 0
        self.start()

    @property
    def raft(self) -> RaftNode | None:
        """The running core (None while crashed)."""
        p = self.processor
        return p.node if p is not None else None

    @property
    def alive(self) -> bool:
        return self.processor is not None

    @property
    def applied_index(self) -> Index:
        p = self.processor
        return p.applied_index if p is not None else Index(0)

    def start(self) -> None:
        if self.processor is not None:
            raise RuntimeError(f"node {self.id} is already running")
        self.incarnation += 1
        persisted = self.storage.load()
        self.sm = ListStateMachine(lambda: self.applied_index)
        processor = ReadyProcessor(
            node_id=self.id,
            voters=self.voters,
            raft_config=self.config,
            storage=self.storage,
            outbox=self.outbox,
            state_machine=self.sm,
            snapshot_due=self._snapshot_due,
        )
        rng = random.Random(self._seed * 1_000_003 + self.id * 10_007 + self.incarnation)
        processor.open(persisted, rng, incarnation=self.incarnation)
        self.processor = processor
        self.crash_at = None

    def _snapshot_due(self) -> bool:
        every = self.snapshot_every
        return every is not None and self.applied_index - self.storage.snapshot_index >= every

    def crash(self, rng: random.Random) -> None:
        self.lost_writes += self.storage.crash(rng)
        self.processor = None
        self.crash_at = None
        self.pending = None
        self.outbox.crash_after = None

    def write(self, rng: random.Random) -> bool:
        """Write the in-flight Ready's durable parts to the (unflushed) buffer. False if a
        crash struck."""
        p = self.processor
        assert p is not None and p.in_flight is not None
        p.write()
        if p.in_flight.must_sync and self.crash_at is CrashPoint.BEFORE_SYNC:
            self.crash(rng)
            return False
        return True

    def finish(self, rng: random.Random) -> bool:
        """fsync, send, apply, advance (and maybe snapshot). False if a crash struck."""
        p = self.processor
        assert p is not None
        rd = p.in_flight
        assert rd is not None
        point = self.crash_at
        p.sync()
        if rd.must_sync and point is CrashPoint.AFTER_SYNC:
            self.crash(rng)
            return False
        if point is CrashPoint.MID_SEND and rd.messages:
            self.outbox.crash_after = rng.randrange(len(rd.messages))
        try:
            p.send()
        except _Crashed:
            self.crash(rng)
            return False
        finally:
            self.outbox.crash_after = None
        if point is CrashPoint.BEFORE_APPLY and (rd.committed or rd.snapshot is not None):
            self.crash(rng)
            return False
        p.apply()
        if p.snapshot_due():
            snap = p.prepare_snapshot()
            if snap is not None:
                p.save_snapshot(snap)
                p.snapshot_saved(snap)
        return True

    def view(self) -> NodeView:
        st = self.storage
        durable_meta = st.snapshot.meta if st.snapshot is not None else None
        raft = self.raft
        if raft is None:
            return NodeView(
                node_id=self.id,
                incarnation=self.incarnation,
                alive=False,
                durable_hard=st.hard_state,
                durable_snapshot=durable_meta,
                durable_entries=st.entries,
            )
        s = raft.status()
        return NodeView(
            node_id=self.id,
            incarnation=self.incarnation,
            alive=True,
            durable_hard=st.hard_state,
            durable_snapshot=durable_meta,
            durable_entries=st.entries,
            term=s.term,
            role=s.role,
            commit=s.commit_index,
            snapshot_index=s.snapshot_index,
            snapshot_term=s.snapshot_term,
            entries=raft.log_entries(),
            sm=self.sm,
            applied=self.applied_index,
        )
