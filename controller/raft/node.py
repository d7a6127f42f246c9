"""RaftNode: the sans-I/O Raft state machine (roles, elections, follower side, Ready cycle).

Inputs are ``tick()``, ``step(message)``, ``propose(data)``, ``transfer_leadership(target)``
and ``compact(snapshot)``; outputs come out of ``ready()`` (see ``ready.py`` for the order in
which the runtime must handle them) and are acknowledged with ``advance(ready)``. Nothing
here does I/O, reads a clock or draws randomness except from the injected ``random.Random``.

Leader-only work (replication, commit, check-quorum, transfer) lives in ``leader.py``; the log
and its persistence bookkeeping in ``log.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.errors import (
    InvalidEntryData,
    LeadershipTransferInProgress,
    NotLeader,
)
from raftka.controller.raft.leader import LeaderState
from raftka.controller.raft.log import RaftLog
from raftka.controller.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from raftka.controller.raft.quorum import VoteResult, VoterSet
from raftka.controller.raft.ready import Ready
from raftka.controller.raft.snapshot_receiver import SnapshotReceiver
from raftka.controller.raft.status import Role, SoftState, Status
from raftka.controller.raft.types import Entry, EntryKind, HardState, PersistedState, Snapshot

_NO_TERM = Term(0)
_NO_INDEX = Index(0)

EntryCheck = Callable[[bytes], str | None]
"""Why the data of a NORMAL entry could not be applied by the state machine, or None."""


def _accept_any(_data: bytes) -> str | None:
    return None


class RaftNode:
    """One Raft participant. Not thread-safe: one caller drives it."""

    def __init__(
        self,
        node_id: NodeId,
        voters: Sequence[NodeId],
        config: RaftConfig,
        persisted: PersistedState,
        rng: random.Random,
        *,
        entry_check: EntryCheck = _accept_any,
        incarnation: int = 0,
    ) -> None:
        """``entry_check`` vets the data of every NORMAL entry before it enters the log: a
        proposal that fails is refused, an AppendEntries carrying one is dropped (so bytes the
        state machine cannot apply never reach a majority, never commit). ``incarnation``
        identifies this start of the process (larger at each start) and is stamped on every
        AppendEntriesResponse."""
        self._voters = VoterSet(voters)
        if node_id not in self._voters:
            raise ValueError(f"node {node_id} is not one of the voters {self._voters.ids}")
        self._id = node_id
        self._config = config
        self._rng = rng
        self._entry_check = entry_check
        self._incarnation = incarnation
        self._log = RaftLog(persisted.snapshot, persisted.entries)
        hs = persisted.hard_state
        if hs.voted_for is not None and hs.voted_for not in self._voters:
            raise ValueError(f"persisted vote for {hs.voted_for}, who is not a voter")
        self._term: Term = hs.term
        self._voted_for: NodeId | None = hs.voted_for
        self._role = Role.FOLLOWER
        self._leader_id: NodeId | None = None
        self._leader: LeaderState | None = None
        self._votes: dict[NodeId, bool] = {}
        self._receiver: SnapshotReceiver | None = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._timeout = self._draw_timeout()
        self._outbox: list[Message] = []
        self._handed_hard = hs
        self._handed_soft = SoftState(Role.FOLLOWER, None, hs.term)
        self._in_flight: Ready | None = None
        self.refused_appends = 0
        """AppendEntries dropped because an entry failed ``entry_check`` (for diagnostics)."""

    # -- read-only views -----------------------------------------------------------------------

    @property
    def node_id(self) -> NodeId:
        return self._id

    @property
    def role(self) -> Role:
        return self._role

    @property
    def term(self) -> Term:
        return self._term

    @property
    def leader_id(self) -> NodeId | None:
        return self._leader_id

    @property
    def commit_index(self) -> Index:
        return self._log.commit

    @property
    def snapshot(self) -> Snapshot | None:
        """The latest snapshot this node holds (taken locally or received)."""
        return self._log.snapshot

    def log_entries(self) -> tuple[Entry, ...]:
        """The entries held in memory, i.e. after the snapshot (for diagnostics and tests)."""
        return self._log.entries_between(self._log.first_index, self._log.last_index)

    def status(self) -> Status:
        log, leader = self._log, self._leader
        return Status(
            node_id=self._id,
            role=self._role,
            term=self._term,
            voted_for=self._voted_for,
            leader_id=self._leader_id,
            commit_index=log.commit,
            last_index=log.last_index,
            applied_index=log.applied,
            snapshot_index=log.snapshot_index,
            snapshot_term=log.snapshot_term,
            progress=leader.status() if leader is not None else (),
            transfer_target=leader.transfer_target if leader is not None else None,
        )

    # -- inputs --------------------------------------------------------------------------------

    def tick(self) -> None:
        """One tick of time passed."""
        leader = self._leader
        if leader is not None:
            if not leader.tick():
                self._become_follower(self._term, None)  # check-quorum: lost the majority
                return
            self._heartbeat_elapsed += 1
            if self._heartbeat_elapsed >= self._config.heartbeat_ticks:
                self._heartbeat_elapsed = 0
                leader.heartbeat()
            return
        self._election_elapsed += 1
        if self._election_elapsed >= self._timeout:
            self._campaign(pre=self._config.pre_vote, transfer=False)

    def propose(self, data: bytes) -> tuple[Index, Term]:
        """Append ``data`` as a new entry (leader only). Returns its (index, term): it is
        committed once a Ready hands out a committed entry with that index *and* term."""
        leader = self._leader
        if leader is None:
            raise NotLeader(self._leader_id)
        if leader.transfer_target is not None:
            raise LeadershipTransferInProgress(leader.transfer_target)
        problem = self._entry_check(data)
        if problem is not None:
            raise InvalidEntryData(problem)
        index = Index(self._log.last_index + 1)
        self._log.append(Entry(index, self._term, EntryKind.NORMAL, bytes(data)))
        leader.broadcast_pending = True
        return index, self._term

    def transfer_leadership(self, target: NodeId | None = None) -> None:
        """Hand leadership to ``target`` (None: the most caught-up follower). Proposals are
        refused until the target takes over or an election timeout passes."""
        leader = self._leader
        if leader is None:
            raise NotLeader(self._leader_id)
        if target is None:
            target = leader.most_caught_up()
            if target is None:
                return
        if target not in self._voters:
            raise ValueError(f"transfer target {target} is not a voter")
        if target == self._id:
            leader.transfer_target = None
            return
        if leader.transfer_target != target:
            leader.start_transfer(target)

    def compact(self, snapshot: Snapshot) -> None:
        """The runtime durably saved a state-machine snapshot at an applied index: drop the
        entries it covers and keep it to send to lagging followers."""
        self._log.compact(snapshot)

    def step(self, m: Message) -> None:
        """A message from a peer arrived."""
        if m.dst != self._id:
            raise ValueError(f"message for node {m.dst} delivered to node {self._id}")
        if m.src == self._id or m.src not in self._voters:
            return
        if m.term > self._term:
            if isinstance(m, RequestVote):
                if not m.transfer and self._in_lease():
                    # Leader stickiness: a live leader exists; do not let this disrupt it.
                    self._reply_vote(m, granted=False)
                    return
                if not m.pre_vote:
                    self._become_follower(m.term, None)
            elif isinstance(m, RequestVoteResponse) and m.pre_vote and m.granted:
                pass  # carries the term the pre-candidate would campaign at
            elif isinstance(m, AppendEntries | InstallSnapshot | TimeoutNow):
                self._become_follower(m.term, m.src)
            else:
                self._become_follower(m.term, None)
        elif m.term < self._term:
            self._answer_stale(m)
            return

        if isinstance(m, AppendEntries):
            self._on_append(m)
        elif isinstance(m, AppendEntriesResponse):
            if self._leader is not None:
                self._leader.on_append_response(m)
        elif isinstance(m, RequestVote):
            self._on_vote_request(m)
        elif isinstance(m, RequestVoteResponse):
            self._on_vote_response(m)
        elif isinstance(m, InstallSnapshot):
            self._on_snapshot(m)
        elif isinstance(m, InstallSnapshotResponse):
            if self._leader is not None:
                self._leader.on_snapshot_response(m)
        elif self._role is not Role.LEADER:
            self._campaign(pre=False, transfer=True)  # TimeoutNow from our leader

    # -- Ready cycle ---------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Is there anything to persist, send or apply? (False while a Ready is in flight.)"""
        if self._in_flight is not None:
            return False
        leader = self._leader
        return (
            bool(self._outbox)
            or (leader is not None and leader.broadcast_pending)
            or self._log.has_unpersisted()
            or self._log.has_unapplied()
            or self._hard_state() != self._handed_hard
            or self._soft_state() != self._handed_soft
        )

    def ready(self) -> Ready:
        """Hand out the next batch of work. Call ``advance(ready)`` once it is handled, before
        asking for another one; ``tick``/``step``/``propose`` may be called in between."""
        if self._in_flight is not None:
            raise RuntimeError("the previous Ready was not advanced yet")
        leader = self._leader
        if leader is not None and leader.broadcast_pending:
            leader.broadcast()
        hard, soft = self._hard_state(), self._soft_state()
        snapshot, truncate_from, entries = self._log.take_unpersisted()
        ready = Ready(
            hard_state=hard if hard != self._handed_hard else None,
            snapshot=snapshot,
            truncate_from=truncate_from,
            entries=entries,
            messages=tuple(self._outbox),
            committed=self._log.take_committed(self._config.max_committed_bytes_per_ready),
            soft_state=soft if soft != self._handed_soft else None,
        )
        self._outbox.clear()
        self._handed_hard, self._handed_soft = hard, soft
        self._in_flight = ready
        return ready

    def advance(self, ready: Ready) -> None:
        """The runtime persisted, sent and applied ``ready``."""
        if ready is not self._in_flight:
            raise ValueError("advance() must get the Ready last returned by ready()")
        self._in_flight = None
        self._log.persisted(ready.snapshot, ready.entries, ready.committed)
        if self._leader is not None:
            self._leader.maybe_commit()  # this leader's own entries may now count

    # -- roles ---------------------------------------------------------------------------------

    def _hard_state(self) -> HardState:
        return HardState(self._term, self._voted_for)

    def _soft_state(self) -> SoftState:
        return SoftState(self._role, self._leader_id, self._term)

    def _draw_timeout(self) -> int:
        t = self._config.election_timeout_ticks
        return self._rng.randrange(t, 2 * t)

    def _reset_timers(self) -> None:
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._timeout = self._draw_timeout()

    def _in_lease(self) -> bool:
        """Heard from a live leader within the election timeout (or is the leader)."""
        if self._role is Role.LEADER:
            return True
        return (
            self._leader_id is not None
            and self._election_elapsed < self._config.election_timeout_ticks
        )

    def _become_follower(self, term: Term, leader_id: NodeId | None) -> None:
        if term > self._term:
            self._term = term
            self._voted_for = None
            self._receiver = None
        self._role = Role.FOLLOWER
        self._leader_id = leader_id
        self._leader = None
        self._votes = {}
        self._reset_timers()

    def _campaign(self, *, pre: bool, transfer: bool) -> None:
        self._reset_timers()
        self._leader_id = None
        self._leader = None
        if pre:
            self._role = Role.PRE_CANDIDATE
            vote_term = Term(self._term + 1)
        else:
            self._role = Role.CANDIDATE
            self._term = Term(self._term + 1)
            self._voted_for = self._id
            self._receiver = None
            vote_term = self._term
        self._votes = {self._id: True}
        if self._voters.vote_result(self._votes) is VoteResult.WON:
            self._won_vote()
            return
        last_index, last_term = self._log.last_index, self._log.last_term
        for v in self._voters:
            if v != self._id:
                self._outbox.append(
                    RequestVote(
                        src=self._id,
                        dst=v,
                        term=vote_term,
                        last_index=last_index,
                        last_term=last_term,
                        pre_vote=pre,
                        transfer=transfer,
                    )
                )

    def _won_vote(self) -> None:
        if self._role is Role.PRE_CANDIDATE:
            self._campaign(pre=False, transfer=False)
        else:
            self._become_leader()

    def _become_leader(self) -> None:
        self._role = Role.LEADER
        self._leader_id = self._id
        self._votes = {}
        self._reset_timers()
        self._receiver = None
        leader = LeaderState(
            self._id, self._term, self._voters, self._config, self._log, self._outbox.append
        )
        self._leader = leader
        # A NOOP of the new term lets entries of earlier terms commit (Figure 8).
        noop = Entry(Index(self._log.last_index + 1), self._term, EntryKind.NOOP)
        self._log.append(noop)
        leader.broadcast()

    # -- elections -----------------------------------------------------------------------------

    def _reply_vote(self, m: RequestVote, *, granted: bool) -> None:
        self._outbox.append(
            RequestVoteResponse(
                src=self._id,
                dst=m.src,
                term=m.term if granted else self._term,
                granted=granted,
                pre_vote=m.pre_vote,
            )
        )

    def _on_vote_request(self, m: RequestVote) -> None:
        can_vote = (
            self._voted_for == m.src
            or (self._voted_for is None and self._leader_id is None)
            or (m.pre_vote and m.term > self._term)
        )
        if can_vote and self._log.is_up_to_date(m.last_index, m.last_term):
            if not m.pre_vote:
                self._voted_for = m.src
                self._election_elapsed = 0
            self._reply_vote(m, granted=True)
        else:
            self._reply_vote(m, granted=False)

    def _on_vote_response(self, m: RequestVoteResponse) -> None:
        if self._role is Role.PRE_CANDIDATE:
            if not m.pre_vote:
                return
            wanted = Term(self._term + 1) if m.granted else self._term
            if m.term != wanted:
                return
        elif self._role is not Role.CANDIDATE or m.pre_vote:
            return
        self._votes.setdefault(m.src, m.granted)
        result = self._voters.vote_result(self._votes)
        if result is VoteResult.WON:
            self._won_vote()
        elif result is VoteResult.LOST:
            self._become_follower(self._term, None)

    # -- follower side -------------------------------------------------------------------------

    def _heard_from_leader(self, m: AppendEntries | InstallSnapshot) -> None:
        if self._role is not Role.FOLLOWER:
            self._become_follower(m.term, m.src)
        else:
            self._leader_id = m.src
            self._election_elapsed = 0

    def _on_append(self, m: AppendEntries) -> None:
        if self._role is Role.LEADER:
            return  # two leaders in one term cannot be; never act on it
        self._heard_from_leader(m)
        log = self._log
        prev, entries = m.prev_index, m.entries
        if prev < log.commit:
            # Committed entries match any current leader's: skip them.
            entries = entries[log.commit - prev :]
            prev = log.commit
            matched = True
        else:
            matched = log.matches(prev, m.prev_term)
        if any(e.kind is EntryKind.NORMAL and self._entry_check(e.data) for e in entries):
            # A leader sending what no state machine can apply is broken or forged: keep it
            # out of this log, unacknowledged, so that it can never commit.
            self.refused_appends += 1
            return
        if matched:
            log.accept(entries)
            last_new = Index(prev + len(entries))
            log.commit_to(min(m.leader_commit, last_new))
            self._reply_append(m, success=True, match=last_new)
            return
        if prev > log.last_index:
            conflict_term, conflict_index = _NO_TERM, Index(log.last_index + 1)
        else:
            held = log.term_at(prev)
            assert held is not None
            conflict_term, conflict_index = held, log.first_index_of_term_at(prev)
        self._reply_append(
            m,
            success=False,
            match=_NO_INDEX,
            conflict_term=conflict_term,
            conflict_index=conflict_index,
        )

    def _reply_append(
        self,
        m: AppendEntries,
        *,
        success: bool,
        match: Index,
        conflict_term: Term = _NO_TERM,
        conflict_index: Index = _NO_INDEX,
    ) -> None:
        self._outbox.append(
            AppendEntriesResponse(
                src=self._id,
                dst=m.src,
                term=self._term,
                success=success,
                prev_index=m.prev_index,
                match_index=match,
                conflict_term=conflict_term,
                conflict_index=conflict_index,
                last_index=self._log.last_index,
                incarnation=self._incarnation,
            )
        )

    def _on_snapshot(self, m: InstallSnapshot) -> None:
        if self._role is Role.LEADER:
            return
        self._heard_from_leader(m)
        log = self._log
        if m.meta.index <= log.commit:
            self._receiver = None
            self._reply_snapshot(m, m.total_size, done=True)  # already hold all it covers
            return
        rcv = self._receiver
        if rcv is None or not rcv.is_for(m.meta, m.total_size):
            if m.offset != 0:
                self._reply_snapshot(m, 0, done=False)  # start this snapshot over
                return
            rcv = self._receiver = SnapshotReceiver(m.meta, m.total_size)
        if not rcv.add(m.offset, m.data) or not rcv.complete:
            self._reply_snapshot(m, rcv.received, done=False)
            return
        self._receiver = None
        if log.matches(m.meta.index, m.meta.term):
            log.commit_to(m.meta.index)  # the log already holds the covered entries
        else:
            log.restore(rcv.snapshot())
        self._reply_snapshot(m, m.total_size, done=True)

    def _reply_snapshot(self, m: InstallSnapshot, next_offset: int, *, done: bool) -> None:
        self._outbox.append(
            InstallSnapshotResponse(
                src=self._id,
                dst=m.src,
                term=self._term,
                snapshot_index=m.meta.index,
                next_offset=next_offset,
                done=done,
            )
        )

    def _answer_stale(self, m: Message) -> None:
        """A message from an older term: tell stale leaders and pre-candidates our term."""
        if isinstance(m, AppendEntries):
            self._outbox.append(
                AppendEntriesResponse(
                    src=self._id,
                    dst=m.src,
                    term=self._term,
                    success=False,
                    prev_index=m.prev_index,
                    match_index=_NO_INDEX,
                    conflict_term=_NO_TERM,
                    conflict_index=_NO_INDEX,
                    last_index=self._log.last_index,
                    incarnation=self._incarnation,
                )
            )
        elif isinstance(m, InstallSnapshot):
            self._reply_snapshot(m, 0, done=False)
        elif isinstance(m, RequestVote) and m.pre_vote:
            self._reply_vote(m, granted=False)
