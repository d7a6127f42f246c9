"""AsyncConsumer: reads records from partitions the application assigns (asyncio API).

Usage::

    async with AsyncConsumer(bootstrap_servers="127.0.0.1:9092",
                             auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("orders", 0)])
        while True:
            for record in await consumer.poll(timeout_ms=1000):
                print(record.offset, record.value)

Or, as a member of a consumer group that shares the topic's partitions among its members
(and remembers where each one got to)::

    async with AsyncConsumer(bootstrap_servers="127.0.0.1:9092", group_id="billing") as c:
        c.subscribe(["orders"], on_assign=print, on_revoke=print)
        while True:
            for record in await c.poll(timeout_ms=1000):
                ...  # processed: auto-commit commits it within auto_commit_interval_ms

``poll()`` returns a flat list; the records of each partition are in offset order (and each
partition's records are contiguous). Fetching runs in the background (see ``fetcher.py``);
poll() only takes what is buffered, so a partition's position advances exactly as its records
are handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import structlog

from raftka.client.connections import BrokerConnections
from raftka.client.consumer.commits import CommitCallback, ConsumerCommits
from raftka.client.consumer.config import ConsumerConfig
from raftka.client.consumer.errors import GroupRequiredError, IllegalStateError
from raftka.client.consumer.fetch_buffer import FetchBuffer
from raftka.client.consumer.fetcher import Fetcher, FetchListener
from raftka.client.consumer.group_offsets import AutoCommitter, CommitListener, GroupOffsetStore
from raftka.client.consumer.membership import ConsumerGroupMetadata, GroupMember, Subscription
from raftka.client.consumer.offset_store import OffsetAndMetadata, OffsetStore
from raftka.client.consumer.offsets import OffsetAndTimestamp, OffsetLookup
from raftka.client.consumer.positions import ConsumerPositions
from raftka.client.consumer.rebalance import PartitionHandover, PartitionsCallback
from raftka.client.consumer.records import ConsumerRecord
from raftka.client.consumer.subscription import ResetStrategy, SubscriptionState
from raftka.client.group_coordinator import GroupCoordinator
from raftka.client.metadata_cache import MetadataCache
from raftka.client.security import security_of
from raftka.client.throttle import ThrottleStats
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError
from raftka.common.rpc.retry import Deadline, RetryPolicy

log = structlog.get_logger(__name__)

__all__ = ["AsyncConsumer", "CommitCallback"]


class AsyncConsumer:
    def __init__(
        self,
        config: ConsumerConfig | None = None,
        *,
        offset_store: OffsetStore | None = None,
        connections: BrokerConnections | None = None,
        **settings: Any,
    ) -> None:
        """``config``, or settings by name (``bootstrap_servers=...``), or both (the settings
        override the config's). ``offset_store`` replaces the group coordinator's (tests)."""
        if config is None:
            config = ConsumerConfig(**settings)
        elif settings:
            config = dataclasses.replace(config, **settings)
        self.config = config
        self._connections = connections or BrokerConnections(
            client_id=config.client_id, security=security_of(config)
        )
        retry = RetryPolicy(
            config.retry_backoff_ms / 1000, max(1.0, config.retry_backoff_ms / 1000)
        )
        self._request_timeout_s = config.request_timeout_ms / 1000
        self._retry = retry
        self._metadata = MetadataCache(
            config.bootstrap_addresses,
            self._connections,
            request_timeout_s=self._request_timeout_s,
            max_age_s=config.metadata_max_age_ms / 1000,
            retry=retry,
        )
        self._subscription = SubscriptionState(config.auto_offset_reset)
        self._buffer = FetchBuffer(config.max_partition_fetch_bytes, config.fetch_max_bytes)
        self._lookup = OffsetLookup(
            self._metadata,
            self._connections,
            isolation_level=1 if config.isolation_level == "read_committed" else 0,
            request_timeout_s=self._request_timeout_s,
            retry=retry,
        )
        self._fetcher = Fetcher(
            config,
            self._subscription,
            self._buffer,
            self._metadata,
            self._connections,
            self._lookup,
        )
        self._closed = False
        self._member: GroupMember | None = None
        self._handover: PartitionHandover | None = None
        self._processed: dict[TopicPartition, OffsetAndMetadata] = {}
        self._coordinator: GroupCoordinator | None = None
        self._auto_commit: AutoCommitter | None = None
        self._warned_missing: set[str] = set()
        if config.group_id is not None:
            self._coordinator = GroupCoordinator(
                config.group_id,
                self._connections,
                lambda: [*self._metadata.brokers.values(), *config.bootstrap_addresses],
                request_timeout_s=self._request_timeout_s,
                retry=retry,
            )
            if offset_store is None:
                # Every consumer asks for stable offsets (KIP-447: Kafka's consumer always
                # sets require_stable): a commit a transaction has just made is waited for,
                # not answered with the offset before it.
                offset_store = GroupOffsetStore(
                    self._coordinator, self._identity, require_stable=True
                )
        self._positions = ConsumerPositions(
            self._subscription, self._buffer, self._fetcher, self._lookup, offset_store, retry
        )
        self._commits = ConsumerCommits(offset_store, self._positions.current)
        if config.group_id is not None and config.enable_auto_commit:
            self._auto_commit = self._commits.auto_commit = AutoCommitter(
                self._commits.commit_offsets,
                lambda: dict(self._processed),
                config.auto_commit_interval_ms / 1000,
            )

    def _identity(self) -> tuple[str, int]:
        return self._member.identity if self._member is not None else ("", -1)

    # ------------------------------------------------------------------ subscription

    def subscribe(
        self,
        topics: Iterable[str] = (),
        *,
        pattern: str | None = None,
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
        on_lost: PartitionsCallback | None = None,
    ) -> None:
        """Join the consumer group (``group_id``) and read the partitions its coordinator
        assigns this member, of ``topics`` or of every topic whose whole name matches the
        regular expression ``pattern`` (Python ``re`` syntax; topics created later count too).
        The group's members share the partitions; each starts from the group's committed
        offset (``auto_offset_reset`` where there is none).

        ``on_assign(partitions)`` runs after partitions are added (before they are fetched:
        it may seek them); ``on_revoke(partitions)`` before partitions are taken away (after
        auto-commit committed them); ``on_lost(partitions)`` when the membership was lost and
        the partitions may already belong to another member (default: ``on_revoke``). Each
        gets a set of TopicPartition and may be a function or a coroutine function; they run
        on the consumer's event loop. The group is joined by the next poll(); calling
        subscribe() again replaces the subscription."""
        self._check_open()
        if self.config.group_id is None:
            raise GroupRequiredError(
                "subscribe() needs a consumer group: set group_id (or use assign() to choose "
                "partitions yourself)"
            )
        subscription = Subscription.of(topics, pattern)
        if self._member is None and self._subscription.partitions():
            raise IllegalStateError(
                "subscribe(): this consumer reads partitions it chose with assign(); call "
                "assign([]) first (a consumer either subscribes or assigns)"
            )
        if self._member is not None:
            assert self._handover is not None
            self._handover.on_assign, self._handover.on_revoke = on_assign, on_revoke
            self._handover.on_lost = on_lost
            self._member.resubscribe(subscription)
            return
        assert self._coordinator is not None and self._commits.offset_store is not None
        store = self._commits.offset_store
        if not isinstance(store, GroupOffsetStore):
            raise GroupRequiredError("subscribe() needs the group coordinator's offset store")
        self._handover = PartitionHandover(
            self._subscription,
            self._buffer,
            self._fetcher,
            store,
            self._auto_commit,
            on_assign=on_assign,
            on_revoke=on_revoke,
            on_lost=on_lost,
        )
        self._member = GroupMember(self.config, self._coordinator, self._handover, subscription)

    def subscription(self) -> set[str]:
        """The subscribed topic names (empty with a pattern, or without a subscription)."""
        return set(self._member.subscription.topics) if self._member is not None else set()

    async def unsubscribe(self) -> None:
        """Leave the group: partitions are committed (auto-commit), revoked and dropped."""
        self._check_open()
        member, self._member = self._member, None
        if member is not None:
            self._processed = self._positions.current()
            await member.close()

    async def _warn_missing_topics(self, topics: tuple[str, ...]) -> None:
        """Kafka waits for subscribed topics to appear: so does the coordinator; say so once."""
        with contextlib.suppress(RaftkaError):
            await self._metadata.refresh(topics)
        missing = sorted(t for t in topics if t not in self._metadata.topics)
        missing = [t for t in missing if t not in self._warned_missing]
        if missing:
            self._warned_missing.update(missing)
            log.warning(
                "consumer_subscribed_topics_missing",
                topics=missing,
                note="they do not exist (yet): the consumer waits for them to be created",
            )

    # ------------------------------------------------------------------ assignment

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (replacing any earlier assignment; partitions kept
        keep their position). New ones start from the committed offset when there is a group,
        else where ``auto_offset_reset`` says, unless seek() says otherwise first."""
        self._check_open()
        if self._member is not None:
            raise IllegalStateError(
                "assign(): this consumer subscribed to a group's topics; its partitions come "
                "from the group coordinator (call unsubscribe() first)"
            )
        self._subscription.assign(partitions)
        self._buffer.retain(self._subscription.assignment)
        self._fetcher.wakeup()

    def assignment(self) -> set[TopicPartition]:
        return self._subscription.assignment

    async def partitions_for(
        self, topic: str, timeout_ms: float | None = None
    ) -> list[TopicPartition]:
        """Every partition of ``topic``. Raises UnknownTopicOrPartitionError if the brokers
        do not know it within ``timeout_ms`` (default ``request_timeout_ms``), or the
        connection error if none answers."""
        self._check_open()
        info = await self._metadata.topic(topic, Deadline(self._timeout_s(timeout_ms)))
        return [TopicPartition(topic, p.partition) for p in info.partitions]

    # ------------------------------------------------------------------ positions

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """poll() continues ``tp`` from ``offset``."""
        self._check_open()
        self._positions.seek(tp, offset)

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Continue from the log start (of every assigned partition if none are named);
        looked up lazily, by the next poll() or position()."""
        self._check_open()
        self._positions.seek_to(ResetStrategy.EARLIEST, partitions)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Continue from the high watermark: only records produced from now on."""
        self._check_open()
        self._positions.seek_to(ResetStrategy.LATEST, partitions)

    async def position(self, tp: TopicPartition, timeout_ms: float | None = None) -> int:
        """The offset of the next record poll() returns for ``tp``, looking it up first if
        a reset is pending or the group's committed offset is not known yet (within
        ``timeout_ms``, default ``request_timeout_ms``; RequestTimedOutError after it)."""
        self._check_open()
        self._subscription.state(tp)  # raises for a partition not assigned
        self._start()
        return await self._positions.position(tp, self._timeout_s(timeout_ms))

    # ------------------------------------------------------------------ offset lookups

    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int], timeout_ms: float | None = None
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """For each partition, the first record whose timestamp is at or after the given one
        (ms since the epoch), or None if there is none."""
        self._check_open()
        return await self._positions.offsets_for_times(timestamps, self._timeout_s(timeout_ms))

    async def beginning_offsets(
        self, partitions: Iterable[TopicPartition], timeout_ms: float | None = None
    ) -> dict[TopicPartition, int]:
        """Each partition's log start offset."""
        self._check_open()
        return await self._positions.log_ends(partitions, False, self._timeout_s(timeout_ms))

    async def end_offsets(
        self, partitions: Iterable[TopicPartition], timeout_ms: float | None = None
    ) -> dict[TopicPartition, int]:
        """Each partition's high watermark: the offset the next committed record will get."""
        self._check_open()
        return await self._positions.log_ends(partitions, True, self._timeout_s(timeout_ms))

    # ------------------------------------------------------------------ poll

    async def poll(
        self, timeout_ms: float = 1000, max_records: int | None = None
    ) -> list[ConsumerRecord]:
        """Records from the assigned partitions, waiting up to ``timeout_ms`` for some;
        at most ``max_records`` (default ``max_poll_records``). An empty list means none
        arrived in time. Raises a partition's error (no position with auto_offset_reset
        'none', position out of range, corrupt batch) until the application seeks it."""
        self._check_open()
        if timeout_ms < 0:
            raise IllegalStateError(f"poll(timeout_ms={timeout_ms}): the timeout must be >= 0")
        limit = self.config.max_poll_records if max_records is None else max_records
        if limit < 1:
            raise IllegalStateError(f"poll(max_records={max_records}): must be at least 1")
        if self._member is None and not self._subscription.partitions():
            raise IllegalStateError(
                "poll() needs partitions to read: call assign() or subscribe() first"
            )
        self._processed = self._positions.current()  # earlier polls' records are processed
        self._start()
        if self._member is not None:
            if self._member.fatal is not None:
                raise self._member.fatal
            if not self._member.running and not self._member.left_for_poll_timeout:
                topics = self._member.subscription.topics
                if topics:
                    self._commits.track(asyncio.ensure_future(self._warn_missing_topics(topics)))
            self._member.polled()
        if self._handover is not None and self._handover.error is not None:
            failed, self._handover.error = self._handover.error, None
            raise failed
        deadline = Deadline(timeout_ms / 1000)
        # Let the fetcher run first: with records buffered, poll() would otherwise return
        # without ever yielding, and responses and prefetches would wait until the buffer ran dry.
        await asyncio.sleep(0)
        while True:
            await self._positions.init_positions()
            error = self._subscription.first_error() or self._fetcher.refresher.connection_error()
            if error is not None:
                raise error
            records = self._buffer.drain(limit, self._subscription)
            self._fetcher.wakeup()  # room freed: the next fetches go out now (prefetch)
            if records:
                return records
            if deadline.expired():
                return []
            self._fetcher.data_ready.clear()
            if self._buffer.has_data():
                continue
            wait_s = deadline.remaining()
            if self._subscription.initializing():  # a committed offset to ask for again
                wait_s = min(wait_s, self._retry.backoff(1))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._fetcher.data_ready.wait()

    # ------------------------------------------------------------------ committed offsets

    async def commit(
        self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None = None
    ) -> None:
        """Commit ``offsets`` (next offsets to read; default: the current positions, i.e.
        everything poll() has returned) to the consumer group, as the member when subscribed
        (CommitFailedError if the group no longer takes its commits), else as a simple
        group."""
        self._check_open()
        await self._commits.commit(offsets)

    def commit_async(
        self,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None = None,
        callback: CommitCallback | None = None,
    ) -> asyncio.Task[None]:
        """Start a commit and return at once; ``callback(offsets, error_or_None)`` runs when
        it is done (a failure without a callback is logged). Await the task to wait."""
        self._check_open()
        return self._commits.commit_async(offsets, callback)

    async def committed(self, tp: TopicPartition) -> OffsetAndMetadata | None:
        """The group's committed offset for ``tp``, or None."""
        self._check_open()
        return await self._commits.committed(tp)

    def group_metadata(self) -> ConsumerGroupMetadata:
        """Who this consumer is in its group now (Kafka's groupMetadata()): the member id and
        epoch of the assignment it has reconciled, ("", -1) before its first one. A newer epoch
        the coordinator has sent counts once the member has given up what it no longer owns."""
        member_id, epoch = self._member.assigned_identity if self._member is not None else ("", -1)
        return ConsumerGroupMetadata(
            self.config.group_id or "", member_id, epoch, self.config.group_instance_id
        )

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener(offsets)`` after every commit the coordinator acknowledged
        (explicit, asynchronous, automatic, before a revocation, on close), on the consumer's
        event loop. The failover experiments record commits with it."""
        self._commits.add_listener(listener)

    # ------------------------------------------------------------------ diagnostics

    @property
    def throttle(self) -> ThrottleStats:
        """The brokers' quota throttle times seen in Fetch answers (``.as_dict()``)."""
        return self._fetcher.throttle

    def add_fetch_listener(self, listener: FetchListener) -> None:
        """Call ``listener(seconds, nbytes)`` after every fetch a broker answers (on the
        consumer's event loop; keep it cheap). ``raftka perf consume`` measures with it."""
        self._fetcher.fetch_listeners.append(listener)

    # ------------------------------------------------------------------ lifecycle

    def _start(self) -> None:
        self._fetcher.start()
        if self._auto_commit is not None:
            self._auto_commit.start()

    def _check_open(self) -> None:
        if self._closed:
            raise IllegalStateError("this consumer is closed")

    def _timeout_s(self, timeout_ms: float | None) -> float:
        return self._request_timeout_s if timeout_ms is None else timeout_ms / 1000

    async def close(self) -> None:
        """Stop fetching and close the connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        # Closing: everything poll() returned counts as processed.
        self._processed = self._positions.current()
        if self._auto_commit is not None:
            await self._auto_commit.close()
        try:
            if self._member is not None:
                await self._member.close()
            elif self._auto_commit is not None and self._subscription.partitions():
                await self._commits.commit_offsets(self._auto_commit.pending())
        except RaftkaError as e:
            log.warning("consumer_close_commit_failed", error=e.message)
        await self._commits.finish(self._request_timeout_s)  # commit_async() calls finish
        await self._fetcher.close()
        if self._commits.offset_store is not None:
            await self._commits.offset_store.close()
        await self._connections.close()

    async def __aenter__(self) -> AsyncConsumer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
