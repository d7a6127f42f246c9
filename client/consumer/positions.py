"""Where each assigned partition reads from: seeks, the starting point of newly assigned
partitions (the group's committed offset, else the reset policy), ``position()``, and offset
lookups by time or for the log's ends. The consumer's public methods of the same names call
these."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import structlog

from raftka.client.consumer.errors import IllegalStateError
from raftka.client.consumer.fetch_buffer import FetchBuffer
from raftka.client.consumer.fetcher import Fetcher
from raftka.client.consumer.group_offsets import MEMBERSHIP_ERRORS
from raftka.client.consumer.offset_store import OffsetAndMetadata, OffsetStore
from raftka.client.consumer.offsets import EARLIEST, LATEST, OffsetAndTimestamp, OffsetLookup
from raftka.client.consumer.subscription import ResetStrategy, SubscriptionState
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError, RequestTimedOutError
from raftka.common.rpc.retry import Deadline, RetryPolicy

log = structlog.get_logger(__name__)


class ConsumerPositions:
    """The partitions' positions: moved by seeks, started from committed offsets or the
    reset policy, looked up from the brokers when asked."""

    def __init__(
        self,
        subscription: SubscriptionState,
        buffer: FetchBuffer,
        fetcher: Fetcher,
        lookup: OffsetLookup,
        offset_store: OffsetStore | None,
        retry: RetryPolicy,
    ) -> None:
        self._subscription = subscription
        self._buffer = buffer
        self._fetcher = fetcher
        self._lookup = lookup
        self._offset_store = offset_store
        self._retry = retry

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._subscription.seek(tp, offset)
        self._buffer.clear(tp)
        self._fetcher.wakeup()

    def seek_to(self, strategy: ResetStrategy, partitions: tuple[TopicPartition, ...]) -> None:
        """Reset the named partitions (every assigned one if none are named) to ``strategy``:
        looked up lazily, by the next poll() or position()."""
        targets = list(partitions) or self._subscription.partitions()
        for tp in targets:
            self._subscription.state(tp)  # not assigned: raise before changing anything
        for tp in targets:
            self._subscription.request_reset(tp, strategy)
            self._buffer.clear(tp)
        self._fetcher.wakeup()

    def current(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Every partition's position that is known (what poll() has handed out up to)."""
        return {
            tp: OffsetAndMetadata(s.position, s.leader_epoch)
            for tp in self._subscription.partitions()
            if (s := self._subscription.state(tp)).position is not None
        }

    async def position(self, tp: TopicPartition, wait_s: float) -> int:
        """The offset of the next record poll() returns for ``tp``, looked up first if a
        reset is pending or the committed offset is not known yet (RequestTimedOutError
        after ``wait_s``)."""
        self._subscription.state(tp)  # raises for a partition not assigned
        deadline = Deadline(wait_s)
        attempt = 0
        while True:
            await self.init_positions()
            state = self._subscription.state(tp)
            if state.error is not None:
                raise state.error
            if state.reset is not None:
                version, strategy = state.version, state.reset
                found = (await self._lookup.lookup({tp: int(strategy)}, deadline)).get(tp)
                if found is not None and self._subscription.state(tp).version == version:
                    self.seek(tp, found.offset)
            position = self._subscription.state(tp).position
            if position is not None:
                return position
            # Its committed offset could not be read yet (coordinator moving, a rebalance in
            # flight), or a concurrent seek_to_* started a new lookup: try again shortly.
            if deadline.expired():
                raise RequestTimedOutError(
                    f"position({tp}): no starting offset within {wait_s:g}s (the "
                    "group's committed offset could not be read); call it again"
                )
            attempt += 1
            await asyncio.sleep(min(self._retry.backoff(attempt), deadline.remaining()))

    async def init_positions(self) -> None:
        """Give newly assigned partitions a starting point: their committed offset (with a
        group), else the reset policy."""
        pending = self._subscription.initializing()
        if not pending:
            return
        if self._offset_store is not None:
            try:
                committed = await self._offset_store.fetch_committed(pending)
            except RaftkaError as e:
                if not (e.retriable or isinstance(e, MEMBERSHIP_ERRORS)):
                    raise
                # Never the reset policy for want of an answer: that would rewind (or skip)
                # past what the group committed. The next poll() asks again.
                log.info("consumer_committed_offsets_retry", error=e.message)
                return
            for tp, c in committed.items():
                if self._subscription.is_assigned(tp) and self._subscription.state(tp).initializing:
                    self._subscription.seek(tp, c.offset)
        for tp in pending:
            if self._subscription.is_assigned(tp) and self._subscription.state(tp).initializing:
                self._subscription.apply_reset_policy(tp)
        self._fetcher.wakeup()

    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int], wait_s: float
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        for tp, ts in timestamps.items():
            if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
                raise IllegalStateError(
                    f"offsets_for_times: {tp} has timestamp {ts!r}; use ms >= 0"
                )
        return await self._lookup.lookup(timestamps, Deadline(wait_s))

    async def log_ends(
        self, partitions: Iterable[TopicPartition], latest: bool, wait_s: float
    ) -> dict[TopicPartition, int]:
        """Each partition's log start offset, or (``latest``) its high watermark."""
        which = LATEST if latest else EARLIEST
        wanted = {TopicPartition(*tp): which for tp in partitions}
        found = await self._lookup.lookup(wanted, Deadline(wait_s))
        return {tp: f.offset for tp, f in found.items() if f is not None}
