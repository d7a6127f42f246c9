"""AsyncConsumer: reads records from partitions the application assigns (asyncio API).

Usage::

    async with AsyncConsumer(bootstrap_servers="127.0.0.1:9092",
                             auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("orders", 0)])
        while True:
            for record in await consumer.poll(timeout_ms=1000):
                print(record.offset, record.value)

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

from raftka.client.connections import BrokerConnections
from raftka.client.consumer.config import ConsumerConfig
from raftka.client.consumer.errors import IllegalStateError
from raftka.client.consumer.fetch_buffer import FetchBuffer
from raftka.client.consumer.fetcher import Fetcher, FetchListener
from raftka.client.consumer.offset_store import (
    OffsetAndMetadata,
    OffsetStore,
    no_group_error,
    unavailable_group_error,
)
from raftka.client.consumer.offsets import EARLIEST, LATEST, OffsetAndTimestamp, OffsetLookup
from raftka.client.consumer.records import ConsumerRecord
from raftka.client.consumer.subscription import ResetStrategy, SubscriptionState
from raftka.client.metadata_cache import MetadataCache
from raftka.client.types import TopicPartition
from raftka.common.rpc.retry import Deadline, RetryPolicy


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
        override the config's). ``offset_store`` is for the group coordinator to plug in."""
        if config is None:
            config = ConsumerConfig(**settings)
        elif settings:
            config = dataclasses.replace(config, **settings)
        if config.group_id is not None and offset_store is None:
            raise unavailable_group_error(config.group_id)
        self.config = config
        self._offset_store = offset_store
        self._connections = connections or BrokerConnections(client_id=config.client_id)
        retry = RetryPolicy(
            config.retry_backoff_ms / 1000, max(1.0, config.retry_backoff_ms / 1000)
        )
        self._request_timeout_s = config.request_timeout_ms / 1000
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

    # ------------------------------------------------------------------ assignment

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (replacing any earlier assignment; partitions kept
        keep their position). New ones start from the committed offset when there is a group,
        else where ``auto_offset_reset`` says, unless seek() says otherwise first."""
        self._check_open()
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
        self._subscription.seek(tp, offset)
        self._buffer.clear(tp)
        self._fetcher.wakeup()

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Continue from the log start (of every assigned partition if none are named);
        looked up lazily, by the next poll() or position()."""
        self._seek_to(ResetStrategy.EARLIEST, partitions)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Continue from the high watermark: only records produced from now on."""
        self._seek_to(ResetStrategy.LATEST, partitions)

    def _seek_to(self, strategy: ResetStrategy, partitions: tuple[TopicPartition, ...]) -> None:
        self._check_open()
        targets = list(partitions) or self._subscription.partitions()
        for tp in targets:
            self._subscription.state(tp)  # not assigned: raise before changing anything
        for tp in targets:
            self._subscription.request_reset(tp, strategy)
            self._buffer.clear(tp)
        self._fetcher.wakeup()

    async def position(self, tp: TopicPartition, timeout_ms: float | None = None) -> int:
        """The offset of the next record poll() returns for ``tp``, looking it up first if
        a reset is pending (within ``timeout_ms``, default ``request_timeout_ms``)."""
        self._check_open()
        state = self._subscription.state(tp)
        self._start()
        await self._init_positions()
        if state.error is not None:
            raise state.error
        if state.reset is not None:
            deadline = Deadline(self._timeout_s(timeout_ms))
            version, strategy = state.version, state.reset
            found = (await self._lookup.lookup({tp: int(strategy)}, deadline)).get(tp)
            if found is not None and self._subscription.state(tp).version == version:
                self.seek(tp, found.offset)
        position = self._subscription.state(tp).position
        if position is None:  # a concurrent seek_to_* started a new lookup
            return await self.position(tp, timeout_ms)
        return position

    async def _init_positions(self) -> None:
        """Give newly assigned partitions a starting point: their committed offset (with a
        group), else the reset policy."""
        pending = self._subscription.initializing()
        if not pending:
            return
        if self._offset_store is not None:
            committed = await self._offset_store.fetch_committed(pending)
            for tp, c in committed.items():
                if self._subscription.is_assigned(tp) and self._subscription.state(tp).initializing:
                    self._subscription.seek(tp, c.offset)
        for tp in pending:
            if self._subscription.is_assigned(tp) and self._subscription.state(tp).initializing:
                self._subscription.apply_reset_policy(tp)
        self._fetcher.wakeup()

    # ------------------------------------------------------------------ offset lookups

    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int], timeout_ms: float | None = None
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """For each partition, the first record whose timestamp is at or after the given one
        (ms since the epoch), or None if there is none."""
        self._check_open()
        for tp, ts in timestamps.items():
            if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
                raise IllegalStateError(
                    f"offsets_for_times: {tp} has timestamp {ts!r}; use ms >= 0"
                )
        return await self._lookup.lookup(timestamps, Deadline(self._timeout_s(timeout_ms)))

    async def beginning_offsets(
        self, partitions: Iterable[TopicPartition], timeout_ms: float | None = None
    ) -> dict[TopicPartition, int]:
        """Each partition's log start offset."""
        return await self._special_offsets(partitions, EARLIEST, timeout_ms)

    async def end_offsets(
        self, partitions: Iterable[TopicPartition], timeout_ms: float | None = None
    ) -> dict[TopicPartition, int]:
        """Each partition's high watermark: the offset the next committed record will get."""
        return await self._special_offsets(partitions, LATEST, timeout_ms)

    async def _special_offsets(
        self, partitions: Iterable[TopicPartition], which: int, timeout_ms: float | None
    ) -> dict[TopicPartition, int]:
        self._check_open()
        wanted = {TopicPartition(*tp): which for tp in partitions}
        found = await self._lookup.lookup(wanted, Deadline(self._timeout_s(timeout_ms)))
        return {tp: f.offset for tp, f in found.items() if f is not None}

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
        if not self._subscription.partitions():
            raise IllegalStateError("poll() needs partitions to read: call assign() first")
        self._start()
        deadline = Deadline(timeout_ms / 1000)
        # Let the fetcher run first: with records buffered, poll() would otherwise return
        # without ever yielding, and responses and prefetches would wait until the buffer ran dry.
        await asyncio.sleep(0)
        while True:
            await self._init_positions()
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
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline.remaining()):
                    await self._fetcher.data_ready.wait()

    # ------------------------------------------------------------------ committed offsets

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (default: the current positions) to the consumer group."""
        self._check_open()
        if self._offset_store is None:
            raise no_group_error("commit()")
        if offsets is None:
            to_commit = {
                tp: OffsetAndMetadata(s.position, s.leader_epoch)
                for tp in self._subscription.partitions()
                if (s := self._subscription.state(tp)).position is not None
            }
        else:
            to_commit = {TopicPartition(*tp): OffsetAndMetadata(o) for tp, o in offsets.items()}
        await self._offset_store.commit(to_commit)

    async def committed(self, tp: TopicPartition) -> OffsetAndMetadata | None:
        """The group's committed offset for ``tp``, or None."""
        self._check_open()
        if self._offset_store is None:
            raise no_group_error("committed()")
        return (await self._offset_store.fetch_committed([tp])).get(tp)

    # ------------------------------------------------------------------ diagnostics

    def add_fetch_listener(self, listener: FetchListener) -> None:
        """Call ``listener(seconds, nbytes)`` after every fetch a broker answers (on the
        consumer's event loop; keep it cheap). ``raftka perf consume`` measures with it."""
        self._fetcher.fetch_listeners.append(listener)

    # ------------------------------------------------------------------ lifecycle

    def _start(self) -> None:
        self._fetcher.start()

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
        await self._fetcher.close()
        if self._offset_store is not None:
            await self._offset_store.close()
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
