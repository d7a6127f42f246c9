"""Drives one sans-I/O Raft node with a real clock, disk and network, on one asyncio loop.

Each Ready is handled by the shared ``ReadyProcessor`` (ready_processor.py), in the order Raft
needs: persist (write and fsync, off the event loop), then send, then apply committed entries
to the state machine. This module only adds the asyncio around it: a tick timer, a wake-up
event, threads for blocking disk calls, and futures for proposals. A proposal's future
resolves once its entry commits and is applied, or fails if leadership is lost first.

The runtime never dies silently: if its tick or Ready loop fails (a committed entry that the
state machine cannot apply, a disk error), it logs ``raft_runtime_failed`` at once and calls
``on_fatal``, which by default ends the process with exit status 1 so that a supervisor
restarts it. Serving on with a dead Raft loop (answering DescribeQuorum, never committing)
would only hide the failure.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections.abc import Callable, Sequence

import structlog

from raftka.common.ids import Index, NodeId
from raftka.common.tasks import cancel_and_wait
from raftka.controller.quorum.ports import PeerTransport, RaftLogStore
from raftka.controller.quorum.ready_processor import (
    LeaderListener,
    LeadershipLost,
    ReadyProcessor,
    StateMachine,
)
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.errors import NotLeader
from raftka.controller.raft.messages import Message
from raftka.controller.raft.node import RaftNode
from raftka.controller.raft.status import Status

log = structlog.get_logger(__name__)

FATAL_EXIT_STATUS = 1


def exit_process(error: BaseException) -> None:
    """The default ``on_fatal``: end the process at once (exit status 1). Nothing is left to
    flush: everything Raft promised is already fsynced."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(FATAL_EXIT_STATUS)


class QuorumRuntime:
    def __init__(
        self,
        *,
        node_id: NodeId,
        voters: Sequence[NodeId],
        raft_config: RaftConfig,
        storage: RaftLogStore,
        transport: PeerTransport,
        state_machine: StateMachine,
        tick_s: float,
        snapshot_after_bytes: int,
        rng: random.Random | None = None,
        on_fatal: Callable[[BaseException], None] = exit_process,
        incarnation: int | None = None,
    ) -> None:
        """``incarnation`` (default: the start time in nanoseconds) identifies this run to the
        leader, which resets what it knows of this node when it grows."""
        self.node_id = node_id
        self._on_fatal = on_fatal
        self.incarnation = incarnation if incarnation is not None else time.time_ns()
        self.failure: BaseException | None = None
        """What stopped the runtime's loops, if anything did."""
        self._storage = storage
        self._transport = transport
        self._tick_s = tick_s
        self.ticks = 0
        self.ticks_dropped = 0
        """Ticks skipped because the event loop was stalled past them."""
        self._rng = rng or random.Random()
        self._processor = ReadyProcessor(
            node_id=node_id,
            voters=voters,
            raft_config=raft_config,
            storage=storage,
            outbox=transport,
            state_machine=state_machine,
            snapshot_due=lambda: storage.bytes_since_snapshot >= snapshot_after_bytes,
        )
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.last_contact: dict[NodeId, float] = {}

    # ---- lifecycle ----

    async def start(self) -> None:
        persisted = await asyncio.to_thread(self._storage.load)
        self._processor.open(persisted, self._rng, incarnation=self.incarnation)
        self._transport.start()
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name="raft-tick"),
            asyncio.create_task(self._ready_loop(), name="raft-ready"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._loop_ended)
        self._wake.set()

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None or self.failure is not None:
            return
        self.failure = error
        log.critical(
            "raft_runtime_failed",
            node_id=self.node_id,
            loop=task.get_name(),
            error=f"{type(error).__name__}: {error}",
            action="the controller stops (exit status 1); a supervisor restarts it",
            exc_info=error,
        )
        self._processor.fail_pending(None)
        self._on_fatal(error)

    async def stop(self) -> None:
        # A loop that already failed was reported by _loop_ended; do not raise it again here.
        await cancel_and_wait([t for t in self._tasks if not t.done()])
        self._processor.fail_pending(None)
        await self._transport.close()
        await asyncio.to_thread(self._storage.close)

    # ---- inputs ----

    @property
    def node(self) -> RaftNode:
        return self._processor.node

    @property
    def processor(self) -> ReadyProcessor:
        """The shared Ready handling this runtime drives."""
        return self._processor

    def deliver(self, msg: Message) -> None:
        self.node.step(msg)
        self._wake.set()

    def submit(self, data: bytes) -> tuple[Index, asyncio.Future[Index]]:
        """Propose an entry. Returns at once with the entry's index and a future that resolves
        (to the same index) once it is committed and applied, or fails with LeadershipLost
        (outcome unknown). Raises NotLeader / LeadershipTransferInProgress synchronously."""
        index, term = self.node.propose(data)
        future: asyncio.Future[Index] = asyncio.get_running_loop().create_future()
        self._processor.track(index, term, future)
        self._wake.set()
        return index, future

    def transfer_leadership(self, target: NodeId | None) -> None:
        self.node.transfer_leadership(target)
        self._wake.set()

    def add_leader_listener(self, listener: LeaderListener) -> None:
        self._processor.leader_listeners.append(listener)

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Called after each batch of committed entries is applied."""
        self._processor.commit_listeners.append(listener)

    # ---- queries ----

    def status(self) -> Status:
        return self.node.status()

    @property
    def leader_id(self) -> NodeId | None:
        return self._processor.leader_id

    @property
    def is_ready_leader(self) -> bool:
        """Leader, with every entry of earlier terms applied (safe to serve writes)."""
        return self._processor.is_leader_ready

    @property
    def applied_index(self) -> Index:
        return self._processor.applied_index

    # ---- loops ----

    async def _tick_loop(self) -> None:
        """One ``node.tick()`` every ``tick_s``. Ticks the event loop missed while it was
        stalled (a starved CPU, a long apply) are dropped, not caught up: a burst of them would
        let the election timer run out before the messages that arrived meanwhile (the
        leader's heartbeats) are read, and every stalled follower would start an election.
        So the timers count time this node could act, as a time.Ticker does for etcd."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += self._tick_s
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            now = loop.time()
            if now - next_tick > self._tick_s:
                self.ticks_dropped += int((now - next_tick) / self._tick_s)
                next_tick = now
            self.ticks += 1
            self.node.tick()
            self._wake.set()

    async def _ready_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._drain()

    async def _drain(self) -> None:
        """Handle every Ready the core has: persist (off the event loop when there is anything
        to fsync), then send and apply, then snapshot if due. A Ready carries a bounded amount
        of committed entries (``RaftConfig.max_committed_bytes_per_ready``) and the loop yields
        after applying one, so a large metadata change is applied in slices between ticks."""
        processor = self._processor
        while (ready := processor.take()) is not None:
            if ready.must_sync:
                await asyncio.to_thread(processor.persist)
            else:
                processor.persist()  # nothing to write: no thread hop
            processor.complete()
            if processor.snapshot_due():
                await self._take_snapshot()
            elif ready.committed:
                await asyncio.sleep(0)  # let ticks and RPCs run between slices

    async def _take_snapshot(self) -> None:
        processor = self._processor
        snapshot = processor.prepare_snapshot()
        if snapshot is None:
            return
        await asyncio.to_thread(processor.save_snapshot, snapshot)
        processor.snapshot_saved(snapshot)


__all__ = [
    "LeaderListener",
    "LeadershipLost",
    "NotLeader",
    "QuorumRuntime",
    "StateMachine",
]
