"""Cluster: a whole simulated Raft cluster on a virtual clock, driven by one event queue.

Events are node ticks (every ``TICK`` time units, each node with its own phase), message
deliveries and test actions. After every event the touched node is checked against the
invariants. Everything random comes from generators seeded by ``seed``, so a run replays
exactly.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.errors import LeadershipTransferInProgress, NotLeader
from raftka.controller.raft.messages import AppendEntriesResponse, Message
from raftka.controller.raft.node import RaftNode
from raftka.controller.raft.ready import Ready
from raftka.controller.raft.status import Role
from raftka.controller.raft.types import EntryKind

from .invariants import InvariantChecker
from .network import SimNetwork
from .node import CrashPoint, SimNode

TICK = 10
"""Simulator time units per Raft tick (message delays are a few units by default)."""

SIM_CONFIG = RaftConfig(
    election_timeout_ticks=10,
    heartbeat_ticks=1,
    max_inflight=4,
    max_append_bytes=96,
    snapshot_chunk_bytes=64,
)
"""Small windows, messages and chunks, so pipelining, batching and chunking all get exercised."""


@dataclass(slots=True)
class Proposal:
    index: Index
    term: Term
    data: bytes
    at: int = field(default=0)


@dataclass(slots=True)
class Stats:
    append_rejects: int = 0
    """AppendEntriesResponse rejections delivered (back-off round trips)."""
    rejected_proposals: int = 0
    crashes: int = 0
    restarts: int = 0


class Cluster:
    def __init__(
        self,
        size: int = 3,
        *,
        seed: int = 0,
        config: RaftConfig = SIM_CONFIG,
        snapshot_every: int | None = None,
        fsync_delay: tuple[int, int] | None = None,
    ) -> None:
        self.seed = seed
        self.fsync_delay = fsync_delay
        """(min, max) time units an fsync takes; None: instantaneous."""
        self.config = config
        self.rng = random.Random(seed)
        self.net = SimNetwork(random.Random(seed * 31 + 7))
        self._crash_rng = random.Random(seed * 37 + 11)
        self.now = 0
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0
        self.ids = tuple(NodeId(i) for i in range(1, size + 1))
        self.nodes = {
            i: SimNode(i, self.ids, config, seed, snapshot_every, self._transmit) for i in self.ids
        }
        self.checker = InvariantChecker()
        self.proposals: list[Proposal] = []
        self.stats = Stats()
        self.events = 0
        self._counter = 0
        self.on_deliver: list[Callable[[Message], None]] = []
        for n in self.nodes.values():
            self._start_ticking(n, self.rng.randrange(TICK))

    # -- event loop ----------------------------------------------------------------------------

    def at(self, when: int, action: Callable[[], None]) -> None:
        """Run ``action`` at virtual time ``when`` (units)."""
        self._seq += 1
        heapq.heappush(self._queue, (max(when, self.now), self._seq, action))

    def _run_one(self) -> None:
        when, _, action = heapq.heappop(self._queue)
        self.now = when
        self.events += 1
        action()

    def run_ticks(self, ticks: int) -> None:
        end = self.now + ticks * TICK
        q = self._queue
        while q and q[0][0] <= end:
            self._run_one()
        self.now = end

    def run_until(self, cond: Callable[[], bool], max_ticks: int) -> bool:
        """Run until ``cond()`` holds (checked after every event); False on timeout."""
        if cond():
            return True
        end = self.now + max_ticks * TICK
        q = self._queue
        while q and q[0][0] <= end:
            self._run_one()
            if cond():
                return True
        self.now = end
        return cond()

    # -- nodes ---------------------------------------------------------------------------------

    def _start_ticking(self, node: SimNode, phase: int) -> None:
        incarnation = node.incarnation

        def tick() -> None:
            raft = node.raft
            if raft is None or node.incarnation != incarnation:
                return
            raft.tick()
            if self._settle(node, "tick"):
                self.at(self.now + TICK, tick)

        self.at(self.now + phase, tick)

    def _settle(self, node: SimNode, what: str) -> bool:
        """Run the node's runtime loop, then check invariants. False if it crashed."""
        ok = self._drain(node)
        if not ok:
            self.stats.crashes += 1
            what += " (crashed at an armed point)"
        self.checker.observe(node.view(), f"{what} at t={self.now}")
        return ok

    def _drain(self, node: SimNode) -> bool:
        rng = self._crash_rng
        while (
            (p := node.processor) is not None
            and node.pending is None
            and (rd := p.take()) is not None
        ):
            if not node.write(rng):
                return False
            if self.fsync_delay is not None and rd.must_sync:
                node.pending = rd
                lo, hi = self.fsync_delay
                self.at(
                    self.now + self.rng.randint(lo, hi),
                    partial(self._fsync_done, node, node.incarnation, rd),
                )
                return True
            if not node.finish(rng):
                return False
        return True

    def _fsync_done(self, node: SimNode, incarnation: int, rd: Ready) -> None:
        if node.incarnation != incarnation or node.pending is not rd:
            return  # crashed meanwhile: the buffered writes are gone
        node.pending = None
        ok = node.finish(self._crash_rng) and self._drain(node)
        what = "fsync done"
        if not ok:
            self.stats.crashes += 1
            what += " (crashed at an armed point)"
        self.checker.observe(node.view(), f"{what} at t={self.now}")

    def _transmit(self, m: Message) -> None:
        st = self.nodes[m.src].storage
        durable_meta = st.snapshot.meta if st.snapshot is not None else None
        self.checker.observe_send(m, st.hard_state, durable_meta, st.entries, f"at t={self.now}")
        for when in self.net.fates(m, self.now):
            self.at(when, partial(self._deliver, m))

    def _deliver(self, m: Message) -> None:
        node = self.nodes[m.dst]
        raft = node.raft
        if raft is None or not self.net.connected(m.src, m.dst):
            self.net.dropped += 1
            return
        self.net.delivered[type(m).__name__] += 1
        if isinstance(m, AppendEntriesResponse) and not m.success:
            self.stats.append_rejects += 1
        for hook in self.on_deliver:
            hook(m)
        raft.step(m)
        self._settle(node, f"{type(m).__name__} from {m.src}")

    def crash(self, node_id: NodeId) -> None:
        node = self.nodes[node_id]
        if not node.alive:
            return
        node.crash(self._crash_rng)
        self.stats.crashes += 1
        self.checker.observe(node.view(), f"crash at t={self.now}")

    def wipe_log(self, node_id: NodeId) -> None:
        """Crash ``node_id`` and delete its log and snapshot, keeping its term and vote (what
        an operator does to a voter whose log is damaged); ``restart`` brings it back."""
        self.crash(node_id)
        storage = self.nodes[node_id].storage
        storage.entries = []
        storage.snapshot = None
        self.checker.log_wiped(node_id)

    def arm_crash(self, node_id: NodeId, point: CrashPoint) -> None:
        """Crash ``node_id`` at ``point`` while it handles its next Ready."""
        node = self.nodes[node_id]
        if node.alive:
            node.crash_at = point

    def restart(self, node_id: NodeId) -> None:
        node = self.nodes[node_id]
        if node.alive:
            return
        node.start()
        self.stats.restarts += 1
        self.checker.observe(node.view(), f"restart at t={self.now}")
        self._start_ticking(node, self.rng.randrange(1, TICK + 1))

    def raft(self, node_id: NodeId) -> RaftNode:
        """The running RaftNode of ``node_id`` (which must be up)."""
        raft = self.nodes[node_id].raft
        assert raft is not None, f"node {node_id} is down"
        return raft

    def alive(self) -> list[NodeId]:
        return [i for i, n in self.nodes.items() if n.alive]

    # -- client side ---------------------------------------------------------------------------

    def next_data(self) -> bytes:
        self._counter += 1
        return f"s{self.seed}-p{self._counter}".encode()

    def propose(self, data: bytes | None = None, node_id: NodeId | None = None) -> Proposal | None:
        """Propose on ``node_id`` (default: the current leader). None when refused."""
        target = node_id if node_id is not None else self.leader()
        if data is None:
            data = self.next_data()
        raft = self.nodes[target].raft if target is not None else None
        if target is None or raft is None:
            self.stats.rejected_proposals += 1
            return None
        try:
            index, term = raft.propose(data)
        except (NotLeader, LeadershipTransferInProgress):
            self.stats.rejected_proposals += 1
            return None
        p = Proposal(index, term, data, self.now)
        self.proposals.append(p)
        self._settle(self.nodes[target], f"propose {index}@{term}")
        return p

    def propose_many(self, count: int, node_id: NodeId | None = None) -> list[Proposal]:
        """Propose ``count`` entries back to back on one node, before its runtime loop runs
        (as concurrent clients would), so they share messages."""
        target = node_id if node_id is not None else self.leader()
        raft = self.nodes[target].raft if target is not None else None
        if target is None or raft is None:
            return []
        out = []
        for _ in range(count):
            data = self.next_data()
            index, term = raft.propose(data)
            out.append(Proposal(index, term, data, self.now))
        self.proposals.extend(out)
        self._settle(self.nodes[target], f"propose_many({count})")
        return out

    def transfer_leadership(self, target: NodeId | None = None) -> NodeId | None:
        """Ask the current leader to hand over; returns that leader (None if there is none)."""
        lid = self.leader()
        raft = self.nodes[lid].raft if lid is not None else None
        if lid is None or raft is None:
            return None
        raft.transfer_leadership(target)
        self._settle(self.nodes[lid], f"transfer_leadership({target})")
        return lid

    def must_propose(self, node_id: NodeId | None = None) -> Proposal:
        p = self.propose(node_id=node_id)
        assert p is not None, "proposal refused"
        return p

    def is_committed(self, p: Proposal) -> bool:
        return self.checker.committed.get(p.index) == (p.term, EntryKind.NORMAL, p.data)

    def is_resolved(self, p: Proposal) -> bool:
        """Committed, or its index committed with another entry (the proposal was lost).

        Every applied NORMAL entry reaches the committed record, so an index some node applied
        that the record lacks held a NOOP."""
        if p.index in self.checker.committed:
            return True
        return any(n.alive and n.applied_index >= p.index for n in self.nodes.values())

    # -- observations --------------------------------------------------------------------------

    def leader(self) -> NodeId | None:
        """The live leader with the highest term, if any."""
        best: tuple[Term, NodeId] | None = None
        for i, n in self.nodes.items():
            r = n.raft
            if r is not None and r.role is Role.LEADER and (best is None or r.term > best[0]):
                best = (r.term, i)
        return best[1] if best is not None else None

    def leaders(self) -> list[NodeId]:
        return [
            i for i, n in self.nodes.items() if n.raft is not None and n.raft.role is Role.LEADER
        ]

    def terms(self) -> dict[NodeId, Term]:
        return {i: n.raft.term for i, n in self.nodes.items() if n.raft is not None}

    def max_term(self) -> Term:
        return max(self.terms().values(), default=Term(0))

    def stable_leader(self) -> NodeId | None:
        """The highest-term live leader, if it can reach a majority and every live node it can
        reach follows it in its term."""
        lid = self.leader()
        if lid is None:
            return None
        lead = self.nodes[lid].raft
        assert lead is not None
        reach = 1
        for i in self.alive():
            r = self.nodes[i].raft
            assert r is not None
            if i == lid or not (self.net.connected(lid, i) and self.net.connected(i, lid)):
                continue
            if r.term != lead.term or r.leader_id != lid:
                return None
            reach += 1
        return lid if reach > len(self.ids) // 2 else None

    def converged(self, nodes: Iterable[NodeId] | None = None) -> bool:
        """A leader exists and the given (default: all live) nodes applied its whole commit."""
        lid = self.leader()
        if lid is None:
            return False
        lead = self.nodes[lid].raft
        assert lead is not None
        target = lead.commit_index
        for i in self.alive() if nodes is None else nodes:
            n = self.nodes[i]
            if n.raft is None or n.raft.commit_index != target or n.applied_index != target:
                return False
        return True

    def wait_leader(self, max_ticks: int = 100) -> NodeId:
        assert self.run_until(lambda: self.stable_leader() is not None, max_ticks), (
            f"no stable leader within {max_ticks} ticks (terms {self.terms()})"
        )
        lid = self.stable_leader()
        assert lid is not None
        return lid

    def wait_committed(self, p: Proposal, max_ticks: int = 100) -> None:
        assert self.run_until(lambda: self.is_committed(p), max_ticks), (
            f"proposal {p.index}@{p.term} not committed within {max_ticks} ticks"
        )

    def applied_data(self, node_id: NodeId) -> list[bytes]:
        return [it.data for it in self.nodes[node_id].sm.items]
