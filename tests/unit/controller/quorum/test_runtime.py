"""QuorumRuntime, the asyncio driver of the shared ReadyProcessor, on recording fakes: it
elects itself with willing peers, persists off the event loop before anything is sent,
resolves proposals once applied, and snapshots when the log grows."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import pytest

from raftka.common.ids import Term
from raftka.controller.quorum.ready_processor import ApplyFailed
from raftka.controller.quorum.runtime import LeadershipLost, QuorumRuntime
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.errors import InvalidEntryData
from raftka.controller.raft.messages import AppendEntries, Message, RequestVote
from raftka.controller.raft.types import Entry
from tests.conditions import until

from .fakes import RecordingOutbox, RecordingStateMachine, RecordingStore, n

WAIT_S = 10.0


def three_voter_runtime(
    store: RecordingStore,
    transport: RecordingOutbox,
    state_machine: RecordingStateMachine,
    *,
    tick_s: float = 0.002,
    snapshot_after_bytes: int = 1 << 20,
    **options: Any,
) -> QuorumRuntime:
    """Node 1 of voters 1-3, with short timers (5 ticks to an election) and a fixed seed."""
    return QuorumRuntime(
        node_id=n(1),
        voters=[n(1), n(2), n(3)],
        raft_config=RaftConfig(election_timeout_ticks=5, heartbeat_ticks=1),
        storage=store,
        transport=transport,
        state_machine=state_machine,
        tick_s=tick_s,
        snapshot_after_bytes=snapshot_after_bytes,
        rng=random.Random(3),
        **options,
    )


def test_runtime_persists_off_the_loop_before_sending_and_applies_proposals() -> None:
    async def scenario() -> None:
        store = RecordingStore()
        transport = RecordingOutbox(store)
        sm = RecordingStateMachine()
        runtime = three_voter_runtime(store, transport, sm, snapshot_after_bytes=12)
        loop = asyncio.get_running_loop()

        # Peers grant every vote and accept every append; their answers arrive as the gRPC
        # servicer would deliver them, on the loop after the send.
        def answer(reply: Message) -> None:
            loop.call_soon(runtime.deliver, reply)

        transport.answer = answer
        leading = asyncio.Event()
        terms: list[Term | None] = []

        def on_leader(term: Term | None) -> None:
            terms.append(term)
            if term is not None:
                leading.set()

        runtime.add_leader_listener(on_leader)
        await runtime.start()
        try:
            assert transport.started
            await asyncio.wait_for(leading.wait(), WAIT_S)
            assert runtime.is_ready_leader and runtime.leader_id == n(1)
            results = []
            for data in (b"alpha", b"bravo", b"charlie"):
                index, future = runtime.submit(data)
                results.append((index, await asyncio.wait_for(future, WAIT_S)))
            assert all(index == done for index, done in results)
            assert runtime.applied_index == results[-1][0]
        finally:
            await runtime.stop()
        assert transport.closed
        assert [e.data for e in sm.applied] == [b"alpha", b"bravo", b"charlie"]
        assert terms and terms[0] is not None
        # Every message was checked against durable state as it left (RecordingOutbox);
        # the writes, fsyncs and snapshot saves ran on worker threads, sends on the loop.
        loop_thread = threading.get_ident()
        for call in store.calls:
            on_loop = call.thread == loop_thread
            assert on_loop == (call.what == "send"), call
        # The log outgrew snapshot_after_bytes: a snapshot of applied state was saved and the
        # core compacted up to it.
        assert store.snapshots and runtime.status().snapshot_index == store.snapshots[-1].meta.index
        assert any(isinstance(m, AppendEntries) and m.entries for m in transport.sent)

    asyncio.run(scenario())


class FailingStateMachine(RecordingStateMachine):
    def apply(self, entry: Entry) -> None:
        if entry.data == b"boom":
            raise ValueError("cannot apply boom")
        super().apply(entry)


def test_a_failing_apply_is_reported_at_once_and_stops_the_process() -> None:
    async def scenario() -> None:
        store = RecordingStore()
        transport = RecordingOutbox(store)
        fatal: list[BaseException] = []
        stopped = asyncio.Event()

        def on_fatal(error: BaseException) -> None:
            fatal.append(error)
            stopped.set()

        runtime = three_voter_runtime(store, transport, FailingStateMachine(), on_fatal=on_fatal)
        loop = asyncio.get_running_loop()

        def answer(reply: Message) -> None:
            loop.call_soon(runtime.deliver, reply)

        transport.answer = answer
        await runtime.start()
        try:
            await until(lambda: runtime.is_ready_leader, timeout_s=WAIT_S, what="leadership")
            with pytest.raises(InvalidEntryData, match="not UTF-8"):
                runtime.submit(b"\xff\xfe")  # refused before it enters the log
            _, fine = runtime.submit(b"fine")
            await asyncio.wait_for(fine, WAIT_S)
            _, doomed = runtime.submit(b"boom")
            await asyncio.wait_for(stopped.wait(), WAIT_S)
            with pytest.raises(LeadershipLost):
                await doomed
        finally:
            await runtime.stop()
        (error,) = fatal
        assert isinstance(error, ApplyFailed) and runtime.failure is error
        assert "committed entry 3 (term" in str(error) and "cannot apply boom" in str(error)

    asyncio.run(scenario())


def test_ticks_a_stalled_loop_missed_are_dropped_not_caught_up() -> None:
    """A follower whose event loop stalled (a starved CPU) must not count the stall towards
    its election timeout: catching up the missed ticks at once would start an election before
    the leader's heartbeats, waiting in its inbox, were read."""

    async def scenario() -> None:
        store = RecordingStore()
        transport = RecordingOutbox(store)
        runtime = three_voter_runtime(store, transport, RecordingStateMachine(), tick_s=0.01)
        await runtime.start()
        try:
            await until(lambda: runtime.ticks >= 1, timeout_s=WAIT_S, what="the first tick")
            # The fault: a callback holds the loop for 50 ticks' time.
            asyncio.get_running_loop().call_soon(time.sleep, 0.5)
            for _ in range(20):  # far less than one tick (10 ms) of loop iterations
                await asyncio.sleep(0)
            assert runtime.ticks_dropped >= 40
            assert not [m for m in transport.sent if isinstance(m, RequestVote)]
            # Time the node can act in still counts: with no leader it campaigns soon.
            await until(
                lambda: any(isinstance(m, RequestVote) for m in transport.sent),
                timeout_s=WAIT_S,
                what="a campaign once the loop runs",
            )
        finally:
            await runtime.stop()

    asyncio.run(scenario())
