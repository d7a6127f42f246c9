"""LeaderState: everything a node does only while it leads one term.

It owns the per-follower Progress, builds AppendEntries / InstallSnapshot / TimeoutNow,
handles their answers (pipelining, fast back-off, snapshot chunking), advances the commit
index by the Figure 8 rule, runs check-quorum and drives a leadership transfer. A new
LeaderState is made for every term a node leads, so nothing leaks across terms.
"""

from __future__ import annotations

from collections.abc import Callable

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.log import RaftLog
from raftka.controller.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    TimeoutNow,
)
from raftka.controller.raft.progress import Progress, ReplicaState
from raftka.controller.raft.quorum import VoterSet
from raftka.controller.raft.status import ProgressStatus
from raftka.controller.raft.types import Entry

_STALLED_HEARTBEATS = 2
"""Heartbeat intervals without progress after which in-flight appends count as lost."""


class LeaderState:
    __slots__ = (
        "_config",
        "_id",
        "_log",
        "_send",
        "_term",
        "_voters",
        "broadcast_pending",
        "progress",
        "quorum_elapsed",
        "transfer_elapsed",
        "transfer_target",
    )

    def __init__(
        self,
        node_id: NodeId,
        term: Term,
        voters: VoterSet,
        config: RaftConfig,
        log: RaftLog,
        send: Callable[[Message], None],
    ) -> None:
        self._id = node_id
        self._term = term
        self._voters = voters
        self._config = config
        self._log = log
        self._send = send
        nxt = Index(log.last_index + 1)
        self.progress: dict[NodeId, Progress] = {
            v: Progress(v, nxt) for v in voters if v != node_id
        }
        self.broadcast_pending = False
        """Entries were proposed since the last broadcast (sent lazily, batched per Ready)."""
        self.quorum_elapsed = 0
        self.transfer_target: NodeId | None = None
        self.transfer_elapsed = 0

    # -- commit --------------------------------------------------------------------------------

    def maybe_commit(self) -> bool:
        """Advance the commit index to what a majority durably holds, if that entry is of this
        term (Figure 8: earlier-term entries commit only indirectly)."""
        match = {v: pr.match for v, pr in self.progress.items()}
        match[self._id] = self._log.stable_to
        index = self._voters.committed_index(match)
        if index <= self._log.commit or self._log.term_at(index) != self._term:
            return False
        return self._log.commit_to(index)

    # -- sending -------------------------------------------------------------------------------

    def broadcast(self) -> None:
        """Send new entries to every follower that can take them."""
        self.broadcast_pending = False
        for pr in self.progress.values():
            self.send_append(pr)

    def send_append(self, pr: Progress) -> None:
        """Send ``pr`` as many entry-carrying messages as its state and window allow."""
        log, cfg = self._log, self._config
        while pr.can_send(cfg.max_inflight):
            if pr.next <= log.snapshot_index:
                self._start_snapshot(pr)
                return
            if pr.state is ReplicaState.REPLICATE and pr.next > log.last_index:
                return  # nothing new; heartbeats keep the follower alive
            entries = (
                log.entries_for_send(pr.next, cfg.max_append_bytes)
                if pr.next <= log.last_index
                else ()
            )
            self._send_append_at(pr, Index(pr.next - 1), entries)
            pr.sent_append(entries[-1].index if entries else Index(pr.next - 1))
            if pr.state is ReplicaState.PROBE:
                return

    def _send_append_at(self, pr: Progress, prev: Index, entries: tuple[Entry, ...]) -> None:
        prev_term = self._log.term_at(prev)
        assert prev_term is not None, (
            f"term of {prev} unknown (snapshot at {self._log.snapshot_index})"
        )
        self._send(
            AppendEntries(
                src=self._id,
                dst=pr.node_id,
                term=self._term,
                prev_index=prev,
                prev_term=prev_term,
                entries=entries,
                leader_commit=self._log.commit,
            )
        )

    def heartbeat(self) -> None:
        """Once per heartbeat interval: one message per follower, whatever its state."""
        log = self._log
        for pr in self.progress.values():
            if pr.state is ReplicaState.PROBE:
                pr.probe_sent = False
                self.send_append(pr)
            elif pr.state is ReplicaState.REPLICATE:
                self._replicate_heartbeat(pr)
            else:
                self._snapshot_heartbeat(pr)
            if self.transfer_target == pr.node_id and pr.match == log.last_index:
                self._send(TimeoutNow(src=self._id, dst=pr.node_id, term=self._term))

    def _replicate_heartbeat(self, pr: Progress) -> None:
        """Heartbeat at the match index, which the follower holds, so that it is never refused
        (probing at ``next - 1`` could overtake the appends in flight and be refused). If
        entries are in flight but no answer moved ``match`` for a few heartbeats, they (or
        their answers) were lost: probe again from ``match + 1``."""
        log = self._log
        if pr.match + 1 < pr.next:
            pr.stalled_heartbeats += 1
            if pr.stalled_heartbeats > _STALLED_HEARTBEATS:
                pr.become_probe(Index(pr.match + 1))
                self.send_append(pr)
                return
        # If ``match`` was compacted meanwhile, heartbeat at the snapshot index: a follower
        # lacking it refuses, and the back-off then leads to a snapshot.
        self._send_append_at(pr, max(pr.match, log.snapshot_index), ())

    # -- answers -------------------------------------------------------------------------------

    def on_append_response(self, m: AppendEntriesResponse) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return
        if m.incarnation != pr.incarnation:
            if m.incarnation < pr.incarnation:
                return  # from an earlier run of the follower: says nothing about it now
            restarted = pr.incarnation != 0
            pr.incarnation = m.incarnation
            if restarted:
                # A new run may hold less than the old one acknowledged: forget its match
                # (so it counts towards no commit it may no longer hold) and probe from its
                # real end. This answer, from the new run, is then taken as it is.
                pr.forget(Index(min(m.last_index + 1, self._log.last_index + 1)))
                if not m.success:
                    pr.ticks_since_contact = 0
                    self.send_append(pr)
                    return
        pr.ticks_since_contact = 0
        if m.success:
            self._on_append_success(pr, m)
        else:
            self._on_append_reject(pr, m)

    def _on_append_success(self, pr: Progress, m: AppendEntriesResponse) -> None:
        if m.match_index > self._log.last_index:
            return  # cannot be: the follower claims entries this leader never had
        grew = pr.update_match(m.match_index)
        if pr.state is ReplicaState.PROBE:
            pr.become_replicate()
        elif pr.state is ReplicaState.SNAPSHOT:
            assert pr.snapshot is not None
            if pr.match < pr.snapshot.meta.index:
                return
            pr.become_replicate()
        if grew:
            self.maybe_commit()  # followers learn a new commit index from the next message
        self._maybe_send_timeout_now(pr)
        self.send_append(pr)

    def _on_append_reject(self, pr: Progress, m: AppendEntriesResponse) -> None:
        if m.prev_index <= pr.match:
            return  # stale: the follower already acknowledged that prefix
        if pr.state is ReplicaState.PROBE and m.prev_index != pr.next - 1:
            return  # stale: not the probe in flight
        if pr.state is ReplicaState.SNAPSHOT:
            return
        pr.become_probe(self._next_after_reject(m))
        self.send_append(pr)

    def _next_after_reject(self, m: AppendEntriesResponse) -> Index:
        """Fast back-off: skip a whole conflicting term per round trip."""
        nxt = m.conflict_index
        if m.conflict_term > 0:
            mine = self._log.last_index_of_term(m.conflict_term, m.prev_index)
            if mine is not None:
                nxt = Index(mine + 1)
        return Index(max(1, min(nxt, m.prev_index)))

    def on_snapshot_response(self, m: InstallSnapshotResponse) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return
        pr.ticks_since_contact = 0
        if m.done:
            if m.snapshot_index <= self._log.last_index:
                pr.update_match(m.snapshot_index)
            if pr.state is ReplicaState.SNAPSHOT:
                assert pr.snapshot is not None
                if pr.match >= pr.snapshot.meta.index:
                    pr.become_probe(Index(pr.match + 1))
                    self.send_append(pr)
            self.maybe_commit()
            return
        snap = pr.snapshot
        if pr.state is not ReplicaState.SNAPSHOT or snap is None:
            return
        if m.snapshot_index != snap.meta.index or not 0 <= m.next_offset <= len(snap.data):
            return
        if m.next_offset == pr.snapshot_offset:
            return  # the chunk in flight is the one wanted; resent only when it goes idle
        pr.snapshot_offset = m.next_offset
        self._send_chunk(pr)

    # -- snapshots -----------------------------------------------------------------------------

    def _start_snapshot(self, pr: Progress) -> None:
        snap = self._log.snapshot
        assert snap is not None, "entries are compacted yet there is no snapshot"
        pr.become_snapshot(snap)
        self._send_chunk(pr)

    def _send_chunk(self, pr: Progress) -> None:
        snap = pr.snapshot
        assert snap is not None
        start = pr.snapshot_offset
        chunk = snap.data[start : start + self._config.snapshot_chunk_bytes]
        self._send(
            InstallSnapshot(
                src=self._id,
                dst=pr.node_id,
                term=self._term,
                meta=snap.meta,
                offset=start,
                data=chunk,
                total_size=len(snap.data),
                done=start + len(chunk) >= len(snap.data),
            )
        )
        pr.snapshot_idle_ticks = 0

    def _snapshot_heartbeat(self, pr: Progress) -> None:
        """While a snapshot streams, chunks keep the follower alive; resend one gone idle."""
        cfg = self._config
        if pr.snapshot_idle_ticks >= max(2 * cfg.heartbeat_ticks, cfg.election_timeout_ticks // 2):
            self._send_chunk(pr)  # the chunk or its answer was lost

    # -- time ----------------------------------------------------------------------------------

    def tick(self) -> bool:
        """One tick passed. Returns False when check-quorum says this leader must step down."""
        for pr in self.progress.values():
            pr.ticks_since_contact += 1
            pr.snapshot_idle_ticks += 1
        timeout = self._config.election_timeout_ticks
        if self.transfer_target is not None:
            self.transfer_elapsed += 1
            if self.transfer_elapsed >= timeout:
                self.transfer_target = None  # abort: the target did not take over in time
        self.quorum_elapsed += 1
        if self.quorum_elapsed >= timeout:
            self.quorum_elapsed = 0
            if self._config.check_quorum and not self.quorum_active():
                return False
        return True

    def quorum_active(self) -> bool:
        """Did a majority (this leader included) answer within the last election timeout?"""
        timeout = self._config.election_timeout_ticks
        active = [v for v, pr in self.progress.items() if pr.ticks_since_contact < timeout]
        active.append(self._id)
        return self._voters.has_quorum(active)

    # -- leadership transfer -------------------------------------------------------------------

    def start_transfer(self, target: NodeId) -> None:
        self.transfer_target = target
        self.transfer_elapsed = 0
        pr = self.progress[target]
        if not self._maybe_send_timeout_now(pr):
            self.send_append(pr)

    def _maybe_send_timeout_now(self, pr: Progress) -> bool:
        if self.transfer_target != pr.node_id or pr.match != self._log.last_index:
            return False
        self._send(TimeoutNow(src=self._id, dst=pr.node_id, term=self._term))
        return True

    def most_caught_up(self) -> NodeId | None:
        """The follower with the highest match index (lowest id on ties)."""
        best: Progress | None = None
        for v in sorted(self.progress):
            pr = self.progress[v]
            if best is None or pr.match > best.match:
                best = pr
        return best.node_id if best is not None else None

    def status(self) -> tuple[ProgressStatus, ...]:
        return tuple(
            ProgressStatus(
                node_id=v,
                match_index=pr.match,
                next_index=pr.next,
                state=pr.state,
                ticks_since_contact=pr.ticks_since_contact,
            )
            for v, pr in sorted(self.progress.items())
        )
