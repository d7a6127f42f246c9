"""A partition leader's view of its replicas: log end offsets, the ISR and the high watermark.

Sans-I/O and deterministic (time is an argument), so it can be driven by tests and a seeded
scheduler exactly as by the broker. The rules are Kafka's (KIP-497, KIP-903):

- A follower's fetch offset is its log end offset (LEO). It is *caught up* when its LEO equals
  the leader's LEO, or when it last reached the leader's LEO of an earlier fetch within
  ``replica.lag.time.max.ms`` (``last_caught_up_ms``).
- The high watermark is the smallest LEO over the *maximal* ISR (the committed ISR plus any
  member a pending change would add). It never moves back, and it does not advance while the
  ISR is smaller than ``min.insync.replicas``.
- Shrink: members that are not caught up leave, and so does at once a member whose log is
  shorter than the high watermark (it fetched from below it: it truncated a damaged log for
  repair, or lost what it acknowledged), so that it is never elected with less than was
  committed. Expand: a replica whose LEO is at or past the
  high watermark and the start of the leader's epoch joins. Either is *proposed*; only one
  change is in flight at a time, and it takes effect when the controller commits it.
- KIP-903: each follower's progress belongs to the broker epoch it fetched with. A fetch under
  a new epoch (a new incarnation, which may have lost its unflushed tail) starts its progress
  afresh, and a proposal names for every member the epoch its progress was recorded under, so
  the controller refuses to count a new incarnation on the strength of its predecessor's
  fetches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class ReplicaProgress:
    log_end_offset: int = -1
    last_caught_up_ms: int = -1
    last_fetch_ms: int = -1
    leader_leo_at_last_fetch: int = -1
    broker_epoch: int = -1
    """The broker epoch of the fetches this progress comes from (-1: none yet)."""


@dataclass(frozen=True, slots=True)
class IsrProposal:
    """An ISR change to send to the controller as AlterPartition."""

    new_isr: tuple[int, ...]
    partition_epoch: int
    leader_epoch: int
    broker_epochs: tuple[tuple[int, int], ...] = ()
    """(member, broker epoch of its recorded fetches) for the followers that have fetched from
    this leader; the others are sent with their epoch in the metadata image."""


@dataclass
class LeaderReplicaState:
    leader_id: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader_epoch: int
    partition_epoch: int
    epoch_start_offset: int
    """The leader's LEO when it became leader: an expanding replica must reach it."""
    high_watermark: int
    leader_log_end_offset: int
    lag_time_max_ms: int
    min_insync_replicas: int
    pending: IsrProposal | None = None
    progress: dict[int, ReplicaProgress] = field(default_factory=dict)
    became_leader_ms: int = -1
    """When this replica became leader. Followers in the ISR count as caught up at that moment
    (Kafka does the same), so each gets a full replica.lag.time.max.ms to send its first
    fetch to the new leader before it can be dropped from the ISR."""

    def __post_init__(self) -> None:
        for replica in self.replicas:
            if replica != self.leader_id:
                caught_up = self.became_leader_ms if replica in self.isr else -1
                self.progress.setdefault(replica, ReplicaProgress(last_caught_up_ms=caught_up))

    # ---- views ----

    @property
    def maximal_isr(self) -> tuple[int, ...]:
        """The committed ISR plus members a pending expansion adds (KIP-497)."""
        if self.pending is None:
            return self.isr
        return tuple(dict.fromkeys((*self.isr, *self.pending.new_isr)))

    def has_enough_replicas(self) -> bool:
        """Whether acks=all may append (the committed ISR meets min.insync.replicas)."""
        return len(self.isr) >= self.min_insync_replicas

    def replica_leo(self, replica: int) -> int:
        if replica == self.leader_id:
            return self.leader_log_end_offset
        return self.progress[replica].log_end_offset

    # ---- inputs ----

    def on_leader_append(self, log_end_offset: int) -> bool:
        """The leader appended; with a single-member ISR the high watermark may move."""
        self.leader_log_end_offset = log_end_offset
        return self._maybe_advance_hw()

    def on_follower_fetch(
        self, replica: int, fetch_offset: int, now_ms: int, broker_epoch: int = -1
    ) -> bool:
        """A follower fetched from ``fetch_offset`` (its LEO) with ``broker_epoch``. Returns
        whether the high watermark advanced (delayed acks=all produces may complete)."""
        p = self.progress.get(replica)
        if p is None:
            return False  # not a replica of this partition (stale metadata on its side)
        if broker_epoch >= 0 and broker_epoch != p.broker_epoch:
            # A new incarnation: nothing its predecessor fetched counts for it.
            p.log_end_offset = p.last_caught_up_ms = p.last_fetch_ms = -1
            p.leader_leo_at_last_fetch = -1
            p.broker_epoch = broker_epoch
        if fetch_offset >= self.leader_log_end_offset:
            p.last_caught_up_ms = now_ms
        elif p.leader_leo_at_last_fetch >= 0 and fetch_offset >= p.leader_leo_at_last_fetch:
            p.last_caught_up_ms = max(p.last_caught_up_ms, p.last_fetch_ms)
        p.log_end_offset = fetch_offset
        p.last_fetch_ms = now_ms
        p.leader_leo_at_last_fetch = self.leader_log_end_offset
        return self._maybe_advance_hw()

    def on_isr_committed(self, isr: Sequence[int], partition_epoch: int) -> bool:
        """The controller committed an ISR (our proposal, or a change it made itself)."""
        self.isr = tuple(isr)
        self.partition_epoch = partition_epoch
        self.pending = None
        return self._maybe_advance_hw()

    def set_min_insync_replicas(self, min_insync_replicas: int) -> bool:
        """The topic's ``min.insync.replicas`` changed. Returns whether the high watermark
        advanced (a lower minimum may let it)."""
        self.min_insync_replicas = min_insync_replicas
        return self._maybe_advance_hw()

    def on_isr_rejected(self) -> None:
        self.pending = None

    # ---- ISR changes ----

    def is_short(self, replica: int) -> bool:
        """Whether ``replica`` fetched, under this leadership, from below the high watermark:
        its log lacks records that were committed (an ISR member's LEO never drops below the
        high watermark unless it lost or truncated acknowledged records, e.g. repairing a
        damaged log). Such a member must leave the ISR at once, whatever its lag time."""
        if replica == self.leader_id:
            return False
        p = self.progress[replica]
        return p.last_fetch_ms >= 0 and p.log_end_offset < self.high_watermark

    def has_short_isr_member(self) -> bool:
        """Whether a member of the (maximal) ISR is short (:meth:`is_short`)."""
        return any(self.is_short(r) for r in self.maximal_isr)

    def is_caught_up(self, replica: int, now_ms: int) -> bool:
        if replica == self.leader_id:
            return True
        p = self.progress[replica]
        if p.log_end_offset >= self.leader_log_end_offset:
            return True
        return p.last_caught_up_ms >= 0 and now_ms - p.last_caught_up_ms <= self.lag_time_max_ms

    def propose_shrink(self, now_ms: int) -> IsrProposal | None:
        """Members that fell behind, or whose log is shorter than the high watermark
        (:meth:`is_short`), leave the ISR (the leader always stays)."""
        if self.pending is not None:
            return None
        keep = tuple(r for r in self.isr if self.is_caught_up(r, now_ms) and not self.is_short(r))
        if keep == self.isr:
            return None
        return self._propose(keep)

    def propose_expand(self, eligible: Iterable[int]) -> IsrProposal | None:
        """A caught-up replica (among ``eligible``: unfenced, not shutting down) joins."""
        if self.pending is not None:
            return None
        allowed = set(eligible)
        for replica in self.replicas:
            if replica in self.isr or replica not in allowed or replica == self.leader_id:
                continue
            leo = self.progress[replica].log_end_offset
            if leo >= self.high_watermark and leo >= self.epoch_start_offset:
                return self._propose((*self.isr, replica))
        return None

    def _propose(self, new_isr: tuple[int, ...]) -> IsrProposal:
        epochs = tuple(
            (r, self.progress[r].broker_epoch)
            for r in new_isr
            if r in self.progress and self.progress[r].broker_epoch >= 0
        )
        self.pending = IsrProposal(new_isr, self.partition_epoch, self.leader_epoch, epochs)
        return self.pending

    # ---- high watermark ----

    def _maybe_advance_hw(self) -> bool:
        members = self.maximal_isr
        if len(self.isr) < self.min_insync_replicas:
            return False
        candidate = min(self.replica_leo(r) for r in members)
        if candidate > self.high_watermark:
            self.high_watermark = candidate
            return True
        return False
