"""SimNode: the runtime loop around one RaftNode, as a real runtime would run it.

For each Ready: write hard state / snapshot / truncation / entries (``persist``), then fsync,
send the messages, restore the snapshot into the state machine and apply committed entries,
advance, and take a state-machine snapshot (then compact) once enough was applied since the
last one (``finish``). The cluster may let virtual time pass between the two halves (fsync
latency), during which the node keeps receiving ticks and messages, as under an asyncio
runtime that fsyncs off the event loop. A crash can
be armed to strike at one point of that sequence; it keeps only a random prefix of the
unflushed writes. A restart rebuilds the node from its durable state alone.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence

from raftka.common.ids import NodeId
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.messages import Message
from raftka.controller.raft.node import RaftNode
from raftka.controller.raft.ready import Ready

from .invariants import NodeView
from .state_machine import ListStateMachine
from .storage import Append, ReplaceWithSnapshot, SetHardState, SimStorage, TruncateFrom


class CrashPoint(enum.Enum):
    BEFORE_SYNC = "before_sync"
    """Writes buffered, not fsynced: a random prefix of them survives."""
    AFTER_SYNC = "after_sync"
    """Durable, but no message of the Ready was sent."""
    MID_SEND = "mid_send"
    """Durable, some of the messages sent."""
    BEFORE_APPLY = "before_apply"
    """Durable and sent, committed entries not applied."""


class SimNode:
    def __init__(
        self,
        node_id: NodeId,
        voters: Sequence[NodeId],
        config: RaftConfig,
        seed: int,
        snapshot_every: int | None,
    ) -> None:
        self.id = node_id
        self.voters = tuple(voters)
        self.config = config
        self.snapshot_every = snapshot_every
        self.storage = SimStorage()
        self.incarnation = 0
        self._seed = seed
        self.raft: RaftNode | None = None
        self.sm = ListStateMachine()
        self.crash_at: CrashPoint | None = None
        """Armed crash: strikes during the next Ready it applies to."""
        self.pending: Ready | None = None
        """A Ready whose fsync is under way (when the cluster models fsync latency)."""
        self.lost_writes = 0
        self.start()

    @property
    def alive(self) -> bool:
        return self.raft is not None

    def start(self) -> None:
        if self.raft is not None:
            raise RuntimeError(f"node {self.id} is already running")
        self.incarnation += 1
        persisted = self.storage.load()
        self.sm = ListStateMachine()
        if persisted.snapshot is not None:
            self.sm.restore(persisted.snapshot)
        rng = random.Random(self._seed * 1_000_003 + self.id * 10_007 + self.incarnation)
        self.raft = RaftNode(self.id, self.voters, self.config, persisted, rng)
        self.crash_at = None

    def crash(self, rng: random.Random) -> None:
        self.lost_writes += self.storage.crash(rng)
        self.raft = None
        self.crash_at = None
        self.pending = None

    def persist(self, rd: Ready, rng: random.Random) -> bool:
        """Write a Ready's durable parts to the (unflushed) buffer. False if a crash struck."""
        if not rd.must_sync:
            return True
        st = self.storage
        if rd.hard_state is not None:
            st.write(SetHardState(rd.hard_state))
        if rd.snapshot is not None:
            st.write(ReplaceWithSnapshot(rd.snapshot))
        if rd.truncate_from is not None:
            st.write(TruncateFrom(rd.truncate_from))
        for e in rd.entries:
            st.write(Append(e))
        if self.crash_at is CrashPoint.BEFORE_SYNC:
            self.crash(rng)
            return False
        return True

    def finish(self, rd: Ready, send: Callable[[Message], None], rng: random.Random) -> bool:
        """fsync, send, apply, advance (and maybe snapshot). False if a crash struck."""
        raft = self.raft
        assert raft is not None
        point = self.crash_at
        if rd.must_sync:
            self.storage.flush()
            if point is CrashPoint.AFTER_SYNC:
                self.crash(rng)
                return False
        msgs = rd.messages
        if point is CrashPoint.MID_SEND and msgs:
            for m in msgs[: rng.randrange(len(msgs))]:
                send(m)
            self.crash(rng)
            return False
        for m in msgs:
            send(m)
        if point is CrashPoint.BEFORE_APPLY and (rd.committed or rd.snapshot is not None):
            self.crash(rng)
            return False
        if rd.snapshot is not None:
            self.sm.restore(rd.snapshot)
        for e in rd.committed:
            self.sm.apply(e)
        raft.advance(rd)
        self._maybe_snapshot(raft)
        return True

    def _maybe_snapshot(self, raft: RaftNode) -> None:
        every = self.snapshot_every
        if every is None or self.sm.applied_index - self.storage.snapshot_index < every:
            return
        snap = self.sm.take_snapshot()
        self.storage.save_snapshot(snap)
        raft.compact(snap)

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
        )
