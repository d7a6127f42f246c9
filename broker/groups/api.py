"""The contract between a group shard (sans-I/O) and the runtime that drives it.

One :class:`GroupShard` holds the groups of one ``__consumer_offsets`` partition that this
broker leads. It never does I/O and never reads a clock: every call gets ``now_ms``, and the
metadata it needs (:class:`TopicsView`). A call that changes state returns an :class:`Outcome`:
the records to append to the partition (in order; the shard has already applied them to its
own state), the answer to send once they are committed, and the pushes for members connected by
stream whose assignment changed. The runtime appends ``records`` with acks=all and only then
answers; if the append fails, it drops the shard and loads it again from the log (so the shard
never has to undo anything).

Loading: a fresh shard replays every record of its partition (``replay``, in log order, a
tombstone as ``value=None``) and every transaction marker (``replay_marker``, at its place in
the log), then ``loaded(now_ms)`` arms the session and rebalance timers.

Transactional offsets (TxnOffsetCommit): their records are written in a transactional batch of
the committing producer (``Outcome.transactional_producer``) and stay pending, invisible to
OffsetFetch, until the transaction coordinator's marker reaches the partition: the runtime
appends it, then calls ``complete_transaction`` (COMMIT: they become the committed offsets;
ABORT: dropped). Replay sees the same records (``StoredRecord.producer_id``) and markers in the
same order, so it settles them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from raftka.broker.coordinator.api import StoredMarker as StoredMarker
from raftka.broker.coordinator.api import StoredRecord as StoredRecord  # of __consumer_offsets
from raftka.v1 import groups_pb2 as gpb

if TYPE_CHECKING:
    from raftka.broker.groups.classic import (
        ClassicJoin,
        ClassicLeaver,
        ClassicSync,
        JoinAnswer,
        LeaveAnswer,
        SyncAnswer,
    )

R = TypeVar("R")

#: topic name -> partition count, for every topic in the broker's metadata image (internal
#: topics included; the shard leaves names starting with "__" out of regex subscriptions).
TopicsView = Mapping[str, int]


@dataclass(frozen=True, slots=True)
class MemberPush:
    """A heartbeat answer to push to a member connected by ConsumerGroupStream."""

    group_id: str
    member_id: str
    response: gpb.ConsumerGroupHeartbeatResponse


@dataclass(frozen=True, slots=True)
class Outcome(Generic[R]):
    response: R
    records: Sequence[StoredRecord] = ()
    pushes: Sequence[MemberPush] = field(default_factory=tuple)
    #: (producer id, epoch) when ``records`` belong to that producer's transaction: the
    #: runtime appends them as one transactional batch of their own.
    transactional_producer: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Coordinator settings (Kafka's names in comments)."""

    session_timeout_ms: int = 45_000  # group.consumer.session.timeout.ms
    min_session_timeout_ms: int = 1_000  # lower bound of a member's own session timeout
    max_session_timeout_ms: int = 3_600_000
    heartbeat_interval_ms: int = 5_000  # group.consumer.heartbeat.interval.ms
    max_group_size: int = 10_000  # group.consumer.max.size
    default_assignor: str = "uniform"  # group.consumer.assignors (first listed)
    offset_metadata_max_bytes: int = 4_096  # offset.metadata.max.bytes


class GroupShard(Protocol):
    """What the runtime calls. ``client_id``/``client_host`` describe the caller's connection."""

    def replay(self, record: StoredRecord) -> None: ...

    def replay_marker(self, producer_id: int, committed: bool) -> None:
        """A transaction marker met during loading: settles the producer's pending offsets."""
        ...

    def loaded(self, now_ms: int) -> None: ...

    def heartbeat(
        self,
        request: gpb.ConsumerGroupHeartbeatRequest,
        *,
        now_ms: int,
        topics: TopicsView,
        client_id: str,
        client_host: str,
    ) -> Outcome[gpb.ConsumerGroupHeartbeatResponse]: ...

    # Kafka's classic group protocol (classic.py): answers carry Kafka's error codes.

    def classic_join(
        self,
        request: ClassicJoin,
        *,
        now_ms: int,
        topics: TopicsView,
        client_id: str,
        client_host: str,
    ) -> Outcome[JoinAnswer]: ...

    def classic_sync(self, request: ClassicSync, *, now_ms: int) -> Outcome[SyncAnswer]: ...

    def classic_heartbeat(
        self, group_id: str, member_id: str, generation: int, *, now_ms: int
    ) -> Outcome[tuple[int, str | None]]:
        """(NONE or REBALANCE_IN_PROGRESS or the refusal's code, its message)."""
        ...

    def classic_leave(
        self, group_id: str, leavers: Sequence[ClassicLeaver], *, now_ms: int, topics: TopicsView
    ) -> Outcome[list[LeaveAnswer]]: ...

    def not_told(self, group_id: str, member_id: str) -> None:
        """A push to this member reached no stream (a member on unary heartbeats, as Kafka's
        clients are): its next heartbeat answer carries its assignment."""
        ...

    def commit_offsets(
        self, request: gpb.OffsetCommitRequest, *, now_ms: int, topics: TopicsView
    ) -> Outcome[gpb.OffsetCommitResponse]: ...

    def txn_commit_offsets(
        self, request: gpb.TxnOffsetCommitRequest, *, now_ms: int, topics: TopicsView
    ) -> Outcome[gpb.OffsetCommitResponse]:
        """Checked like commit_offsets; the accepted offsets stay pending (records marked
        with the request's producer) until ``complete_transaction``."""
        ...

    def complete_transaction(
        self, producer_id: int, committed: bool, *, now_ms: int
    ) -> Outcome[None]:
        """The producer's marker is in the log: its pending offsets become committed (COMMIT)
        or are dropped (ABORT). Writes nothing (the marker is the record)."""
        ...

    def fetch_offsets(self, request: gpb.OffsetFetchRequest) -> gpb.OffsetFetchResponse:
        """With ``require_stable``: UNSTABLE_OFFSET_COMMIT while a requested partition has a
        pending transactional offset."""
        ...

    def list_groups(self, request: gpb.ListGroupsRequest) -> list[gpb.ListedGroup]: ...

    def describe_group(self, group_id: str) -> gpb.DescribedGroup: ...

    def delete_groups(self, group_ids: Sequence[str]) -> Outcome[list[gpb.GroupResult]]: ...

    def delete_offsets(
        self, request: gpb.OffsetDeleteRequest
    ) -> Outcome[gpb.OffsetDeleteResponse]: ...

    def tick(self, *, now_ms: int, topics: TopicsView) -> Outcome[None]:
        """Expire sessions and rebalance timeouts, and follow the metadata (new partitions of a
        subscribed topic, new topics matching a regex): call it every ~100-250 ms and whenever
        the metadata image changes."""
        ...

    def next_deadline_ms(self) -> int | None:
        """The earliest time a timer fires, or None; lets the runtime sleep until then."""
        ...

    def group_ids(self) -> list[str]: ...
