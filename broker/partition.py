"""One partition replica hosted by this broker: its log, its role, and what the BrokerService
asks of it (Kafka's ``Partition``).

A leader appends produced batches (serialized per partition; acks=all waits for the high
watermark with the ISR at least ``min.insync.replicas``), serves reads up to the high
watermark, and serves its followers' fetches: it checks the follower (a replica with a current
broker epoch, KIP-903, in the current leader epoch), answers a DivergingEpoch when the
follower's log is not a prefix of its own (KIP-595; the follower truncates, KIP-101/KIP-279),
and otherwise records the follower's progress, which may advance the high watermark or call
for an ISR expansion. Long-polling fetches and acks=all produces wait on per-partition events.

Transactions (KIP-98): the leader appends the COMMIT / ABORT markers a transaction coordinator
sends (:meth:`Partition.write_txn_marker`, acks=all like a produce), and a read_committed
consumer reads only below the last stable offset and learns the aborted transactions in what
it read (:meth:`PartitionLog.read <raftka.broker.log.partition_log.PartitionLog.read>`).

Every read (a consumer's fetch, a follower's fetch, ListOffsets) that names a current leader
epoch is checked against this leader's (KIP-320, :func:`check_current_leader_epoch`). A
consumer's fetch that names the epoch of its last consumed record is checked for divergence
like a follower's, so a consumer finds out that an unclean election truncated records it read.

Which partitions this broker hosts and in which role, and the ISR changes it proposes to the
controller, are the :class:`~raftka.broker.replica_manager.ReplicaManager`'s: it sets
:attr:`Partition.leader_state` and receives ISR proposals through :class:`ClusterView`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import structlog

from raftka.broker.isolation import READ_COMMITTED, READ_UNCOMMITTED, fetchable_offset
from raftka.broker.log.divergence import check_divergence
from raftka.broker.log.leader_epoch_cache import UNDEFINED_EPOCH, EpochEndOffset
from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.log.types import (
    AppendResult,
    DamagedLogError,
    FetchData,
    StaleLeaderEpochError,
)
from raftka.broker.replication.leader_state import IsrProposal, LeaderReplicaState
from raftka.common.clock import monotonic_ms, wall_clock_ms
from raftka.common.errors import (
    InvalidRequestError,
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    RaftkaError,
    RequestTimedOutError,
    UnknownLeaderEpochError,
)
from raftka.common.metadata.topic_configs import topic_config_value
from raftka.common.records import Buffer
from raftka.v1.common_pb2 import ErrorCode

log = structlog.get_logger(__name__)

T = TypeVar("T")

IoRunner = Callable[..., Awaitable[Any]]
"""Runs a blocking call off the event loop (:meth:`IoThreads.run`)."""

EARLIEST_TIMESTAMP, LATEST_TIMESTAMP = -2, -1
"""ListOffsets' special timestamps."""


class NotLeaderOrFollowerError(RaftkaError):
    """This broker does not lead the partition; ``leader_id``/``leader_epoch`` name who does."""

    code = ErrorCode.NOT_LEADER_OR_FOLLOWER
    retriable = True

    def __init__(self, message: str, leader_id: int = -1, leader_epoch: int = -1) -> None:
        super().__init__(message)
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch


class FencedLeaderEpochError(StaleLeaderEpochError):
    """A read named a leader epoch older than the partition's current one (KIP-320): the
    reader's metadata is stale. ``leader_id``/``leader_epoch`` name the current leader."""

    retriable = True

    def __init__(self, message: str, leader_id: int = -1, leader_epoch: int = -1) -> None:
        super().__init__(message)
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch


def check_current_leader_epoch(
    requested: int | None, current: int, where: str, *, leader_id: int
) -> None:
    """KIP-320's check of the leader epoch a read names (``requested``) against the one this
    broker knows for the partition (``current``, led by ``leader_id``): older raises
    FencedLeaderEpochError (FENCED_LEADER_EPOCH: refresh metadata), newer raises
    UnknownLeaderEpochError (UNKNOWN_LEADER_EPOCH: this broker is behind, retry). None or a
    negative epoch (-1, Kafka's "no epoch") is not checked."""
    if requested is None or requested < 0:
        return
    if requested < current:
        raise FencedLeaderEpochError(
            f"{where}: leader epoch {requested} is older than the current leader epoch "
            f"{current} (leader {leader_id}): refresh metadata and retry at that leader",
            leader_id,
            current,
        )
    if requested > current:
        raise UnknownLeaderEpochError(
            f"{where}: leader epoch {requested} is newer than the leader epoch {current} this "
            "broker knows: it has not caught up with the metadata yet; retry"
        )


class ClusterView(Protocol):
    """What a partition needs to know of the cluster, and whom it tells of ISR changes."""

    def broker_epoch_of(self, broker_id: int) -> int:
        """The broker's current epoch in the metadata image (-1 if not registered)."""
        ...

    def is_active(self, broker_id: int) -> bool:
        """Whether the broker is registered and unfenced (may join an ISR)."""
        ...

    def propose_isr(self, partition: Partition, proposal: IsrProposal) -> None:
        """Send an ISR change the leader decided to the controller (AlterPartition)."""
        ...

    def report_damage(self, partition: Partition) -> None:
        """The partition's log holds damaged data (``partition.log.damage``): repair it."""
        ...


class Partition:
    """One partition replica on this broker."""

    def __init__(
        self,
        topic: str,
        partition: int,
        topic_id: str,
        log: PartitionLog,
        configs: dict[str, str],
        *,
        broker_id: int,
        io: IoRunner,
        cluster: ClusterView,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.topic_id = topic_id
        self.log = log
        self.configs = configs
        self.broker_id = broker_id
        self._io = io
        self._cluster = cluster
        self.leader_epoch = -1
        self.is_leader = False
        self.leader_state: LeaderReplicaState | None = None
        """Set while this broker leads the partition (by the replica manager)."""
        self.append_lock = asyncio.Lock()
        self.data_arrived = asyncio.Event()
        self.hw_advanced = asyncio.Event()
        self.alter_in_flight = False

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"

    @property
    def min_insync_replicas(self) -> int:
        """The topic's ``min.insync.replicas`` as configured: never capped at the replica
        count (with fewer replicas than that, acks=all is refused, as in Kafka)."""
        value = topic_config_value(self.configs, "min.insync.replicas")
        return int(value) if isinstance(value, int) else 1

    async def update_configs(self, configs: dict[str, str]) -> None:
        """Applies the topic's new config overrides at once: the log's (swapped in place) and,
        while leading, ``min.insync.replicas`` for the next acks=all produce, the high
        watermark rule and acks=all writes already waiting (they re-check)."""
        self.configs = configs
        await self._io(self.log.update_configs, configs)
        state = self.leader_state
        if state is not None and state.min_insync_replicas != self.min_insync_replicas:
            if state.set_min_insync_replicas(self.min_insync_replicas):
                self.publish_high_watermark()
            self.notify_hw()

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    # ================================================================== events

    def notify_data(self) -> None:
        """Wake every fetch waiting on this partition (they re-read and re-wait)."""
        event, self.data_arrived = self.data_arrived, asyncio.Event()
        event.set()

    def notify_hw(self) -> None:
        """Wake acks=all produces waiting for the high watermark (they re-check)."""
        event, self.hw_advanced = self.hw_advanced, asyncio.Event()
        event.set()

    def publish_high_watermark(self) -> None:
        """Moves the log's high watermark to the leader state's, waking whoever waits on it."""
        state = self.leader_state
        if state is not None and state.high_watermark > self.log.high_watermark:
            self.log.set_high_watermark(min(state.high_watermark, self.log.log_end_offset))
            self.notify_hw()
            self.notify_data()

    # ================================================================== produce

    async def append(self, payload: Buffer, *, acks: int, timeout_s: float) -> AppendResult:
        """Appends a producer's batches as leader. With ``acks=-1`` (all): refused up front
        (NotEnoughReplicasError, nothing written) when the ISR is below
        ``min.insync.replicas``, then waits for the high watermark to cover the batches
        (see :meth:`wait_for_high_watermark`)."""
        return await self._leader_write(
            functools.partial(self.log.append_as_leader, payload),
            acks=acks,
            timeout_s=timeout_s,
            light=self.log.append_is_light(memoryview(payload).nbytes),
        )

    async def write_txn_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        coordinator_epoch: int,
        *,
        timeout_s: float,
    ) -> None:
        """Appends a transaction marker (COMMIT or ABORT) for ``producer_id`` as leader, and
        returns once it is below the high watermark (acks=all: a coordinator counts a
        transaction complete only when every partition's marker is committed). Raises as
        :meth:`append` does (NotLeaderOrFollowerError when this broker does not lead the
        partition), and the log's InvalidProducerEpochError / TransactionCoordinatorFencedError
        (nothing written) for a marker older than the ones already accepted."""
        if self.leader_state is None:
            raise NotLeaderOrFollowerError(
                f"broker {self.broker_id} does not lead {self}: send the marker to its leader"
            )
        write = functools.partial(
            self.log.append_marker, producer_id, producer_epoch, committed, coordinator_epoch
        )
        await self._leader_write(write, acks=-1, timeout_s=timeout_s)

    async def _leader_write(
        self,
        write: Callable[..., AppendResult],
        *,
        acks: int,
        timeout_s: float,
        light: bool = False,
    ) -> AppendResult:
        """One leader append through the log's ``write(leader_epoch=, now_ms=)``,
        serialized with the others on this partition and run on the I/O threads (on the event
        loop when ``light``: see :meth:`PartitionLog.append_is_light`), then waking fetches
        and, for ``acks=-1``, waiting for the high watermark."""
        state = self.leader_state
        if acks == -1 and state is not None and not state.has_enough_replicas():
            raise NotEnoughReplicasError(
                f"{self} has {len(state.isr)} in-sync replicas {list(state.isr)}, fewer than "
                f"min.insync.replicas={state.min_insync_replicas}; nothing was written"
            )
        async with self.append_lock:
            run = _inline if light else self._io
            appended: AppendResult = await run(
                write, leader_epoch=self.leader_epoch, now_ms=wall_clock_ms()
            )
            self.on_leader_append()
        self.notify_data()
        if acks == -1:
            await self.wait_for_high_watermark(appended.last_offset + 1, timeout_s)
        return appended

    def on_leader_append(self) -> None:
        state = self.leader_state
        if state is not None and state.on_leader_append(self.log.log_end_offset):
            self.publish_high_watermark()

    async def wait_for_high_watermark(self, offset: int, timeout_s: float) -> None:
        """Until the high watermark reaches ``offset`` (acks=all) with the ISR still at least
        min.insync.replicas. Raises NotEnoughReplicasAfterAppendError when the ISR shrinks below
        it (before or after the high watermark gets there), RequestTimedOutError, or
        NotLeaderOrFollowerError if leadership moves while waiting."""
        deadline_ms = monotonic_ms() + int(timeout_s * 1000)
        while True:
            state = self.leader_state
            if state is None:
                raise NotLeaderOrFollowerError(
                    f"broker {self.broker_id} stopped leading {self} before the write was "
                    "replicated; it may or may not be kept"
                )
            if len(state.maximal_isr) < state.min_insync_replicas:
                raise NotEnoughReplicasAfterAppendError(
                    f"{self}: written (up to offset {offset - 1}), but the ISR shrank to "
                    f"{list(state.maximal_isr)}, below min.insync.replicas="
                    f"{state.min_insync_replicas}, before it was replicated; retry (the write "
                    "may be kept)"
                )
            if self.log.high_watermark >= offset:
                return
            remaining_ms = deadline_ms - monotonic_ms()
            if remaining_ms <= 0:
                raise RequestTimedOutError(
                    f"{self}: the write was not replicated to the ISR within {timeout_s:g}s "
                    f"(high watermark {self.log.high_watermark}, needed {offset})"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.hw_advanced.wait(), remaining_ms / 1000)

    # ================================================================== fetch

    async def read(
        self,
        fetch_offset: int,
        max_bytes: int,
        *,
        min_one_batch: bool,
        isolation_level: int = READ_UNCOMMITTED,
        zero_copy: bool = False,
    ) -> FetchData:
        """A consumer's read: whole batches up to the high watermark (read_committed: up to
        the last stable offset, with the aborted transactions that have data in them), every
        one verified (DamagedLogError, reported for repair, when the read meets damage)."""
        # At or past the high watermark nothing is read from disk (the answer is empty, or
        # out of range): answered on the event loop, without a hop to the I/O threads.
        run = _inline if fetch_offset >= self.log.high_watermark else self._io
        try:
            data: FetchData = await run(
                self.log.read,
                fetch_offset,
                max_bytes,
                min_one_batch=min_one_batch,
                read_committed=isolation_level == READ_COMMITTED,
                zero_copy=zero_copy,
            )
        except DamagedLogError:
            self._cluster.report_damage(self)
            raise
        return data

    async def read_for_consumer(
        self,
        fetch_offset: int,
        max_bytes: int,
        *,
        current_leader_epoch: int | None,
        last_fetched_epoch: int | None,
        min_one_batch: bool,
        isolation_level: int = READ_UNCOMMITTED,
        zero_copy: bool = False,
    ) -> FetchData | EpochEndOffset:
        """A consumer's fetch: the leader epoch it names is checked
        (:func:`check_current_leader_epoch`); with the epoch of its last consumed record
        (``last_fetched_epoch``, None or -1 for none) its position is checked for divergence as
        a follower's is, and the DivergingEpoch returned when an unclean election truncated
        records it read; otherwise whole batches up to the high watermark, or the last stable
        offset for read_committed (:meth:`read`; with ``zero_copy``, as a file region)."""
        self.check_leader_epoch(current_leader_epoch)
        # A negative offset is left to the read, which answers it with the readable range.
        if last_fetched_epoch is not None and last_fetched_epoch >= 0 and fetch_offset >= 0:
            diverging = self._divergence(fetch_offset, last_fetched_epoch)
            if diverging is not None:
                return diverging
        return await self.read(
            fetch_offset,
            max_bytes,
            min_one_batch=min_one_batch,
            isolation_level=isolation_level,
            zero_copy=zero_copy,
        )

    def _divergence(self, fetch_offset: int, last_fetched_epoch: int) -> EpochEndOffset | None:
        """Where a reader's log (ending at ``fetch_offset`` in ``last_fetched_epoch``) leaves
        this leader's, or None when it is a prefix of it (KIP-101/279)."""
        plog = self.log
        return check_divergence(
            plog.leader_epoch_cache,
            plog.topic_partition,
            plog.log_start_offset,
            plog.log_end_offset,
            fetch_offset,
            last_fetched_epoch,
        )

    def check_leader_epoch(self, requested: int | None) -> None:
        """A read's current leader epoch against this leader's (KIP-320)."""
        check_current_leader_epoch(
            requested, self.leader_epoch, str(self), leader_id=self.broker_id
        )

    async def read_for_follower(
        self,
        replica: int,
        replica_epoch: int,
        current_leader_epoch: int | None,
        fetch_offset: int,
        last_fetched_epoch: int | None,
        max_bytes: int,
        *,
        min_one_batch: bool,
    ) -> FetchData | EpochEndOffset:
        """A follower's fetch: checked (:meth:`check_follower`), then either the
        DivergingEpoch to answer with (nothing read, no progress recorded) or, with the
        follower's progress recorded, whole batches up to the log end. A ``last_fetched_epoch``
        of None is an empty log's (-1)."""
        self.check_follower(replica, replica_epoch, current_leader_epoch)
        if last_fetched_epoch is None:
            last_fetched_epoch = UNDEFINED_EPOCH
        diverging = self._divergence(fetch_offset, last_fetched_epoch)
        if diverging is not None:
            return diverging
        plog = self.log
        self.on_follower_fetch(replica, fetch_offset, replica_epoch)
        # A caught-up follower (its fetch that advances the high watermark) reads nothing from
        # disk, and one an append behind reads that append from the page cache: both are
        # answered on the event loop, without an I/O-thread hop.
        run = _inline if plog.tail_is_small(fetch_offset) else self._io
        try:
            data: FetchData = await run(
                plog.read,
                fetch_offset,
                max_bytes,
                max_offset=plog.log_end_offset,
                min_one_batch=min_one_batch,
            )
        except DamagedLogError:
            self._cluster.report_damage(self)
            raise
        return data

    def check_follower(
        self, replica: int, replica_epoch: int, current_leader_epoch: int | None
    ) -> None:
        """A follower's fetch must come from a replica with a current broker epoch (KIP-903)
        that knows the current leader epoch (:meth:`check_leader_epoch`)."""
        state = self.leader_state
        if state is None or replica not in state.replicas or replica == self.broker_id:
            raise NotLeaderOrFollowerError(f"broker {replica} is not a follower of {self}")
        current = self._cluster.broker_epoch_of(replica)
        if replica_epoch != current:
            raise NotLeaderOrFollowerError(
                f"broker {replica} fetched with broker epoch {replica_epoch}, but its current "
                f"epoch is {current}"
            )
        self.check_leader_epoch(current_leader_epoch)

    def on_follower_fetch(self, replica: int, fetch_offset: int, broker_epoch: int = -1) -> None:
        """Records a follower's log end offset: the high watermark may advance, an ISR member
        whose log is shorter than the high watermark (it truncated a damaged log, or lost
        acknowledged records) is proposed out of the ISR at once, and a caught-up follower
        outside the ISR is proposed for it."""
        state = self.leader_state
        if state is None:
            return
        now = monotonic_ms()
        if state.on_follower_fetch(replica, fetch_offset, now, broker_epoch):
            self.publish_high_watermark()
        if replica in state.maximal_isr and state.is_short(replica):
            shrink = state.propose_shrink(now)
            if shrink is not None:
                log.warning(
                    "isr_member_below_high_watermark",
                    topic=self.topic,
                    partition=self.partition,
                    replica=replica,
                    fetch_offset=fetch_offset,
                    high_watermark=state.high_watermark,
                    new_isr=list(shrink.new_isr),
                )
                self._cluster.propose_isr(self, shrink)
            return  # (while a change is in flight, the periodic ISR check retries)
        proposal = state.propose_expand(b for b in state.replicas if self._cluster.is_active(b))
        if proposal is not None:
            self._cluster.propose_isr(self, proposal)

    # ================================================================== list offsets

    async def list_offset(
        self,
        timestamp: int,
        *,
        current_leader_epoch: int | None = None,
        isolation_level: int = READ_UNCOMMITTED,
    ) -> tuple[int, int] | None:
        """ListOffsets: (offset, timestamp) for EARLIEST (-2: the log start), LATEST (-1: the
        high watermark, or the last stable offset for read_committed; timestamp -1) or the
        first record at or after ``timestamp`` below that offset (None when there is none).
        The leader epoch the client names is checked first (:meth:`check_leader_epoch`)."""
        self.check_leader_epoch(current_leader_epoch)
        if timestamp == EARLIEST_TIMESTAMP:
            return self.log.log_start_offset, -1
        if timestamp == LATEST_TIMESTAMP:
            return fetchable_offset(self.log, isolation_level), -1
        if timestamp < 0:
            raise InvalidRequestError(
                f"timestamp {timestamp}: use -1 (latest), -2 (earliest) or a time in ms"
            )
        bound = fetchable_offset(self.log, isolation_level)
        found = await self._io(self.log.offset_for_timestamp, timestamp)
        if found is None or found.offset >= bound:
            return None
        return found.offset, found.timestamp

    def __repr__(self) -> str:
        return (
            f"Partition({self}, leader={self.is_leader}, leader_epoch={self.leader_epoch}, "
            f"log={self.log!r})"
        )


async def _inline(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` on the event loop (for calls known not to block: no disk I/O)."""
    return fn(*args, **kwargs)
