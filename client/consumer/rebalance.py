"""What a group member does with its partitions when its assignment changes.

The membership (``membership.py``) decides *what* changes; :class:`PartitionHandover` does it
to the consumer's state, in Kafka's order:

* revoke: commit the processed positions (auto-commit on), call ``on_revoke``, stop fetching
  and drop the partitions (their buffered records are discarded);
* lose (the member was fenced or left after max_poll_interval_ms): call ``on_lost`` (else
  ``on_revoke``) and drop the partitions, committing nothing (another member may own them);
* add: read the committed offsets (OffsetFetch as the member), position each partition there
  (``auto_offset_reset`` where none is committed), call ``on_assign``, start fetching.

Callbacks take a set of TopicPartition and may be plain functions or coroutine functions; they
run on the consumer's event loop. One that raises is logged, and poll() raises its error.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import structlog

from raftka.client.consumer.fetch_buffer import FetchBuffer
from raftka.client.consumer.fetcher import Fetcher
from raftka.client.consumer.group_offsets import AutoCommitter, GroupOffsetStore
from raftka.client.consumer.offset_store import OffsetAndMetadata
from raftka.client.consumer.subscription import SubscriptionState
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError

log = structlog.get_logger(__name__)

PartitionsCallback = Callable[[set[TopicPartition]], Awaitable[None] | None]


class CallbackError(RaftkaError):
    """An on_assign / on_revoke / on_lost callback raised."""


class PartitionHandover:
    def __init__(
        self,
        subscription: SubscriptionState,
        buffer: FetchBuffer,
        fetcher: Fetcher,
        store: GroupOffsetStore,
        auto_commit: AutoCommitter | None,
        *,
        on_assign: PartitionsCallback | None,
        on_revoke: PartitionsCallback | None,
        on_lost: PartitionsCallback | None,
    ) -> None:
        self._subscription = subscription
        self._buffer = buffer
        self._fetcher = fetcher
        self._store = store
        self._auto_commit = auto_commit
        self.on_assign = on_assign
        self.on_revoke = on_revoke
        self.on_lost = on_lost
        self.error: RaftkaError | None = None
        """The last callback failure, for poll() to raise (then cleared)."""

    def owned(self) -> set[TopicPartition]:
        return self._subscription.assignment

    async def revoke(self, partitions: set[TopicPartition]) -> None:
        partitions &= self.owned()
        if not partitions:
            return
        if self._auto_commit is not None:
            due = self._auto_commit.pending(partitions)
            try:
                await self._store.commit(due)
                self._auto_commit.committed(due)
            except RaftkaError as e:
                log.warning("consumer_commit_before_revoke_failed", error=e.message)
        log.info("consumer_partitions_revoked", partitions=sorted(map(str, partitions)))
        await self._call("on_revoke", self.on_revoke, partitions)
        self._drop(partitions)

    async def lose(self, partitions: set[TopicPartition]) -> None:
        partitions &= self.owned()
        if not partitions:
            return
        log.warning("consumer_partitions_lost", partitions=sorted(map(str, partitions)))
        callback = self.on_lost if self.on_lost is not None else self.on_revoke
        await self._call("on_lost", callback, partitions)
        self._drop(partitions)

    async def add(self, partitions: set[TopicPartition]) -> None:
        partitions -= self.owned()
        if not partitions:
            return
        self._subscription.assign(self.owned() | partitions)
        # Nothing of them is fetched or returned before on_assign has run (it may seek).
        self._subscription.hold(partitions, True)
        committed: dict[TopicPartition, OffsetAndMetadata] | None
        try:
            committed = await self._store.fetch_committed(partitions)
        except RaftkaError as e:
            # Left without a position: poll() (or position()) asks again. Never the reset
            # policy for want of an answer, which would rewind past what the group committed.
            log.warning("consumer_committed_offsets_unavailable", error=e.message)
            committed = None
        for tp in sorted(partitions):
            if not self._subscription.is_assigned(tp):
                continue
            state = self._subscription.state(tp)
            if not state.initializing:
                continue
            found = None if committed is None else committed.get(tp)
            if found is not None:
                self._subscription.seek(tp, found.offset, found.leader_epoch)
            elif committed is not None:
                self._subscription.apply_reset_policy(tp)
        log.info("consumer_partitions_assigned", partitions=sorted(map(str, partitions)))
        try:
            await self._call("on_assign", self.on_assign, partitions)
        finally:
            self._subscription.hold(partitions, False)
        self._fetcher.wakeup()
        self._fetcher.data_ready.set()  # a poll() waiting looks at the new partitions now

    def _drop(self, partitions: set[TopicPartition]) -> None:
        if self._auto_commit is not None:
            self._auto_commit.forget(partitions)
        self._subscription.assign(self.owned() - partitions)
        self._buffer.retain(self._subscription.assignment)
        self._fetcher.wakeup()

    async def _call(
        self, name: str, callback: PartitionsCallback | None, partitions: set[TopicPartition]
    ) -> None:
        if callback is None:
            return
        try:
            result = callback(set(partitions))
            if inspect.isawaitable(result):
                await result
        except Exception as e:
            log.exception("consumer_callback_failed", callback=name)
            self.error = CallbackError(f"{name} callback raised {e!r}")
