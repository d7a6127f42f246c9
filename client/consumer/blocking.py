"""Consumer: the blocking API. Every call runs the same AsyncConsumer method on a private
event loop thread (LoopThread), so there is one implementation of every behaviour; fetching
keeps going in that thread while the application processes what poll() returned."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from raftka.client.connections import BrokerConnections
from raftka.client.consumer.config import ConsumerConfig
from raftka.client.consumer.consumer import AsyncConsumer, CommitCallback
from raftka.client.consumer.membership import ConsumerGroupMetadata
from raftka.client.consumer.offset_store import OffsetAndMetadata, OffsetStore
from raftka.client.consumer.offsets import OffsetAndTimestamp
from raftka.client.consumer.rebalance import PartitionsCallback
from raftka.client.consumer.records import ConsumerRecord
from raftka.client.loop_thread import LoopThread
from raftka.client.throttle import ThrottleStats
from raftka.client.types import TopicPartition

T = TypeVar("T")


class Consumer:
    def __init__(
        self,
        config: ConsumerConfig | None = None,
        *,
        offset_store: OffsetStore | None = None,
        connections: BrokerConnections | None = None,
        **settings: Any,
    ) -> None:
        """Same arguments as :class:`AsyncConsumer`."""
        self._async = AsyncConsumer(
            config, offset_store=offset_store, connections=connections, **settings
        )
        self.config = self._async.config
        self._thread = LoopThread("raftka-consumer")

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        async def call() -> T:
            return fn(*args)

        return self._thread.run(call())

    def subscribe(
        self,
        topics: Iterable[str] = (),
        *,
        pattern: str | None = None,
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
        on_lost: PartitionsCallback | None = None,
    ) -> None:
        """As AsyncConsumer.subscribe(). The callbacks run on the consumer's background
        thread (during a rebalance, while poll() may be waiting): they must not call this
        Consumer's methods (that would wait on the thread running them); record what they
        need, or use the offsets given."""
        topic_list = [topics] if isinstance(topics, str) else list(topics)
        self._call(
            lambda: self._async.subscribe(
                topic_list,
                pattern=pattern,
                on_assign=on_assign,
                on_revoke=on_revoke,
                on_lost=on_lost,
            )
        )

    def subscription(self) -> set[str]:
        return self._call(self._async.subscription)

    def unsubscribe(self) -> None:
        self._thread.run(self._async.unsubscribe())

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._call(self._async.assign, list(partitions))

    def assignment(self) -> set[TopicPartition]:
        return self._call(self._async.assignment)

    @property
    def throttle(self) -> ThrottleStats:
        """The brokers' quota throttle times seen in Fetch answers (``.as_dict()``)."""
        return self._async.throttle

    def partitions_for(self, topic: str, timeout_ms: float | None = None) -> list[TopicPartition]:
        return self._thread.run(self._async.partitions_for(topic, timeout_ms))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._call(self._async.seek, tp, offset)

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self._call(self._async.seek_to_beginning, *partitions)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        self._call(self._async.seek_to_end, *partitions)

    def position(self, tp: TopicPartition, timeout_ms: float | None = None) -> int:
        return self._thread.run(self._async.position(tp, timeout_ms))

    def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int], timeout_ms: float | None = None
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        return self._thread.run(self._async.offsets_for_times(dict(timestamps), timeout_ms))

    def beginning_offsets(
        self, partitions: Iterable[TopicPartition], timeout_ms: float | None = None
    ) -> dict[TopicPartition, int]:
        return self._thread.run(self._async.beginning_offsets(list(partitions), timeout_ms))

    def end_offsets(
        self, partitions: Iterable[TopicPartition], timeout_ms: float | None = None
    ) -> dict[TopicPartition, int]:
        return self._thread.run(self._async.end_offsets(list(partitions), timeout_ms))

    def poll(
        self, timeout_ms: float = 1000, max_records: int | None = None
    ) -> list[ConsumerRecord]:
        return self._thread.run(self._async.poll(timeout_ms, max_records))

    def commit(
        self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None = None
    ) -> None:
        self._thread.run(self._async.commit(None if offsets is None else dict(offsets)))

    def commit_async(
        self,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None = None,
        callback: CommitCallback | None = None,
    ) -> None:
        """Start a commit and return; ``callback(offsets, error_or_None)`` runs on the
        consumer's thread when it is done. close() waits for commits in flight."""
        chosen = None if offsets is None else dict(offsets)
        self._call(lambda: self._async.commit_async(chosen, callback))

    def committed(self, tp: TopicPartition) -> OffsetAndMetadata | None:
        return self._thread.run(self._async.committed(tp))

    def group_metadata(self) -> ConsumerGroupMetadata:
        return self._async.group_metadata()

    def close(self) -> None:
        """Close the consumer and stop its thread (idempotent)."""
        try:
            if self._thread.loop.is_running():
                self._thread.run(self._async.close())
        finally:
            self._thread.stop()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
